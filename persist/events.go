package persist

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stratusworks/worker/internal/jsonscan"
	"github.com/stratusworks/worker/state"
)

// Event is a change or job event waiting in the outbox (table worker_outbox)
// to be published. It is written in the same transaction as the state it
// describes, so an event is never lost and never announces a change that
// was rolled back; a relay publishes [Store.PendingEvents] and then calls
// [Store.MarkEventsSent]. A relay that stops in between publishes the same
// events again: consumers dedupe by ID.
type Event struct {
	// ID is the event's unique id (a UUID); consumers dedupe by it.
	ID string `json:"id"`
	// Type is "<kind>.changed" or "<kind>.deleted" for a resource change (e.g.
	// "server.changed"), and "job.completed", "job.failed" or "job.timed_out"
	// for a finished job.
	Type       string `json:"type"`
	Account    string `json:"account"`
	Customer   string `json:"customer,omitempty"`
	Kind       string `json:"kind"`                  // the resource's or the job's kind
	ResourceID string `json:"resource_id,omitempty"` // the resource the event is about, if any
	// Payload is the JSON of a [state.Change] for resource events and of a
	// [Job] (its final state) for job events.
	Payload   json.RawMessage `json:"payload"`
	CreatedAt time.Time       `json:"created_at"`
}

// Event types for finished jobs.
const (
	EventJobCompleted = "job.completed"
	EventJobFailed    = "job.failed"
	EventJobTimedOut  = "job.timed_out"
)

// Suffixes of resource event types: "<kind>.changed" is a creation or an
// update, "<kind>.deleted" a deletion.
const (
	EventChangedSuffix = ".changed"
	EventDeletedSuffix = ".deleted"
)

const (
	defaultEventLimit = 100
	defaultPurgeBatch = 1000 // rows per DELETE when purging (sent events, the inbox)
)

type eventRow struct {
	ID         int64      `gorm:"column:id;primaryKey;autoIncrement"`
	EventID    string     `gorm:"column:event_id"`
	Type       string     `gorm:"column:type"`
	Account    string     `gorm:"column:account"`
	Customer   string     `gorm:"column:customer"`
	Kind       string     `gorm:"column:kind"`
	ResourceID string     `gorm:"column:resource_id"`
	Payload    string     `gorm:"column:payload"`
	CreatedAt  time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	SentAt     *time.Time `gorm:"column:sent_at"`
}

func (eventRow) TableName() string { return tblEvents }

func (r eventRow) decode() Event {
	return Event{
		ID: r.EventID, Type: r.Type, Account: r.Account, Customer: r.Customer, Kind: r.Kind,
		ResourceID: r.ResourceID, Payload: json.RawMessage(r.Payload), CreatedAt: r.CreatedAt.UTC(),
	}
}

// newEventID returns a time-ordered UUID (version 7), which keeps inserts
// into the unique index on event_id local.
func newEventID() string {
	if id, err := uuid.NewV7(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

// changeEvent is the outbox row announcing one resource change.
func changeEvent(ch state.Change, now time.Time) eventRow {
	typ := ch.Target.Kind + EventChangedSuffix
	if ch.Op == state.Deleted {
		typ = ch.Target.Kind + EventDeletedSuffix
	}
	return eventRow{
		EventID: newEventID(), Type: typ, Account: ch.Target.Account, Customer: ch.Target.Customer,
		Kind: ch.Target.Kind, ResourceID: ch.Target.Resource, Payload: changePayload(ch), CreatedAt: now,
	}
}

// changePayload returns json.Marshal(ch). The common case, attributes that
// need no HTML escaping and UTC times, is written directly, without
// reflection; the result is the same bytes.
func changePayload(ch state.Change) string {
	size := 160 + len(ch.Target.Account) + len(ch.Target.Customer) + len(ch.Target.Kind) + len(ch.Target.Resource)
	for _, o := range []*state.Observation{ch.Before, ch.After} {
		if o != nil {
			size += 80 + len(o.Kind) + len(o.ID) + len(o.Attributes)
		}
	}
	for _, f := range ch.Fields {
		size += len(f) + 3
	}
	var b strings.Builder
	b.Grow(size)
	if writeChange(&b, ch) {
		return b.String()
	}
	p, _ := json.Marshal(ch) // plain data; cannot fail
	return string(p)
}

func writeChange(b *strings.Builder, ch state.Change) bool {
	b.WriteString(`{"op":`)
	writeJSONString(b, string(ch.Op))
	b.WriteString(`,"target":{"account":`)
	writeJSONString(b, ch.Target.Account)
	if ch.Target.Customer != "" {
		b.WriteString(`,"customer":`)
		writeJSONString(b, ch.Target.Customer)
	}
	b.WriteString(`,"kind":`)
	writeJSONString(b, ch.Target.Kind)
	if ch.Target.Resource != "" {
		b.WriteString(`,"resource":`)
		writeJSONString(b, ch.Target.Resource)
	}
	b.WriteByte('}')
	if ch.Before != nil {
		b.WriteString(`,"before":`)
		if !writeObservation(b, ch.Before) {
			return false
		}
	}
	if ch.After != nil {
		b.WriteString(`,"after":`)
		if !writeObservation(b, ch.After) {
			return false
		}
	}
	if len(ch.Fields) > 0 {
		b.WriteString(`,"fields":`)
		writeJSONStrings(b, ch.Fields)
	}
	var num [20]byte
	b.WriteString(`,"version":`)
	b.Write(strconv.AppendInt(num[:0], ch.Version, 10))
	b.WriteByte('}')
	return true
}

// writeObservation writes o as encoding/json would, provided its attributes
// are compact (as canonical attributes are) and need no escaping, and its
// time is UTC within years 0-9999.
func writeObservation(b *strings.Builder, o *state.Observation) bool {
	attrs := o.Attributes
	if len(attrs) == 0 || bytes.ContainsAny(attrs, "<>&\u2028\u2029") {
		return false // encoding/json would escape these
	}
	if o.ObservedAt.Location() != time.UTC || o.ObservedAt.Year() < 0 || o.ObservedAt.Year() > 9999 {
		return false
	}
	b.WriteByte('{')
	if o.Kind != "" {
		b.WriteString(`"kind":`)
		writeJSONString(b, o.Kind)
		b.WriteByte(',')
	}
	b.WriteString(`"id":`)
	writeJSONString(b, o.ID)
	b.WriteString(`,"attributes":`)
	b.Write(attrs)
	var at [len(time.RFC3339Nano) + 2]byte
	b.WriteString(`,"observed_at":"`)
	b.Write(o.ObservedAt.AppendFormat(at[:0], time.RFC3339Nano))
	b.WriteByte('"')
	if o.Partial {
		b.WriteString(`,"partial":true`)
	}
	b.WriteByte('}')
	return true
}

// writeJSONString writes s as json.Marshal does.
func writeJSONString(b *strings.Builder, s string) { jsonscan.WriteString(b, s, true) }

// writeJSONStrings writes ss as a JSON array, as json.Marshal does.
func writeJSONStrings(b *strings.Builder, ss []string) {
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(b, s)
	}
	b.WriteByte(']')
}

// jsonStrings returns ss as a JSON array; nil is [].
func jsonStrings(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	var b strings.Builder
	writeJSONStrings(&b, ss)
	return b.String()
}

// PendingEvents returns up to limit events not yet marked sent, oldest first.
// A limit <= 0 means 100. It does not claim them: relays running at the same
// time may both publish an event, which consumers dedupe by ID.
//
// It is a step of the worker's protocol, taken by the outbox relay: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) PendingEvents(ctx context.Context, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = defaultEventLimit
	}
	var rows []eventRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("sent_at IS NULL").Order("id").Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: pending events: %w", err)
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = r.decode()
	}
	return out, nil
}

// MarkEventsSent records that the events with these ids were published.
// It is idempotent: unknown ids and events already marked are ignored.
//
// It is a step of the worker's protocol, taken by the outbox relay: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) MarkEventsSent(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	now := dbTime(s.now())
	for chunk := range slices.Chunk(ids, inListChunk) {
		err := retry(ctx, func() error {
			return s.prov.writer.WithContext(ctx).Model(&eventRow{}).
				Where("event_id IN ? AND sent_at IS NULL", chunk).Update("sent_at", now).Error
		})
		if err != nil {
			return fmt.Errorf("persist: mark events sent: %w", err)
		}
	}
	return nil
}

// PurgeSentEvents deletes events that were marked sent before olderThan and
// returns how many it deleted. Unsent events are never purged. It deletes in
// batches, so a large backlog does not hold one long transaction.
//
// It is a step of the worker's protocol, taken by the outbox purge: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) PurgeSentEvents(ctx context.Context, olderThan time.Time) (int, error) {
	n, err := s.purge(ctx, &eventRow{}, "sent_at IS NOT NULL AND sent_at < ?", "sent_at, id", olderThan)
	if err != nil {
		return n, fmt.Errorf("persist: purge sent events: %w", err)
	}
	return n, nil
}

// purge deletes the provisioning rows of model's table that match where
// (with the cutoff olderThan as its one argument), oldest first in the order
// orderBy, in batches of s.purgeBatch rows, each its own short transaction,
// and returns how many it deleted (also when it fails part way: what it
// deleted stays deleted). The table must have an integer id column.
func (s *Store) purge(ctx context.Context, model any, where, orderBy string, olderThan time.Time) (int, error) {
	cutoff := dbTime(olderThan)
	batch := s.purgeBatch
	if batch <= 0 {
		batch = defaultPurgeBatch
	}
	total := 0
	for {
		var ids []int64
		var deleted int64
		err := retry(ctx, func() error {
			db := s.prov.writer.WithContext(ctx)
			if err := db.Model(model).Where(where, cutoff).Order(orderBy).Limit(batch).Pluck("id", &ids).Error; err != nil {
				return err
			}
			if len(ids) == 0 {
				return nil
			}
			res := db.Where("id IN ?", ids).Delete(model)
			deleted = res.RowsAffected
			return res.Error
		})
		if err != nil {
			return total, err
		}
		total += int(deleted)
		if len(ids) < batch {
			return total, nil
		}
	}
}

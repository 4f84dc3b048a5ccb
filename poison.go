package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stratusworks/worker/persist"
)

// PoisonedAction is an action that failed for good, as kept in the poison store.
type PoisonedAction struct {
	// ID is the poison record's id, for Replay.
	ID int64
	// Action is the decoded action; when the message did not decode, only
	// Action.ID (the message id) and Action.Type (from metadata) are set.
	Action Action
	// Topic is the queue the action came from.
	Topic string
	// Reason is why it was poisoned: the last error, or the panic with its stack.
	Reason string
	// Attempts is how many times it was tried.
	Attempts int
	// FailedAt is when it was poisoned; ReplayedAt when it was last replayed (nil if never).
	FailedAt   time.Time
	ReplayedAt *time.Time
	// Body is the message body as received, for actions that did not decode.
	Body []byte
}

// PoisonQuery selects poisoned actions.
type PoisonQuery struct {
	// Limit is the most returned, newest first. Default 100.
	Limit int
	// IncludeReplayed also returns actions already replayed.
	IncludeReplayed bool
}

// poisonViews is the part that reads the poison store for people and sends
// poisoned actions again (Worker.Poisoned, Replay, ReplayAll).
type poisonViews struct {
	store poisonRecords
	pub   interface {
		publishRaw(topic, id string, md map[string]string, body []byte) error
	}
	maxBytes int
}

// list lists actions in the poison store, newest first.
func (v poisonViews) list(ctx context.Context, q PoisonQuery) ([]PoisonedAction, error) {
	rows, err := v.store.ListPoison(ctx, persist.PoisonFilter{Limit: q.Limit, IncludeReplayed: q.IncludeReplayed})
	if err != nil {
		return nil, fmt.Errorf("worker: list poisoned actions: %w", err)
	}
	out := make([]PoisonedAction, 0, len(rows))
	for _, r := range rows {
		out = append(out, poisonedFrom(r, v.maxBytes))
	}
	return out, nil
}

func poisonedFrom(r persist.Parked, maxBytes int) PoisonedAction {
	p := PoisonedAction{ID: r.ID, Topic: r.Topic, Reason: r.Reason, Attempts: r.Attempts,
		FailedAt: r.FailedAt, ReplayedAt: r.ReplayedAt, Body: r.Payload}
	m := message.NewMessage(r.MessageUUID, r.Payload)
	m.Metadata = r.Metadata
	if a, err := decode(m, max(maxBytes, len(r.Payload))); err == nil {
		p.Action = a
	} else {
		p.Action = Action{ID: r.MessageUUID, Type: r.ActionType}
	}
	return p
}

// replayOne publishes one poisoned action again; see [Worker.Replay].
func (v poisonViews) replayOne(ctx context.Context, id int64) error {
	r, err := v.store.GetPoison(ctx, id)
	if err != nil {
		return fmt.Errorf("worker: replay poison record %d: %w", id, err)
	}
	return v.replay(ctx, r)
}

func (v poisonViews) replay(ctx context.Context, r persist.Parked) error {
	if err := r.Replayable(); err != nil { // the store kept only part of its payload
		return fmt.Errorf("worker: replay poison record %d: %w", r.ID, err)
	}
	md := make(map[string]string, len(r.Metadata)+1)
	for k, v := range r.Metadata {
		md[k] = v
	}
	// A replay starts afresh: first attempt, a new retry budget, due now.
	delete(md, MetaAttempt)
	delete(md, MetaRetrySince)
	delete(md, MetaNotBefore)
	md[MetaReplayOf] = strconv.FormatInt(r.ID, 10)
	if err := v.pub.publishRaw(r.Topic, r.MessageUUID, md, r.Payload); err != nil {
		return fmt.Errorf("worker: replay poison record %d: %w", r.ID, err)
	}
	if err := v.store.MarkPoisonReplayed(ctx, r.ID); err != nil {
		return fmt.Errorf("worker: replay poison record %d: published, but marking it replayed failed: %w", r.ID, err)
	}
	return nil
}

// replayAll replays every replayable poisoned action; see [Worker.ReplayAll].
func (v poisonViews) replayAll(ctx context.Context) (int, error) {
	n := 0
	for {
		rows, err := v.store.ListPoison(ctx, persist.PoisonFilter{Limit: 100, OnlyReplayable: true})
		if err != nil {
			return n, fmt.Errorf("worker: replay all: %w", err)
		}
		if len(rows) == 0 {
			return n, nil
		}
		var errs error
		for _, r := range rows {
			if err := v.replay(ctx, r); err != nil {
				errs = errors.Join(errs, err)
				continue
			}
			n++
		}
		if errs != nil {
			return n, errs
		}
	}
}

// Metadata of the copies on the poison queue.
const (
	MetaPoisonReason   = "worker_poison_reason"   // why it was poisoned (first 2000 bytes)
	MetaPoisonAttempts = "worker_poison_attempts" // how many attempts it had
	MetaPoisonTopic    = "worker_poison_topic"    // the queue it came from
)

// mirroredPoison records poisoned actions in the store and, once that is
// durable, puts a copy on the broker's poison queue. A copy that cannot be
// published is logged, not retried: the store already holds the action.
type mirroredPoison struct {
	store PoisonStore
	pub   message.Publisher
	topic string
	log   interface {
		Warn(msg string, args ...any)
	}
}

func (m mirroredPoison) AddPoison(ctx context.Context, p persist.Parked) error {
	if err := m.store.AddPoison(ctx, p); err != nil {
		return err
	}
	msg := message.NewMessage(p.MessageUUID, p.Payload)
	for k, v := range p.Metadata {
		msg.Metadata.Set(k, v)
	}
	reason := p.Reason
	if len(reason) > 2000 {
		reason = reason[:2000]
	}
	msg.Metadata.Set(MetaPoisonReason, reason)
	msg.Metadata.Set(MetaPoisonAttempts, strconv.Itoa(p.Attempts))
	msg.Metadata.Set(MetaPoisonTopic, p.Topic)
	if err := m.pub.Publish(m.topic, msg); err != nil {
		m.log.Warn("poisoned action stored, but its copy on the poison queue failed", "id", p.MessageUUID, "err", err)
	}
	return nil
}

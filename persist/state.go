package persist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/stratusworks/worker/state"
)

// Resource is the stored current state of one resource.
type Resource struct {
	Account  string
	Customer string
	Kind     string
	ID       string // the provider's resource id
	// Hash is the hex SHA-256 of the canonical attributes.
	Hash    string
	Version int64 // 1 on creation, +1 on every change
	// Attributes in canonical form: object keys sorted, no insignificant space.
	Attributes json.RawMessage
	ObservedAt time.Time // when the provider reported this state (UTC)
	UpdatedAt  time.Time // when the store last changed the row (UTC)
	// MissingSince is when a complete listing first missed the resource (see
	// [Store.Sweep]); nil while listings see it.
	MissingSince *time.Time
}

// HistoryEntry is one recorded change of a resource.
type HistoryEntry struct {
	Account    string
	Customer   string
	Kind       string
	ID         string // the provider's resource id
	Op         state.ChangeOp
	Version    int64    // the resource's version after the change
	Fields     []string // top-level attribute keys that changed; empty on creation
	Attributes json.RawMessage
	ObservedAt time.Time
	RecordedAt time.Time
}

type resourceRow struct {
	Account    string    `gorm:"column:account;primaryKey"`
	Kind       string    `gorm:"column:kind;primaryKey"`
	ResourceID string    `gorm:"column:resource_id;primaryKey"`
	Customer   string    `gorm:"column:customer"`
	Hash       string    `gorm:"column:hash"`
	Version    int64     `gorm:"column:version"`
	Attributes string    `gorm:"column:attributes"`
	ObservedAt time.Time `gorm:"column:observed_at"`
	UpdatedAt  time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
	// MissingSince is set by Sweep when a complete listing misses the row.
	MissingSince *time.Time `gorm:"column:missing_since"`
	// DeletedAt marks a tombstone: the resource was deleted, the row keeps its
	// version so that a re-created resource continues the sequence.
	DeletedAt *time.Time `gorm:"column:deleted_at"`
}

func (resourceRow) TableName() string { return tblResources }

// historyRow is a row of the history table or of the outbox (same columns).
type historyRow struct {
	ID         int64     `gorm:"column:id;primaryKey;autoIncrement"`
	Account    string    `gorm:"column:account"`
	Kind       string    `gorm:"column:kind"`
	ResourceID string    `gorm:"column:resource_id"`
	Customer   string    `gorm:"column:customer"`
	Op         string    `gorm:"column:op"`
	Version    int64     `gorm:"column:version"`
	Fields     string    `gorm:"column:fields"`
	Attributes string    `gorm:"column:attributes"`
	ObservedAt time.Time `gorm:"column:observed_at"`
	RecordedAt time.Time `gorm:"column:recorded_at"`
}

const (
	inListChunk = 500 // ids per IN (...) list
	insertBatch = 200 // rows per multi-row INSERT
)

var historyKeyColumns = []clause.Column{{Name: "account"}, {Name: "kind"}, {Name: "resource_id"}, {Name: "version"}}

// observation is a validated, canonicalised observation.
type observation struct {
	index      int // position in the snapshot, for messages
	kind, id   string
	attrs      string // canonical JSON object
	hash       string
	observedAt time.Time // dbTime
	partial    bool      // attrs patch the stored attributes
}

type resKey struct{ kind, id string }

// Save stores one page of a listing and returns what changed, in the order the
// resources first appear in the snapshot.
//
// Observations are compared by the hash of their canonical attributes: one
// whose attributes equal the stored ones writes nothing; one older than the
// stored state is ignored; otherwise the row is created (version 1) or updated
// (version+1) and a history entry recorded, all in one transaction. When
// several observations in the snapshot share an id, the newest wins (on a tie,
// the last). Concurrent saves of the same resource, from any process, are
// resolved by optimistic concurrency on the row version.
//
// A partial observation ([state.Observation].Partial) patches the stored
// attributes: its top-level keys replace the stored ones and the others are
// kept, and the merged object is compared as usual. A partial observation of a
// resource that is not stored (or was deleted) creates it with just its own
// attributes.
//
// Every change is also written to the event outbox (see [Event]) in the same
// transaction: "<kind>.changed" events carrying the [state.Change].
//
// Save never reports Deleted: after the last page of a complete listing
// (snap.Complete), call [Store.Sweep] with the ids the listing saw. An
// observation of a resource that Sweep marked missing clears the mark (a
// write, even when nothing else changed); an observation of a deleted
// resource re-creates it (Created, its version continuing after the
// deletion's) unless it is older than the deletion.
//
// Invalid input (missing account, kind or id, attributes that are not a JSON
// object, over-long keys) fails with an error matching [ErrInvalid] that names
// the observation's index and id; nothing is saved.
func (s *Store) Save(ctx context.Context, t state.Target, snap state.Snapshot) ([]state.Change, error) {
	now := dbTime(s.now())
	obs, err := prepareSnapshot(t, snap, now)
	if err != nil || len(obs) == 0 {
		return nil, err
	}
	historyTable := tblHistory
	if s.ana != s.prov {
		historyTable = tblOutbox
	}

	var p *savePlan
	inTx := false
	err = retry(ctx, func() error {
		if !inTx {
			// Most polls change nothing, and then nothing is written: read
			// without taking the write lock. The upsert's version check
			// catches rows that change before the write.
			stored, err := loadStored(s.prov.reader.WithContext(ctx), t.Account, obs)
			if err != nil {
				return err
			}
			if s.afterRead != nil {
				s.afterRead()
			}
			p = planSave(t, obs, stored, now)
			if p.empty() {
				return nil
			}
			// Concurrent saves share a transaction (groupCommit).
			err = s.saves.commit(ctx, s.prov.writer, p, historyTable)
			// After a conflict, read under the write transaction: on SQLite,
			// which has one writer, the next attempt cannot conflict again.
			inTx = errors.Is(err, errConflict)
			return err
		}
		return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			stored, err := loadStored(tx, t.Account, obs)
			if err != nil {
				return err
			}
			p = planSave(t, obs, stored, now)
			return p.write(tx, historyTable)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("persist: save %s: %w", t, err)
	}
	if p == nil {
		return nil, nil
	}
	return p.changes, nil
}

// prepareSnapshot validates and canonicalises the snapshot and removes
// duplicate ids (newest wins; on a tie, the last).
func prepareSnapshot(t state.Target, snap state.Snapshot, now time.Time) ([]observation, error) {
	switch {
	case t.Account == "":
		return nil, invalidf("persist: save %s: Target.Account is required", t)
	case t.Kind == "":
		return nil, invalidf("persist: save %s: Target.Kind is required", t)
	case len(t.Kind) > maxKindLen:
		return nil, invalidf("persist: save %s: Target.Kind is longer than %d bytes", t, maxKindLen)
	case len(t.Account) > maxAccountLen:
		return nil, invalidf("persist: save %s: Target.Account is longer than %d bytes", t, maxAccountLen)
	case len(t.Customer) > maxCustomerLen:
		return nil, invalidf("persist: save %s: Target.Customer is longer than %d bytes", t, maxCustomerLen)
	}
	out := make([]observation, 0, len(snap.Observations))
	seen := make(map[resKey]int, len(snap.Observations))
	for i, o := range snap.Observations {
		bad := func(format string, args ...any) error {
			return invalidf("persist: save %s: observation %d (id %q): %s", t, i, o.ID, fmt.Sprintf(format, args...))
		}
		kind := o.Kind
		if kind == "" {
			kind = t.Kind
		}
		switch {
		case o.ID == "":
			return nil, bad("ID is required")
		case len(o.ID) > maxResourceLen:
			return nil, bad("ID is longer than %d bytes", maxResourceLen)
		case strings.HasSuffix(o.ID, " "):
			// MySQL compares VARCHAR keys ignoring trailing spaces; SQLite does
			// not. Refusing them keeps both databases in agreement.
			return nil, bad("ID ends with a space")
		case len(kind) > maxKindLen:
			return nil, bad("Kind is longer than %d bytes", maxKindLen)
		}
		attrs, err := canonicalObject(o.Attributes)
		if err != nil {
			return nil, bad("attributes: %v", err)
		}
		at := now
		if !o.ObservedAt.IsZero() {
			at = dbTime(o.ObservedAt)
		}
		sum := sha256.Sum256([]byte(attrs))
		ob := observation{index: i, kind: kind, id: o.ID, attrs: attrs, hash: hex.EncodeToString(sum[:]), observedAt: at, partial: o.Partial}
		k := resKey{kind, o.ID}
		if j, dup := seen[k]; dup {
			if !ob.observedAt.Before(out[j].observedAt) {
				out[j] = ob
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, ob)
	}
	return out, nil
}

// canonicalObject returns raw as a canonical JSON object: keys sorted at every
// level, no insignificant whitespace, numbers kept exactly as written, no HTML
// escaping. Empty input is the empty object.
func canonicalObject(raw json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "{}", nil
	}
	if s, ok := canonicalFast(raw); ok {
		return s, nil
	}
	return canonicalSlow(raw)
}

// canonicalSlow is canonicalObject through encoding/json.
func canonicalSlow(raw json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // big integers survive unchanged
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("invalid JSON: data after the top-level value")
	}
	if _, ok := v.(map[string]any); !ok {
		return "", fmt.Errorf("must be a JSON object, got %s", jsonType(v))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // maps marshal with sorted keys
		return "", err
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// storedRow is what Save reads of a stored resource.
type storedRow struct {
	hash       string
	version    int64
	observedAt time.Time
	missing    bool // missing_since is set
	deleted    bool // a tombstone
	attributes string
}

// loadStored reads the stored rows for the observations' ids.
func loadStored(db *gorm.DB, account string, obs []observation) (map[resKey]storedRow, error) {
	byKind := map[string][]string{}
	var kinds []string
	for _, o := range obs {
		if _, ok := byKind[o.kind]; !ok {
			kinds = append(kinds, o.kind)
		}
		byKind[o.kind] = append(byKind[o.kind], o.id)
	}
	observedAt := "observed_at"
	if Driver(db.Dialector.Name()) == SQLite {
		// As text: the driver would try several layouts on every row.
		observedAt = "CAST(observed_at AS TEXT)"
	}
	cols := "resource_id, hash, version, " + observedAt + ", missing_since IS NOT NULL, deleted_at IS NOT NULL, attributes"
	stored := make(map[resKey]storedRow, len(obs))
	for _, kind := range kinds {
		for ids := range slices.Chunk(byKind[kind], inListChunk) {
			args := make([]any, 0, 2+len(ids))
			args = append(args, account, kind)
			for _, id := range ids {
				args = append(args, id)
			}
			q := "SELECT " + cols + " FROM " + tblResources + " WHERE account = ? AND kind = ? AND resource_id IN (" + placeholders(len(ids)) + ")"
			if err := scanStored(db, q, args, kind, stored); err != nil {
				return nil, fmt.Errorf("read %s: %w", tblResources, err)
			}
		}
	}
	return stored, nil
}

func scanStored(db *gorm.DB, q string, args []any, kind string, into map[resKey]storedRow) error {
	rows, err := db.Raw(q, args...).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			r  storedRow
		)
		if err := rows.Scan(&id, &r.hash, &r.version, timeScanner{&r.observedAt}, &r.missing, &r.deleted, &r.attributes); err != nil {
			return err
		}
		into[resKey{kind, id}] = r
	}
	return rows.Err()
}

// timeScanner scans a time that MySQL returns as a time.Time and SQLite as
// the text its driver writes.
type timeScanner struct{ t *time.Time }

// sqliteTimeLayouts are the layouts of times written by the SQLite driver:
// its default first.
var sqliteTimeLayouts = []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02T15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999"}

func (s timeScanner) Scan(v any) error {
	var text string
	switch v := v.(type) {
	case time.Time:
		*s.t = v
		return nil
	case string:
		text = v
	case []byte:
		text = string(v)
	default:
		return fmt.Errorf("unsupported time value %T", v)
	}
	var err error
	for _, layout := range sqliteTimeLayouts {
		var t time.Time
		if t, err = time.ParseInLocation(layout, text, time.UTC); err == nil {
			*s.t = t
			return nil
		}
	}
	return err
}

// rowWrite is one row of the resources upsert.
type rowWrite struct {
	row         resourceRow
	prevVersion int64 // the stored version it replaces; 0 for a creation
	// For an update of a live resource: the stored attributes and
	// observation time it replaces.
	live     bool
	before   string
	beforeAt time.Time
}

// savePlan is what a save has to write, computed from the stored rows.
type savePlan struct {
	target state.Target
	now    time.Time
	writes []rowWrite // creations, updates and re-creations of deleted resources
	clears []resKey   // seen again: clear missing_since, nothing else changed
	// Filled by describe from writes.
	history []historyRow
	events  []eventRow
	changes []state.Change
}

func (p *savePlan) empty() bool { return len(p.writes) == 0 && len(p.clears) == 0 }

// planSave decides, per observation, whether to create, update or skip.
func planSave(t state.Target, obs []observation, stored map[resKey]storedRow, now time.Time) *savePlan {
	p := &savePlan{target: t, now: now}
	for i, o := range obs {
		k := resKey{o.kind, o.id}
		old, exists := stored[k]
		if exists && old.observedAt.After(o.observedAt) {
			continue // older than what is stored (for a tombstone: than the deletion)
		}
		live := exists && !old.deleted
		attrs, hash := o.attrs, o.hash
		if live && o.partial {
			attrs, hash = mergePartial(old.attributes, old.hash, o.attrs)
		}
		if live && old.hash == hash {
			if old.missing {
				p.clears = append(p.clears, k)
			}
			continue // unchanged
		}
		if p.writes == nil { // the first write: room for the rest
			p.writes = make([]rowWrite, 0, len(obs)-i)
		}
		w := rowWrite{row: resourceRow{
			Account: t.Account, Kind: o.kind, ResourceID: o.id, Customer: t.Customer,
			Hash: hash, Version: 1, Attributes: attrs, ObservedAt: o.observedAt, UpdatedAt: now,
		}}
		if exists { // live, or a tombstone: created again, the version sequence goes on
			w.prevVersion = old.version
			w.row.Version = old.version + 1
		}
		if live {
			w.live, w.before, w.beforeAt = true, old.attributes, old.observedAt.UTC()
		}
		p.writes = append(p.writes, w)
	}
	return p
}

// describe builds the changes of the plan's writes, with their history rows
// and outbox events.
func (p *savePlan) describe() {
	p.grow(len(p.writes))
	for i := range p.writes {
		w := &p.writes[i]
		r := &w.row
		ch := state.Change{
			Op:      state.Created,
			Target:  state.Target{Account: p.target.Account, Customer: p.target.Customer, Kind: r.Kind, Resource: r.ResourceID},
			After:   &state.Observation{Kind: r.Kind, ID: r.ResourceID, Attributes: json.RawMessage(r.Attributes), ObservedAt: r.ObservedAt},
			Version: r.Version,
		}
		if w.live {
			ch.Op = state.Updated
			ch.Before = &state.Observation{Kind: r.Kind, ID: r.ResourceID, Attributes: json.RawMessage(w.before), ObservedAt: w.beforeAt}
			ch.Fields = diffFields(w.before, r.Attributes)
		}
		p.record(ch, r.Attributes, r.ObservedAt, p.now)
	}
}

// grow makes room for n more changes.
// undescribe drops what describe built, for the plan to be written again.
func (p *savePlan) undescribe() {
	p.history, p.events, p.changes = p.history[:0], p.events[:0], p.changes[:0]
}

func (p *savePlan) grow(n int) {
	p.history = slices.Grow(p.history, n)
	p.events = slices.Grow(p.events, n)
	p.changes = slices.Grow(p.changes, n)
}

// record adds a change with its history entry and outbox event.
func (p *savePlan) record(ch state.Change, attrs string, observedAt, now time.Time) {
	p.history = append(p.history, historyRow{
		Account: ch.Target.Account, Kind: ch.Target.Kind, ResourceID: ch.Target.Resource, Customer: ch.Target.Customer,
		Op: string(ch.Op), Version: ch.Version, Fields: jsonStrings(ch.Fields), Attributes: attrs,
		ObservedAt: observedAt, RecordedAt: now,
	})
	p.events = append(p.events, changeEvent(ch, now))
	p.changes = append(p.changes, ch)
}

// mergePartial patches the stored attributes with a partial observation's
// top-level keys and returns the canonical result and its hash; when the
// patch changes nothing it returns the stored ones without re-encoding.
func mergePartial(oldAttrs, oldHash, partial string) (attrs, hash string) {
	var stored, patch map[string]json.RawMessage
	_ = json.Unmarshal([]byte(oldAttrs), &stored) // both are canonical objects
	_ = json.Unmarshal([]byte(partial), &patch)
	changed := false
	for k, v := range patch {
		if sv, ok := stored[k]; !ok || !bytes.Equal(sv, v) {
			changed = true
			break
		}
	}
	if !changed {
		return oldAttrs, oldHash
	}
	if stored == nil {
		stored = make(map[string]json.RawMessage, len(patch))
	}
	maps.Copy(stored, patch)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // values are canonical already; keep them byte for byte
	_ = enc.Encode(stored)   // sorted keys, as canonicalObject writes them
	attrs = string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	sum := sha256.Sum256([]byte(attrs))
	return attrs, hex.EncodeToString(sum[:])
}

// diffFields returns the sorted top-level keys whose canonical values differ,
// including keys present on one side only.
func diffFields(before, after string) []string {
	if fields, ok := diffFieldsFast(before, after); ok {
		return fields
	}
	return diffFieldsSlow(before, after)
}

// diffFieldsSlow is diffFields through encoding/json.
func diffFieldsSlow(before, after string) []string {
	var b, a map[string]json.RawMessage
	_ = json.Unmarshal([]byte(before), &b) // stored and new are canonical objects
	_ = json.Unmarshal([]byte(after), &a)
	var fields []string
	for k, bv := range b {
		if av, ok := a[k]; !ok || !bytes.Equal(av, bv) {
			fields = append(fields, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			fields = append(fields, k)
		}
	}
	slices.Sort(fields)
	return fields
}

// write applies the plan inside tx and describes its changes. A row created
// or bumped by another writer since the plan was made fails with
// errConflict, and the caller retries the whole save with fresh rows.
func (p *savePlan) write(tx *gorm.DB, historyTable string) error {
	// The changes, their history rows and events are built while the
	// database works on the upsert.
	described := make(chan struct{})
	go func() {
		defer close(described)
		p.describe()
	}()
	err := upsertResources(tx, p.writes)
	if err == nil {
		err = clearMissing(tx, p.target.Account, p.clears)
	}
	<-described
	if err != nil {
		return err
	}
	if err := insertHistory(tx, historyTable, p.history); err != nil {
		return err
	}
	return insertEvents(tx, p.events)
}

// clearMissing clears missing_since on live rows that were seen again.
func clearMissing(tx *gorm.DB, account string, keys []resKey) error {
	byKind := map[string][]string{}
	for _, k := range keys {
		byKind[k.kind] = append(byKind[k.kind], k.id)
	}
	for kind, ids := range byKind {
		for chunk := range slices.Chunk(ids, inListChunk) {
			err := tx.Model(&resourceRow{}).
				Where("account = ? AND kind = ? AND resource_id IN ? AND missing_since IS NOT NULL AND deleted_at IS NULL", account, kind, chunk).
				Update("missing_since", nil).Error
			if err != nil {
				return fmt.Errorf("update %s: %w", tblResources, err)
			}
		}
	}
	return nil
}

// Resource returns the stored state of one resource, or an error matching
// [ErrNotFound]; a deleted resource is not found.
func (s *Store) Resource(ctx context.Context, account, kind, id string) (Resource, error) {
	var rows []resourceRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).
			Where("account = ? AND kind = ? AND resource_id = ? AND deleted_at IS NULL", account, kind, id).
			Limit(1).Find(&rows).Error
	})
	if err != nil {
		return Resource{}, fmt.Errorf("persist: resource %s/%s/%s: %w", account, kind, id, err)
	}
	if len(rows) == 0 {
		return Resource{}, fmt.Errorf("persist: resource %s/%s/%s: %w", account, kind, id, ErrNotFound)
	}
	return rows[0].resource(), nil
}

// History returns the recorded changes of one resource from the analytics
// database, oldest first. With a separate analytics database, changes appear
// there only after [Store.FlushHistory] has moved them.
func (s *Store) History(ctx context.Context, account, kind, id string) ([]HistoryEntry, error) {
	var rows []historyRow
	err := retry(ctx, func() error {
		return s.ana.reader.WithContext(ctx).Table(tblHistory).
			Where("account = ? AND kind = ? AND resource_id = ?", account, kind, id).
			Order("version").Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: history %s/%s/%s: %w", account, kind, id, err)
	}
	out := make([]HistoryEntry, 0, len(rows))
	for _, r := range rows {
		var fields []string
		if err := json.Unmarshal([]byte(r.Fields), &fields); err != nil {
			return nil, fmt.Errorf("persist: history %s/%s/%s version %d: fields: %w", account, kind, id, r.Version, err)
		}
		if len(fields) == 0 {
			fields = nil
		}
		out = append(out, HistoryEntry{
			Account: r.Account, Customer: r.Customer, Kind: r.Kind, ID: r.ResourceID,
			Op: state.ChangeOp(r.Op), Version: r.Version, Fields: fields,
			Attributes: json.RawMessage(r.Attributes), ObservedAt: r.ObservedAt.UTC(), RecordedAt: r.RecordedAt.UTC(),
		})
	}
	return out, nil
}

// FlushHistory moves history from the provisioning database's outbox to the
// analytics database and returns how many entries it moved. It is idempotent
// and safe to run concurrently: entries are copied with insert-if-absent on
// (account, kind, resource_id, version) and then deleted from the outbox, so
// an interrupted flush repeats harmlessly. With a single database there is no
// outbox and it returns 0.
//
// It is a step of the worker's protocol, taken by the history flusher: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) FlushHistory(ctx context.Context) (int, error) {
	if s.ana == s.prov {
		return 0, nil
	}
	total := 0
	for {
		var rows []historyRow
		err := retry(ctx, func() error {
			return s.prov.reader.WithContext(ctx).Table(tblOutbox).Order("id").Limit(inListChunk).Find(&rows).Error
		})
		if err != nil {
			return total, fmt.Errorf("persist: flush history: read outbox: %w", err)
		}
		if len(rows) == 0 {
			return total, nil
		}
		ids := make([]int64, len(rows))
		for i := range rows {
			ids[i] = rows[i].ID
			rows[i].ID = 0 // the analytics database numbers its own rows
		}
		err = retry(ctx, func() error {
			return s.ana.writer.WithContext(ctx).Table(tblHistory).
				Clauses(clause.OnConflict{Columns: historyKeyColumns, DoNothing: true}).
				CreateInBatches(rows, insertBatch).Error
		})
		if err != nil {
			return total, fmt.Errorf("persist: flush history: copy to %s: %w", s.ana.desc, err)
		}
		var deleted int64
		err = retry(ctx, func() error {
			res := s.prov.writer.WithContext(ctx).Table(tblOutbox).Where("id IN ?", ids).Delete(&historyRow{})
			deleted = res.RowsAffected
			return res.Error
		})
		if err != nil {
			return total, fmt.Errorf("persist: flush history: delete from outbox: %w", err)
		}
		total += int(deleted)
		if len(rows) < inListChunk {
			return total, nil
		}
	}
}

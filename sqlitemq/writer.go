package sqlitemq

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// The queue's one table. id is AUTOINCREMENT so that an id is never reused:
// a late ack of a message deleted long ago cannot delete a newer one.
// visible_at (Unix ns) is when the message may next be handed out: its
// publish time, a delay's end (PublishDelayed), or a lease's end while a
// subscriber holds it. claim tells leases apart: a subscriber whose lease
// ran out (and whose message another one took) cannot renew or release it.
const schema = `
CREATE TABLE IF NOT EXISTS sqlitemq_messages (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	topic      TEXT    NOT NULL,
	uuid       TEXT    NOT NULL,
	metadata   BLOB    NOT NULL,
	payload    BLOB    NOT NULL,
	visible_at INTEGER NOT NULL,
	claim      INTEGER NOT NULL DEFAULT 0,
	deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sqlitemq_messages_due ON sqlitemq_messages (topic, visible_at, id);
`

type opKind uint8

const (
	opPublish opKind = iota // insert msgs into topic, visible after delay
	opAck                   // delete refs
	opNack                  // make refs visible now
	opRenew                 // extend the leases of refs
	opClaim                 // hand out up to n due messages of topic
)

// ref names one held message: its row and the claim that holds it.
type ref struct{ id, claim int64 }

// op is one request to the writer. done (buffered) receives the result when
// the op has committed; nil done is fire and forget (acks, renewals).
type op struct {
	kind  opKind
	topic string
	msgs  []*message.Message
	delay time.Duration
	refs  []ref
	n     int
	done  chan opResult
}

type claimed struct {
	ref
	uuid     string
	metadata []byte
	payload  []byte
}

type opResult struct {
	err     error
	claimed []claimed
}

// writer is the one goroutine that writes the file: it takes whatever ops
// are waiting (up to MaxBatch) and commits them in one transaction, so
// concurrent publishes, acks and claims share one commit (one fsync).
type writer struct {
	db       *sql.DB
	ops      chan op
	stop     chan struct{}
	stopped  chan struct{}
	cfg      *Config
	notify   func(topic string)
	lastNow  int64
	nextTok  int64
	wakeSeen map[string]struct{}
	commits  atomic.Int64 // transactions committed, for tests and stats
}

func (w *writer) run() {
	defer close(w.stopped)
	batch := make([]op, 0, w.cfg.MaxBatch)
	for {
		var first op
		select {
		case first = <-w.ops:
		case <-w.stop:
			// Close sends nothing after stop; commit what is queued.
			for {
				select {
				case o := <-w.ops:
					batch = append(batch, o)
					if len(batch) == w.cfg.MaxBatch {
						w.commit(batch)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				w.commit(batch)
			}
			return
		}
		batch = append(batch[:0], first)
		// Take what is waiting; then yield once, so that goroutines about
		// to send (a handler acking, a publisher) join this commit rather
		// than pay for the next one.
		for yielded := false; ; yielded = true {
		fill:
			for len(batch) < w.cfg.MaxBatch {
				select {
				case o := <-w.ops:
					batch = append(batch, o)
				default:
					break fill
				}
			}
			if yielded || len(batch) == w.cfg.MaxBatch {
				break
			}
			runtime.Gosched()
		}
		w.commit(batch)
		clear(batch)
	}
}

// commit applies batch in one transaction and answers every op. If the
// transaction fails, each op is tried again on its own, so that one bad op
// does not fail the others.
func (w *writer) commit(batch []op) {
	results := make([]opResult, len(batch))
	err := w.tx(batch, results)
	if err != nil && len(batch) > 1 {
		for i := range batch {
			results[i] = opResult{}
			if err := w.tx(batch[i:i+1], results[i:i+1]); err != nil {
				results[i] = opResult{err: err}
			}
		}
	} else if err != nil {
		results[0] = opResult{err: err}
	}
	clear(w.wakeSeen)
	for i, o := range batch {
		if results[i].err == nil && (o.kind == opPublish && o.delay <= 0 || o.kind == opNack) {
			if _, ok := w.wakeSeen[o.topic]; !ok {
				w.wakeSeen[o.topic] = struct{}{}
				w.notify(o.topic)
			}
		}
		if o.done != nil {
			o.done <- results[i]
		} else if results[i].err != nil {
			w.cfg.Logger.Warn("sqlitemq: could not settle messages; they will be handed out again when their lease ends",
				"topic", o.topic, "messages", len(o.refs), "error", results[i].err)
		}
	}
}

func (w *writer) now() int64 {
	n := w.cfg.Now().UnixNano()
	if n <= w.lastNow {
		n = w.lastNow // the wall clock stepped back: keep publish order
	}
	w.lastNow = n
	return n
}

func (w *writer) tx(batch []op, results []opResult) (err error) {
	ctx := context.Background()
	tx, err := w.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return fmt.Errorf("sqlitemq: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	now := w.now()
	// Ops of one kind become one statement (per chunk): SQLite's cost is
	// per statement as much as per row. Order: new messages and settled
	// ones first, so that the claims see them.
	var rows []insertRow
	var acks, nacks, renews []ref
	for _, o := range batch {
		switch o.kind {
		case opPublish:
			at := now + max(int64(o.delay), 0)
			for _, m := range o.msgs {
				rows = append(rows, insertRow{topic: o.topic, msg: m, at: at})
			}
		case opAck:
			acks = append(acks, o.refs...)
		case opNack:
			nacks = append(nacks, o.refs...)
		case opRenew:
			renews = append(renews, o.refs...)
		}
	}
	if err := insertRows(ctx, tx, rows); err != nil {
		return fmt.Errorf("sqlitemq: publish: %w", err)
	}
	if err := execRefs(ctx, tx, "DELETE FROM sqlitemq_messages WHERE id IN (", ")", nil, acks, false); err != nil {
		return fmt.Errorf("sqlitemq: ack: %w", err)
	}
	if err := execRefs(ctx, tx, "UPDATE sqlitemq_messages SET visible_at = ?, claim = 0 WHERE id IN (", ")", []any{now}, nacks, true); err != nil {
		return fmt.Errorf("sqlitemq: nack: %w", err)
	}
	until := now + int64(w.cfg.VisibilityTimeout)
	if err := execRefs(ctx, tx, "UPDATE sqlitemq_messages SET visible_at = ? WHERE id IN (", ")", []any{until}, renews, true); err != nil {
		return fmt.Errorf("sqlitemq: renew leases: %w", err)
	}
	for i, o := range batch {
		if o.kind == opClaim {
			got, err := w.claim(ctx, tx, o.topic, o.n, now)
			if err != nil {
				return fmt.Errorf("sqlitemq: claim from %s: %w", o.topic, err)
			}
			results[i].claimed = got
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitemq: commit: %w", err)
	}
	w.commits.Add(1)
	return nil
}

// claim leases up to n due messages of topic, oldest due first, for
// VisibilityTimeout under a new claim number: one statement.
func (w *writer) claim(ctx context.Context, tx *sql.Tx, topic string, n int, now int64) ([]claimed, error) {
	w.nextTok++
	tok := w.nextTok
	rows, err := tx.QueryContext(ctx, `UPDATE sqlitemq_messages SET visible_at = ?, claim = ?, deliveries = deliveries + 1
		WHERE id IN (SELECT id FROM sqlitemq_messages WHERE topic = ? AND visible_at <= ? ORDER BY visible_at, id LIMIT ?)
		RETURNING id, uuid, metadata, payload`, now+int64(w.cfg.VisibilityTimeout), tok, topic, now, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var got []claimed
	for rows.Next() {
		c := claimed{ref: ref{claim: tok}}
		if err := rows.Scan(&c.id, &c.uuid, &c.metadata, &c.payload); err != nil {
			return nil, err
		}
		got = append(got, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// RETURNING has no order; ids grow with publish order, which is the
	// due order except for nacked and delayed messages.
	slices.SortFunc(got, func(a, b claimed) int { return cmp.Compare(a.id, b.id) })
	return got, nil
}

type insertRow struct {
	topic string
	msg   *message.Message
	at    int64
}

// rowsPerInsert rows of 5 values each keep an INSERT under SQLite's
// parameter limit.
const rowsPerInsert = 200

func insertRows(ctx context.Context, tx *sql.Tx, rows []insertRow) error {
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), rowsPerInsert)]
		rows = rows[len(chunk):]
		var sb strings.Builder
		sb.WriteString("INSERT INTO sqlitemq_messages (topic, uuid, metadata, payload, visible_at) VALUES ")
		args := make([]any, 0, 5*len(chunk))
		for i, r := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?)")
			payload := []byte(r.msg.Payload)
			if payload == nil {
				payload = []byte{} // a BLOB, not NULL
			}
			args = append(args, r.topic, r.msg.UUID, encodeMetadata(r.msg.Metadata), payload, r.at)
		}
		if _, err := tx.ExecContext(ctx, sb.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// refsPerStatement keeps statements well under SQLite's parameter limit.
const refsPerStatement = 500

// execRefs runs head + "?,?,…" + tail for the ids of refs, in chunks, with
// args before the ids. With byClaim, each ref matches only under its own
// claim: "(id = ? AND claim = ?) OR …" instead of an IN list.
func execRefs(ctx context.Context, tx *sql.Tx, head, tail string, args []any, refs []ref, byClaim bool) error {
	for len(refs) > 0 {
		chunk := refs[:min(len(refs), refsPerStatement)]
		refs = refs[len(chunk):]
		var sb strings.Builder
		a := append(make([]any, 0, len(args)+2*len(chunk)), args...)
		if byClaim {
			sb.WriteString(strings.TrimSuffix(head, "id IN ("))
			for i, r := range chunk {
				if i > 0 {
					sb.WriteString(" OR ")
				}
				sb.WriteString("(id = ? AND claim = ?)")
				a = append(a, r.id, r.claim)
			}
		} else {
			sb.WriteString(head)
			for i, r := range chunk {
				if i > 0 {
					sb.WriteByte(',')
				}
				sb.WriteByte('?')
				a = append(a, r.id)
			}
			sb.WriteString(tail)
		}
		if _, err := tx.ExecContext(ctx, sb.String(), a...); err != nil {
			return err
		}
	}
	return nil
}

var errStopped = errors.New("sqlitemq: writer stopped")

package sqlitemq

import (
	"bytes"
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
	opClaim                 // hand out up to n due messages of topic; wait for them if none
	opCancel                // answer the waiting claim whose done this is, now
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

// claimed is a message handed to a claim: read back from the file, or (msg
// set) a copy of one published in this process and leased to the claim as
// it was inserted.
type claimed struct {
	ref
	uuid     string
	metadata []byte
	payload  []byte
	msg      *message.Message
}

type opResult struct {
	err     error
	claimed []claimed
}

// waiting is a claim that found nothing due. It waits in the writer: the
// messages this process publishes to its topic are leased to it as they are
// inserted (no read back, no second write), nacked ones are looked for at
// once, and at until (PollInterval) the file is looked at again, for what
// other processes published, delays that ended and leases that ran out.
type waiting struct {
	o     op
	until time.Time
}

// writer is the one goroutine that writes the file: it takes whatever ops
// are waiting (up to MaxBatch) and commits them in one transaction, so
// concurrent publishes, acks and claims share one commit (one fsync).
type writer struct {
	db      *sql.DB
	ops     chan op
	stop    chan struct{}
	stopped chan struct{}
	cfg     *Config
	lastNow int64
	nextTok int64
	commits atomic.Int64 // transactions committed, for tests and stats
	synced  atomic.Int64 // of those, committed with the configured synchronous mode (the others at NORMAL)
	syncNow Synchronous  // the connection's PRAGMA synchronous now (as opened: Config.Synchronous)

	waiting []*waiting // in the order of until
	timer   *time.Timer
}

func (w *writer) run() {
	defer close(w.stopped)
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()
	batch := make([]op, 0, w.cfg.MaxBatch)
	for {
		var due <-chan time.Time
		if len(w.waiting) > 0 {
			w.timer.Reset(time.Until(w.waiting[0].until))
			due = w.timer.C
		}
		select {
		case o := <-w.ops:
			batch = append(batch[:0], o)
		case <-due:
			w.poll()
			continue
		case <-w.stop:
			// Close sends nothing after stop; commit what is queued.
			w.timer.Stop()
			for {
				batch = w.take(batch[:0])
				if len(batch) == 0 {
					break
				}
				w.commit(batch)
			}
			for _, wt := range w.waiting {
				wt.o.done <- opResult{}
			}
			w.waiting = nil
			return
		}
		w.timer.Stop()
		// Take what is waiting; then yield once, so that goroutines about
		// to send (a handler acking, a publisher) join this commit rather
		// than pay for the next one.
		batch = w.take(batch)
		if len(batch) < w.cfg.MaxBatch {
			runtime.Gosched()
			batch = w.take(batch)
		}
		w.commit(batch)
		clear(batch)
	}
}

// take appends the ops waiting in the channel to batch, up to MaxBatch.
func (w *writer) take(batch []op) []op {
	for len(batch) < w.cfg.MaxBatch {
		select {
		case o := <-w.ops:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// outcome is what a committed transaction changes in the waiting claims.
type outcome struct {
	answer map[*waiting][]claimed // waiting claims that got messages
	park   []int                  // batch ops (claims) that found nothing: they wait
}

// commit applies batch in one transaction and answers every op. If the
// transaction fails, each op is tried again on its own, so that one bad op
// does not fail the others.
func (w *writer) commit(batch []op) {
	if !slices.ContainsFunc(batch, func(o op) bool { return o.kind != opCancel }) {
		for _, o := range batch {
			w.cancel(o.done)
		}
		return
	}
	results := make([]opResult, len(batch))
	parked := make([]bool, len(batch))
	out, err := w.tx(batch, results)
	if err == nil {
		w.apply(batch, out, parked)
	} else if len(batch) == 1 {
		results[0] = opResult{err: err}
	} else {
		for i := range batch {
			results[i] = opResult{}
			out, err := w.tx(batch[i:i+1], results[i:i+1])
			if err != nil {
				results[i] = opResult{err: err}
				continue
			}
			w.apply(batch[i:i+1], out, parked[i:i+1])
		}
	}
	for i, o := range batch {
		switch {
		case parked[i] || o.kind == opCancel:
		case o.done != nil:
			o.done <- results[i]
		case results[i].err != nil:
			w.cfg.Logger.Warn("sqlitemq: could not settle messages; they will be handed out again when their lease ends",
				"messages", len(o.refs), "error", results[i].err)
		}
	}
	for _, o := range batch {
		if o.kind == opCancel {
			w.cancel(o.done)
		}
	}
}

// apply answers the waiting claims that got messages and parks the claims
// of batch that found none.
func (w *writer) apply(batch []op, out outcome, parked []bool) {
	if len(out.answer) > 0 {
		w.waiting = slices.DeleteFunc(w.waiting, func(wt *waiting) bool {
			got, ok := out.answer[wt]
			if ok {
				wt.o.done <- opResult{claimed: got}
			}
			return ok
		})
	}
	until := time.Now().Add(w.cfg.PollInterval)
	for _, i := range out.park {
		w.waiting = append(w.waiting, &waiting{o: batch[i], until: until})
		parked[i] = true
	}
}

// cancel answers the waiting claim whose done this is with nothing; if it
// is not waiting, its answer was already sent.
func (w *writer) cancel(done chan opResult) {
	w.waiting = slices.DeleteFunc(w.waiting, func(wt *waiting) bool {
		if wt.o.done == done {
			done <- opResult{}
			return true
		}
		return false
	})
}

// poll looks in the file again for the waiting claims whose time is up and
// answers them, with messages or without.
func (w *writer) poll() {
	now := time.Now()
	n := 0
	for n < len(w.waiting) && !w.waiting[n].until.After(now) {
		n++
	}
	if n == 0 {
		return
	}
	expired := w.waiting[:n:n]
	w.waiting = slices.Clone(w.waiting[n:])
	results := make([]opResult, len(expired))
	err := w.inTx(false, func(tx *sql.Tx, now int64) error {
		for i, wt := range expired {
			got, err := w.claim(tx, wt.o.topic, wt.o.n, now)
			if err != nil {
				return fmt.Errorf("sqlitemq: claim from %s: %w", wt.o.topic, err)
			}
			results[i].claimed = got
		}
		return nil
	})
	for i, wt := range expired {
		if err != nil {
			results[i] = opResult{err: err}
		}
		wt.o.done <- results[i]
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

// inTx runs f in one write transaction (BEGIN IMMEDIATE, by _txlock) and
// commits. A transaction that publishes (durable) commits with the
// configured synchronous mode; one that only settles, claims or renews
// commits at NORMAL: in WAL mode its frames are in the log at once (a crash
// of the process loses nothing), and the next durable commit's fsync of the
// log covers them, since the log is synced as one file. What a power cut
// can take from them is an ack, a nack, a claim or a lease renewal, and
// each of those only makes a message due again: delivery stays at least
// once, and no published message depends on them.
func (w *writer) inTx(durable bool, f func(tx *sql.Tx, now int64) error) (err error) {
	want := w.cfg.Synchronous
	if !durable {
		want = SyncNormal
	}
	if want != w.syncNow {
		if _, err := w.db.Exec("PRAGMA synchronous = " + string(want)); err != nil {
			return fmt.Errorf("sqlitemq: synchronous %s: %w", want, err)
		}
		w.syncNow = want
	}
	tx, err := w.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("sqlitemq: begin: %w", err)
	}
	if err := f(tx, w.now()); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("sqlitemq: commit: %w", err)
	}
	w.commits.Add(1)
	if want == w.cfg.Synchronous {
		w.synced.Add(1)
	}
	return nil
}

// tx applies batch in one transaction. Ops of one kind become one
// statement (per chunk): SQLite's cost is per statement as much as per row.
// Order: settled messages first, then the claims, then new messages, which
// go straight to the claims still waiting for their topic.
func (w *writer) tx(batch []op, results []opResult) (outcome, error) {
	out := outcome{}
	durable := slices.ContainsFunc(batch, func(o op) bool { return o.kind == opPublish })
	err := w.inTx(durable, func(tx *sql.Tx, now int64) error {
		var rows []insertRow
		var acks, nacks, renews []ref
		var nacked map[string]bool
		for _, o := range batch {
			switch o.kind {
			case opPublish:
				at := now + max(int64(o.delay), 0)
				for _, m := range o.msgs {
					rows = append(rows, insertRow{topic: o.topic, msg: m, at: at, due: o.delay <= 0})
				}
			case opAck:
				acks = append(acks, o.refs...)
			case opNack:
				nacks = append(nacks, o.refs...)
				if nacked == nil {
					nacked = map[string]bool{}
				}
				nacked[o.topic] = true
			case opRenew:
				renews = append(renews, o.refs...)
			}
		}
		if err := execRefs(tx, "DELETE FROM sqlitemq_messages WHERE id IN (", nil, acks, false); err != nil {
			return fmt.Errorf("sqlitemq: ack: %w", err)
		}
		if err := execRefs(tx, "UPDATE sqlitemq_messages SET visible_at = ?, claim = 0 WHERE ", []any{now}, nacks, true); err != nil {
			return fmt.Errorf("sqlitemq: nack: %w", err)
		}
		until := now + int64(w.cfg.VisibilityTimeout)
		if err := execRefs(tx, "UPDATE sqlitemq_messages SET visible_at = ? WHERE ", []any{until}, renews, true); err != nil {
			return fmt.Errorf("sqlitemq: renew leases: %w", err)
		}

		// Claims, and who waits for new messages of which topic.
		var takers map[string][]*taker
		var order []*taker
		addTaker := func(topic string, t *taker) {
			if takers == nil {
				takers = map[string][]*taker{}
			}
			takers[topic] = append(takers[topic], t)
			order = append(order, t)
		}
		for _, wt := range w.waiting {
			t := &taker{wt: wt, n: wt.o.n}
			if nacked[wt.o.topic] {
				got, err := w.claim(tx, wt.o.topic, wt.o.n, now)
				if err != nil {
					return fmt.Errorf("sqlitemq: claim from %s: %w", wt.o.topic, err)
				}
				t.got, t.n = got, t.n-len(got)
			}
			addTaker(wt.o.topic, t)
		}
		for i, o := range batch {
			if o.kind != opClaim {
				continue
			}
			got, err := w.claim(tx, o.topic, o.n, now)
			if err != nil {
				return fmt.Errorf("sqlitemq: claim from %s: %w", o.topic, err)
			}
			if len(got) > 0 {
				results[i].claimed = got
				continue
			}
			addTaker(o.topic, &taker{i: i, n: o.n})
		}

		// New messages go to a taker of their topic with a slot left, if
		// there is one, leased to it as they are inserted; the others are
		// stored due.
		var direct []insertRow
		if len(takers) > 0 {
			stored := rows[:0:0]
			for _, r := range rows {
				ts := takers[r.topic]
				for len(ts) > 0 && ts[0].n == 0 {
					ts = ts[1:]
				}
				takers[r.topic] = ts
				if !r.due || len(ts) == 0 {
					stored = append(stored, r)
					continue
				}
				w.nextTok++
				r.claim, r.to = w.nextTok, ts[0]
				ts[0].n--
				direct = append(direct, r)
			}
			rows = stored
		}
		if err := insertRows(tx, rows); err != nil {
			return fmt.Errorf("sqlitemq: publish: %w", err)
		}
		if err := insertLeased(tx, direct, until); err != nil {
			return fmt.Errorf("sqlitemq: publish: %w", err)
		}
		for _, r := range direct {
			r.to.got = append(r.to.got, claimed{ref: ref{id: r.id, claim: r.claim}, uuid: r.msg.UUID, msg: copyMessage(r.msg)})
		}

		for _, t := range order {
			switch {
			case t.wt != nil && len(t.got) > 0:
				if out.answer == nil {
					out.answer = map[*waiting][]claimed{}
				}
				out.answer[t.wt] = t.got
			case t.wt == nil && len(t.got) > 0:
				results[t.i].claimed = t.got
			case t.wt == nil:
				out.park = append(out.park, t.i)
			}
		}
		return nil
	})
	return out, err
}

// taker is a claim that new messages of its topic may go to.
type taker struct {
	wt  *waiting // a claim already waiting, or
	i   int      // the batch op (wt nil)
	n   int      // slots left
	got []claimed
}

// copyMessage is what a subscriber gets of a message published in this
// process: its own copy, payload included.
func copyMessage(m *message.Message) *message.Message {
	c := message.NewMessage(m.UUID, bytes.Clone(m.Payload))
	if c.Payload == nil {
		c.Payload = message.Payload{}
	}
	for k, v := range m.Metadata {
		c.Metadata[k] = v
	}
	return c
}

// claim leases up to n due messages of topic, oldest due first, for
// VisibilityTimeout under a new claim number: one statement.
func (w *writer) claim(tx *sql.Tx, topic string, n int, now int64) ([]claimed, error) {
	w.nextTok++
	tok := w.nextTok
	rows, err := tx.Query(`UPDATE sqlitemq_messages SET visible_at = ?, claim = ?, deliveries = deliveries + 1
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

// insertRow is a message to insert: stored due at at, or (to set) leased
// at once to a taker under its own claim number.
type insertRow struct {
	topic string
	msg   *message.Message
	at    int64
	due   bool // at is now: a taker may have it
	claim int64
	to    *taker
	id    int64 // set by insertLeased
}

// rowsPerInsert rows of up to 7 values each keep an INSERT under SQLite's
// parameter limit.
const rowsPerInsert = 200

func payloadOf(m *message.Message) []byte {
	if m.Payload == nil {
		return []byte{} // a BLOB, not NULL
	}
	return m.Payload
}

func insertRows(tx *sql.Tx, rows []insertRow) error {
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
			args = append(args, r.topic, r.msg.UUID, encodeMetadata(r.msg.Metadata), payloadOf(r.msg), r.at)
		}
		if _, err := tx.Exec(sb.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// insertLeased inserts rows leased until until, each under its own claim
// number, and sets their ids.
func insertLeased(tx *sql.Tx, rows []insertRow, until int64) error {
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), rowsPerInsert)]
		rows = rows[len(chunk):]
		var sb strings.Builder
		sb.WriteString("INSERT INTO sqlitemq_messages (topic, uuid, metadata, payload, visible_at, claim, deliveries) VALUES ")
		args := make([]any, 0, 6*len(chunk))
		byClaim := make(map[int64]int, len(chunk))
		for i, r := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,1)")
			args = append(args, r.topic, r.msg.UUID, encodeMetadata(r.msg.Metadata), payloadOf(r.msg), until, r.claim)
			byClaim[r.claim] = i
		}
		sb.WriteString(" RETURNING id, claim")
		res, err := tx.Query(sb.String(), args...)
		if err != nil {
			return err
		}
		n := 0
		for res.Next() {
			var id, claim int64
			if err := res.Scan(&id, &claim); err != nil {
				_ = res.Close()
				return err
			}
			i, ok := byClaim[claim]
			if !ok {
				_ = res.Close()
				return fmt.Errorf("insert returned claim %d it was not given", claim)
			}
			chunk[i].id = id
			n++
		}
		if err := errors.Join(res.Err(), res.Close()); err != nil {
			return err
		}
		if n != len(chunk) {
			return fmt.Errorf("insert returned %d of %d rows", n, len(chunk))
		}
	}
	return nil
}

// refsPerStatement keeps statements well under SQLite's parameter limit.
const refsPerStatement = 400

// execRefs runs head followed by the refs, in chunks, with args before
// them: head ends in "id IN (" and the ids follow, or, with byClaim, each
// ref matches only under its own claim: "(id = ? AND claim = ?) OR …".
func execRefs(tx *sql.Tx, head string, args []any, refs []ref, byClaim bool) error {
	for len(refs) > 0 {
		chunk := refs[:min(len(refs), refsPerStatement)]
		refs = refs[len(chunk):]
		var sb strings.Builder
		sb.WriteString(head)
		a := append(make([]any, 0, len(args)+2*len(chunk)), args...)
		for i, r := range chunk {
			switch {
			case byClaim && i > 0:
				sb.WriteString(" OR ")
			case i > 0:
				sb.WriteByte(',')
			}
			if byClaim {
				sb.WriteString("(id = ? AND claim = ?)")
				a = append(a, r.id, r.claim)
			} else {
				sb.WriteByte('?')
				a = append(a, r.id)
			}
		}
		if !byClaim {
			sb.WriteByte(')')
		}
		if _, err := tx.Exec(sb.String(), a...); err != nil {
			return err
		}
	}
	return nil
}

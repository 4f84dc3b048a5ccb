package sqlitemq

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/glebarez/go-sqlite" // registers driver "sqlite"
)

// PubSub is a durable work queue in one SQLite file: a Watermill
// [message.Publisher] and [message.Subscriber], and a delayed publisher
// (PublishDelayed). Subscriptions to a topic compete for its messages, in
// this process and in every other process that opens the file.
type PubSub struct {
	cfg  Config
	db   *sql.DB
	w    *writer
	path string

	mu       sync.RWMutex // closed; held shared while an op is enqueued
	closed   bool
	closing  chan struct{}
	wg       sync.WaitGroup // subscriptions, settlers, the lease renewer
	closeErr error
	once     sync.Once

	hmu  sync.Mutex
	held map[int64]int64 // id -> claim of every message handed out here and not settled
}

var (
	_ message.Publisher            = (*PubSub)(nil)
	_ message.Subscriber           = (*PubSub)(nil)
	_ message.SubscribeInitializer = (*PubSub)(nil)
)

// New opens (or creates) the queue file cfg.Path and starts its writer.
// Close the PubSub to release it.
func New(ctx context.Context, cfg Config) (*PubSub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("sqlitemq: queue file %q: %w", cfg.Path, err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, fmt.Errorf("sqlitemq: queue file %s: directory: %w", path, err)
	}
	dsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(%s)&_txlock=immediate",
		path, cfg.BusyTimeout.Milliseconds(), cfg.Synchronous)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitemq: open %s: %w", path, err)
	}
	// One connection: the writer is the only user, and every write in one
	// process goes through it.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := initSchema(ctx, db, cfg.BusyTimeout); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlitemq: open %s: %w", path, err)
	}
	p := &PubSub{cfg: cfg, db: db, path: path, closing: make(chan struct{}),
		held: map[int64]int64{}}
	p.w = &writer{db: db, ops: make(chan op, cfg.MaxBatch), stop: make(chan struct{}), stopped: make(chan struct{}),
		cfg: &p.cfg, nextTok: rand.Int64N(1 << 62), syncNow: cfg.Synchronous}
	go p.w.run()
	p.wg.Add(1)
	go p.renewLeases()
	return p, nil
}

// initSchema creates the table. A new file switches to WAL as the first
// connection opens; when several processes do that at once SQLite may
// answer SQLITE_BUSY at once rather than wait, so it is tried again.
func initSchema(ctx context.Context, db *sql.DB, patience time.Duration) error {
	deadline := time.Now().Add(patience)
	for {
		_, err := db.ExecContext(ctx, schema)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Path is the absolute path of the queue file.
func (p *PubSub) Path() string { return p.path }

// Publish commits msgs to topic and returns once they are in the file
// (fsynced with SyncFull). Messages of concurrent calls share commits.
func (p *PubSub) Publish(topic string, msgs ...*message.Message) error {
	return p.publish(topic, 0, msgs)
}

// PublishDelayed commits msgs to topic, to be handed out no sooner than
// delay from now; the wait survives a restart. It implements the worker's
// DelayPublisher.
func (p *PubSub) PublishDelayed(topic string, delay time.Duration, msgs ...*message.Message) error {
	return p.publish(topic, delay, msgs)
}

func (p *PubSub) publish(topic string, delay time.Duration, msgs []*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	res, err := p.do(op{kind: opPublish, topic: topic, msgs: msgs, delay: delay})
	if err == nil {
		err = res.err
	}
	return err
}

// do sends o to the writer and waits for its commit.
func (p *PubSub) do(o op) (opResult, error) {
	o.done = make(chan opResult, 1)
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return opResult{}, ErrClosed
	}
	p.w.ops <- o
	p.mu.RUnlock()
	return <-o.done, nil
}

// send hands o to the writer without waiting. Only goroutines that Close
// waits for (p.wg) call it: the writer is still running.
func (p *PubSub) send(o op) { p.w.ops <- o }

// SubscribeInitialize does nothing: every topic is durable from its first
// publish, subscribers or not.
func (p *PubSub) SubscribeInitialize(string) error { return nil }

// Subscribe hands out the messages of topic on the returned channel, up to
// MaxInFlight at a time, until ctx is done or the PubSub is closed; then the
// channel closes. A message is deleted when acked, and handed out again at
// once when nacked, or after VisibilityTimeout when this process dies with
// it. Messages handed out before the end can still be acked or nacked; those
// claimed but not yet handed out go back to the queue. Each message's
// context is done when it is acked or nacked, or the PubSub is closed.
func (p *PubSub) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, ErrClosed
	}
	out := make(chan *message.Message)
	p.wg.Add(1)
	go p.consume(ctx, topic, out)
	return out, nil
}

func (p *PubSub) consume(ctx context.Context, topic string, out chan<- *message.Message) {
	defer p.wg.Done()
	defer close(out)
	n := p.cfg.MaxInFlight
	slots := make(chan struct{}, n) // a token per free slot
	for range n {
		slots <- struct{}{}
	}
	var gather *time.Timer
	for {
		select {
		case <-slots:
		case <-ctx.Done():
			return
		case <-p.closing:
			return
		}
		want := 1
	more:
		for want < n {
			select {
			case <-slots:
				want++
			default:
				break more
			}
		}
		if want < n/4 {
			// Messages are still in hand: rather than a commit per freed
			// slot, wait a moment for a quarter of the slots, so claims
			// (and their commits) are few and large. Those in hand keep
			// the consumer busy meanwhile; a consumer that settles nothing
			// until it has more only waits the moment.
			if gather == nil {
				gather = time.NewTimer(gatherWait)
			} else {
				gather.Reset(gatherWait)
			}
		wait:
			for want < n/4 {
				select {
				case <-slots:
					want++
				case <-gather.C:
					break wait
				case <-ctx.Done():
					return
				case <-p.closing:
					return
				}
			}
			gather.Stop()
		}
		// The writer answers when messages are due, or after PollInterval
		// without any: then ask again.
		res, err := p.claim(ctx, topic, want)
		for range want - len(res) {
			slots <- struct{}{}
		}
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return
			}
			p.cfg.Logger.Warn("sqlitemq: cannot take messages; trying again", "topic", topic, "error", err)
			select {
			case <-time.After(max(p.cfg.PollInterval, 100*time.Millisecond)):
			case <-ctx.Done():
				return
			case <-p.closing:
				return
			}
			continue
		}
		for i, c := range res {
			if ctx.Err() != nil {
				p.release(topic, res[i:])
				return
			}
			msg := c.msg
			if msg == nil {
				md, err := decodeMetadata(c.metadata)
				if err != nil {
					// Not ours to judge; hand it out with what can be read.
					p.cfg.Logger.Error("sqlitemq: message with unreadable metadata", "topic", topic, "uuid", c.uuid)
					md = message.Metadata{}
				}
				msg = message.NewMessage(c.uuid, c.payload)
				msg.Metadata = md
			}
			mctx, cancel := context.WithCancel(ctx)
			msg.SetContext(mctx)
			select {
			case out <- msg:
				p.wg.Add(1)
				go p.settle(msg, c.ref, topic, cancel, slots)
			case <-ctx.Done():
				cancel()
				p.release(topic, res[i:])
				return
			case <-p.closing:
				cancel()
				return // Close releases what is held
			}
		}
	}
}

// gatherWait is how long a subscription with messages in hand waits for
// more free slots before it claims.
const gatherWait = 2 * time.Millisecond

// claim asks the writer for up to n due messages of topic, waiting up to
// PollInterval for some, and records them as held. When ctx is done or the
// PubSub closes first, the claim is called off and what it got meanwhile
// goes back to the queue.
func (p *PubSub) claim(ctx context.Context, topic string, n int) ([]claimed, error) {
	o := op{kind: opClaim, topic: topic, n: n, done: make(chan opResult, 1)}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return nil, ErrClosed
	}
	p.w.ops <- o
	p.mu.RUnlock()
	var res opResult
	select {
	case res = <-o.done:
	case <-ctx.Done():
		p.abandon(topic, o.done)
		return nil, ctx.Err()
	case <-p.closing:
		p.abandon(topic, o.done)
		return nil, ErrClosed
	}
	if res.err != nil {
		return nil, res.err
	}
	p.hmu.Lock()
	for _, c := range res.claimed {
		p.held[c.id] = c.claim
	}
	p.hmu.Unlock()
	return res.claimed, nil
}

// abandon calls off the claim answering on done and releases what it got.
func (p *PubSub) abandon(topic string, done chan opResult) {
	p.send(op{kind: opCancel, done: done})
	if res := <-done; len(res.claimed) > 0 {
		p.release(topic, res.claimed)
	}
}

// settle waits for the consumer's verdict on msg and passes it on.
func (p *PubSub) settle(msg *message.Message, r ref, topic string, cancel context.CancelFunc, slots chan<- struct{}) {
	defer p.wg.Done()
	defer cancel()
	select {
	case <-msg.Acked():
		p.unhold(r.id)
		p.send(op{kind: opAck, refs: []ref{r}})
	case <-msg.Nacked():
		p.unhold(r.id)
		p.send(op{kind: opNack, refs: []ref{r}, topic: topic})
	case <-p.closing:
		return // Close releases what is held
	}
	slots <- struct{}{}
}

// release puts claimed messages that were never handed out back in the queue.
func (p *PubSub) release(topic string, cs []claimed) {
	refs := make([]ref, len(cs))
	for i, c := range cs {
		refs[i] = c.ref
		p.unhold(c.id)
	}
	if len(refs) > 0 {
		p.send(op{kind: opNack, refs: refs, topic: topic})
	}
}

func (p *PubSub) unhold(id int64) {
	p.hmu.Lock()
	delete(p.held, id)
	p.hmu.Unlock()
}

func (p *PubSub) heldRefs() []ref {
	p.hmu.Lock()
	defer p.hmu.Unlock()
	refs := make([]ref, 0, len(p.held))
	for id, c := range p.held {
		refs = append(refs, ref{id: id, claim: c})
	}
	return refs
}

// renewLeases extends the lease of every held message every third of the
// VisibilityTimeout, so only a dead process's messages come back.
func (p *PubSub) renewLeases() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.VisibilityTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if refs := p.heldRefs(); len(refs) > 0 {
				p.send(op{kind: opRenew, refs: refs})
			}
		case <-p.closing:
			return
		}
	}
}

// Close ends every subscription (their channels close), puts the messages
// this process holds back in the queue, commits what is queued and closes
// the file. Acks after Close are lost: those messages are handed out again.
// Calling it again returns the first result.
func (p *PubSub) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.closing)
		p.wg.Wait()
		if refs := p.heldRefs(); len(refs) > 0 {
			p.send(op{kind: opNack, refs: refs})
		}
		close(p.w.stop)
		<-p.w.stopped
		p.closeErr = p.db.Close()
		if p.closeErr != nil {
			p.closeErr = fmt.Errorf("sqlitemq: close %s: %w", p.path, p.closeErr)
		}
	})
	return p.closeErr
}

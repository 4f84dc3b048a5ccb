package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
)

// noopType is the action type every messaging benchmark publishes.
const noopType = "bench.noop"

var quiet = slog.New(slog.DiscardHandler)

// amqpURL returns the broker for RabbitMQ benchmarks, or skips with the reason.
func amqpURL(b *testing.B) string {
	b.Helper()
	return testenv.AMQPURL(b)
}

// reportRate reports n units of work in elapsed as a rate, e.g. "msg/s".
func reportRate(b *testing.B, n int, elapsed time.Duration, unit string) {
	b.Helper()
	if elapsed <= 0 {
		elapsed = time.Nanosecond
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), unit)
}

// capture is a message.Publisher that keeps what it is given: it lets a
// benchmark encode actions with our Publisher ahead of the timed part.
type capture struct {
	mu   sync.Mutex
	msgs []*message.Message
}

func (c *capture) Publish(_ string, msgs ...*message.Message) error {
	c.mu.Lock()
	c.msgs = append(c.msgs, msgs...)
	c.mu.Unlock()
	return nil
}
func (c *capture) Close() error { return nil }

// benchAction is the action every messaging benchmark sends: a small typical
// request (about 300 bytes on the wire).
func benchAction(i int) worker.Action {
	p, _ := json.Marshal(map[string]any{"image": "debian-13", "size": "m1.small", "n": i})
	return worker.Action{
		Type: noopType, Customer: "cust-0042", Account: "acct-0042",
		Resource: fmt.Sprintf("i-0abc%08x", i), CorrelationID: "req-7", Payload: p,
	}
}

// encodedMessages returns n messages exactly as our Publisher encodes them.
func encodedMessages(b *testing.B, n int) []*message.Message {
	b.Helper()
	c := &capture{}
	p, err := worker.NewPublisher(worker.PublisherConfig{Publisher: c})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := p.Publish(context.Background(), benchAction(i)); err != nil {
			b.Fatal(err)
		}
	}
	return c.msgs
}

// memPoison is a PoisonStore that keeps poisoned actions in memory; the
// benchmarks never poison anything, but our Subscriber requires a store.
type memPoison struct {
	mu  sync.Mutex
	got []persist.Parked
}

func (m *memPoison) AddPoison(_ context.Context, p persist.Parked) error {
	m.mu.Lock()
	m.got = append(m.got, p)
	m.mu.Unlock()
	return nil
}

// counter counts handled messages and closes done at the target.
type counter struct {
	mu     sync.Mutex
	n, max int
	done   chan struct{}
	cond   *sync.Cond
}

func newCounter(max int) *counter {
	c := &counter{max: max, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *counter) inc() {
	c.mu.Lock()
	c.n++
	if c.n == c.max {
		close(c.done)
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

// waitBelow blocks until fewer than window messages are outstanding after
// sent were sent, so a publisher keeps the pipeline full without flooding it.
func (c *counter) waitBelow(sent, window int) {
	c.mu.Lock()
	for sent-c.n >= window {
		c.cond.Wait()
	}
	c.mu.Unlock()
}

func (c *counter) wait(b *testing.B, timeout time.Duration) {
	b.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.mu.Lock()
		n := c.n
		c.mu.Unlock()
		b.Fatalf("only %d of %d messages handled within %v", n, c.max, timeout)
	}
}

package bench

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stratusworks/worker/internal/testenv"
)

// callers is how many goroutines publish at once in the RabbitMQ benchmarks,
// on both sides of a pair; each has one message outstanding at a time.
// BENCH_CALLERS overrides it.
var callers = envInt("BENCH_CALLERS", 256)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// parallel runs f(i) for i in [0, n) on `workers` goroutines and returns
// the first error.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// rawConn dials the broker with plain amqp091-go.
func rawConn(b *testing.B, url string) *amqp.Connection {
	b.Helper()
	c, err := amqp.Dial(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// rawQueue declares a fresh durable queue and deletes it when b ends.
func rawQueue(b *testing.B, url string, c *amqp.Connection) string {
	b.Helper()
	name := testenv.UniqueName(b)
	ch, err := c.Channel()
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	testenv.DeleteQueuesOnCleanup(b, url, name)
	return name
}

// rawPublisher is the hand-rolled baseline publisher: one confirm-mode
// channel shared by every caller, each waiting for its own deferred confirm,
// so up to `callers` messages are outstanding.
type rawPublisher struct {
	ch *amqp.Channel
}

func newRawPublisher(b *testing.B, c *amqp.Connection) *rawPublisher {
	b.Helper()
	ch, err := c.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	return &rawPublisher{ch: ch}
}

// rawPublishing is what the baseline sends: the body, persistent.
func rawPublishing(body []byte) amqp.Publishing {
	return amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body}
}

// sameAsOurs is what rabbitmq.Publisher sends for m: the Watermill metadata
// and UUID as headers, a message id, a timestamp, persistent, mandatory.
func sameAsOurs(m *message.Message) amqp.Publishing {
	h := amqp.Table{"_watermill_message_uuid": m.UUID}
	for k, v := range m.Metadata {
		h[k] = v
	}
	return amqp.Publishing{Headers: h, DeliveryMode: amqp.Persistent, Timestamp: time.Now(),
		MessageId: "pubid-" + m.UUID, Body: m.Payload}
}

func (p *rawPublisher) publish(ctx context.Context, queue string, mandatory bool, pub amqp.Publishing) error {
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, mandatory, false, pub)
	if err != nil {
		return err
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		return errNacked
	}
	return nil
}

type benchError string

func (e benchError) Error() string { return string(e) }

const errNacked = benchError("broker nacked the message")

// timeoutCtx bounds the timed part of a RabbitMQ benchmark.
func timeoutCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

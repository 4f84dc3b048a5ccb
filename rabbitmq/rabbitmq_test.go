package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stratusworks/worker/internal/faultproxy"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig(t *testing.T) Config {
	return Config{URL: testenv.AMQPURL(t), Logger: quiet()}
}

// throughProxy is cfg with the broker reached through a fault proxy that
// the test can cut and restore; the proxy closes when the test ends.
func throughProxy(t *testing.T, cfg Config) (Config, *faultproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(cfg.URL)
	require.NoError(t, err)
	proxy, err := faultproxy.New(u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	u.Host = proxy.Addr()
	cfg.URL = u.String()
	return cfg, proxy
}

func newPair(t *testing.T, cfg Config) (*Publisher, *Subscriber) {
	t.Helper()
	ctx := context.Background()
	pub, err := NewPublisher(ctx, cfg)
	require.NoError(t, err)
	sub, err := NewSubscriber(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close(); _ = sub.Close() })
	return pub, sub
}

func queue(t *testing.T, url string) string {
	q := testenv.UniqueName(t)
	testenv.DeleteQueuesOnCleanup(t, url, q)
	return q
}

// TestRabbitMQConfirmedConcurrentPublish: many goroutines share the
// publisher; every message of every nil Publish is consumed.
func TestRabbitMQConfirmedConcurrentPublish(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pub, sub := newPair(t, cfg)
	q := queue(t, cfg.URL)
	const writers, each = 8, 250
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i += 5 { // batches of 5
				var batch []*message.Message
				for j := 0; j < 5; j++ {
					batch = append(batch, message.NewMessage(fmt.Sprintf("%d-%d", w, i+j), []byte("x")))
				}
				require.NoError(t, pub.Publish(q, batch...))
			}
		}(w)
	}
	wg.Wait()
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	seen := map[string]bool{}
	for len(seen) < writers*each {
		select {
		case m := <-msgs:
			seen[m.UUID] = true
			m.Ack()
		case <-time.After(10 * time.Second):
			t.Fatalf("received %d of %d", len(seen), writers*each)
		}
	}
}

func TestRabbitMQUnroutable(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pub, _ := newPair(t, cfg)
	q := queue(t, cfg.URL)
	require.NoError(t, pub.Publish(q, message.NewMessage("a", []byte("x"))))
	// Delete the queue behind the publisher's back: the next message has nowhere to go.
	conn, err := amqp.Dial(cfg.URL)
	require.NoError(t, err)
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDelete(q, false, false, false)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	err = pub.Publish(q, message.NewMessage("b", []byte("x")))
	require.ErrorIs(t, err, ErrUnroutable)
	require.Contains(t, err.Error(), "NO_ROUTE")
}

// TestRabbitMQOneInHandPerSubscription: the next message waits for the
// previous one's ack, and a nack requeues.
func TestRabbitMQNackRequeues(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pub, sub := newPair(t, cfg)
	q := queue(t, cfg.URL)
	require.NoError(t, pub.Publish(q, message.NewMessage("a", []byte("x"))))
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	m := <-msgs
	require.Equal(t, "a", m.UUID)
	m.Nack()
	m = <-msgs
	require.Equal(t, "a", m.UUID)
	m.Ack()
}

// TestRabbitMQConnectionCut: publishing continues across a cut connection
// (through an in-process fault proxy); every Publish that returned nil is
// consumed, and publish with PublishTimeout < 0 fails fast while down.
func TestRabbitMQConnectionCut(t *testing.T) {
	t.Parallel()
	base := testConfig(t)
	cfg, proxy := throughProxy(t, base)
	cfg.PublishTimeout = 20 * time.Second
	cfg.ReconnectMaxInterval = 200 * time.Millisecond
	pub, err := NewPublisher(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	q := queue(t, base.URL)

	var ok atomic.Int64
	published := sync.Map{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := watermill.NewUUID()
				if pub.Publish(q, message.NewMessage(id, []byte("x"))) == nil {
					published.Store(id, true)
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	proxy.Cut()
	time.Sleep(500 * time.Millisecond)
	proxy.Restore()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	// Fail fast while down.
	fast := cfg
	fast.PublishTimeout = -1
	fp, err := NewPublisher(context.Background(), fast)
	require.NoError(t, err)
	defer fp.Close()
	proxy.Cut()
	err = fp.Publish(q, message.NewMessage("late", []byte("x")))
	require.Error(t, err)
	require.True(t, errors.Is(err, ErrNotConnected) || errors.Is(err, ErrNotConfirmed), err.Error())
	proxy.Restore()

	sub, err := NewSubscriber(context.Background(), base)
	require.NoError(t, err)
	defer sub.Close()
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)
	got := map[string]bool{}
	want := int(ok.Load())
	deadline := time.After(20 * time.Second)
	for {
		lost := 0
		published.Range(func(k, _ any) bool {
			if !got[k.(string)] {
				lost++
			}
			return true
		})
		if lost == 0 {
			break
		}
		select {
		case m := <-msgs:
			got[m.UUID] = true
			m.Ack()
		case <-deadline:
			t.Fatalf("published=%d received=%d lost=%d", want, len(got), lost)
		}
	}
	t.Logf("published=%d received=%d (duplicates absorbed=%d) lost=0", want, len(got), len(got)-want)
}

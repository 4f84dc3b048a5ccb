package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// blockFake feeds the publisher's current connection fake
// connection.blocked and connection.unblocked notifications through the
// seam conn.watchBlocked. The shared test broker must not be blocked for
// real (a memory or disk alarm would block every other test's publishers),
// so the notifications the broker would send are injected instead; what
// follows them (waiting, failing, logging) is the real code, on a real
// connection.
func blockFake(t *testing.T, c *conn) *fakeBlocks {
	t.Helper()
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	f := &fakeBlocks{t: t, c: c, ch: make(chan amqp.Blocking)}
	done := make(chan struct{})
	go func() { defer close(done); c.watchBlocked(gen, f.ch) }()
	t.Cleanup(func() { close(f.ch); <-done })
	return f
}

type fakeBlocks struct {
	t  *testing.T
	c  *conn
	ch chan amqp.Blocking
}

// send passes b on and waits until the connection's state follows.
func (f *fakeBlocks) send(b amqp.Blocking) {
	f.ch <- b
	require.Eventually(f.t, func() bool { return (f.c.blockedNow().over != nil) == b.Active }, 5*time.Second, time.Millisecond)
}

// TestRabbitMQBlockedPublishFails: while the broker blocks publishers,
// Publish sends nothing and, when PublishTimeout comes, fails with an error
// that wraps ErrBlocked and ErrNotConfirmed and says since when and why;
// the block is logged once at WARN with the broker's reason, its end at INFO
// with how long it lasted; then Publish works again.
func TestRabbitMQBlockedPublishFails(t *testing.T) {
	t.Parallel()
	var got logs
	cfg := testConfig(t)
	cfg.Logger = got.logger()
	cfg.PublishTimeout = 300 * time.Millisecond // the default 30s would make the test wait 30s for the timeout it checks
	pub, _ := newPair(t, cfg)
	q := queue(t, cfg.URL)
	require.NoError(t, pub.SubscribeInitialize(q))

	blocks := blockFake(t, pub.conn)
	blocks.send(amqp.Blocking{Active: true, Reason: "low on memory"})
	blocks.send(amqp.Blocking{Active: true, Reason: "low on memory"}) // a repeat is not logged again
	err := pub.Publish(q, message.NewMessage("m-1", []byte("x")))
	require.ErrorIs(t, err, ErrBlocked)
	require.ErrorIs(t, err, ErrNotConfirmed)
	require.Contains(t, err.Error(), "broker is blocking publishers since "+time.Now().UTC().Format("2006-01-02T"))
	require.Contains(t, err.Error(), "low on memory")
	require.Contains(t, err.Error(), q)
	require.Zero(t, readyMessages(t, cfg.URL, q), "nothing was sent while blocked")

	warns := got.find(slog.LevelWarn, "blocking publishers")
	require.Len(t, warns, 1, "%v", got.atLeast(slog.LevelInfo))
	require.Equal(t, "low on memory", warns[0].attrs["reason"])

	blocks.send(amqp.Blocking{Active: false})
	require.Eventually(t, func() bool { return len(got.find(slog.LevelInfo, "no longer blocking")) == 1 }, 5*time.Second, time.Millisecond)
	require.NotEmpty(t, got.find(slog.LevelInfo, "no longer blocking")[0].attrs["blocked_for"])
	require.NoError(t, pub.Publish(q, message.NewMessage("m-2", []byte("x"))))
	require.Equal(t, 1, readyMessages(t, cfg.URL, q))
}

// TestRabbitMQBlockedPublishWaits: a Publish made while the broker blocks
// publishers waits, and succeeds once the block ends within PublishTimeout.
// A Publish that must not wait (PublishTimeout < 0) fails at once.
func TestRabbitMQBlockedPublishWaits(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	pub, _ := newPair(t, cfg)
	q := queue(t, cfg.URL)
	blocks := blockFake(t, pub.conn)
	blocks.send(amqp.Blocking{Active: true, Reason: "low on disk"})

	done := make(chan error, 1)
	go func() { done <- pub.Publish(q, message.NewMessage("m-1", []byte("x"))) }()
	select {
	case err := <-done:
		t.Fatalf("Publish returned while blocked: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	blocks.send(amqp.Blocking{Active: false})
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Publish did not finish after the block ended")
	}

	fast := testConfig(t)
	fast.PublishTimeout = -1 // the behaviour under test
	fp, _ := newPair(t, fast)
	blockFake(t, fp.conn).send(amqp.Blocking{Active: true, Reason: "low on disk"})
	start := time.Now()
	err := fp.Publish(q, message.NewMessage("m-2", []byte("x")))
	require.ErrorIs(t, err, ErrBlocked)
	require.ErrorIs(t, err, ErrNotConfirmed)
	require.Less(t, time.Since(start), time.Second)
}

// TestConnBlockedState: the block belongs to one connection: it ends when
// that connection closes (logged as such), and a notification about an
// older connection changes nothing.
func TestConnBlockedState(t *testing.T) {
	t.Parallel()
	var got logs
	c := newConn(Config{URL: "amqp://u:p@h/", Logger: got.logger()}, "publisher")
	c.gen = 2
	old := make(chan amqp.Blocking, 1)
	old <- amqp.Blocking{Active: true, Reason: "old"}
	close(old)
	c.watchBlocked(1, old)
	require.Nil(t, c.blockedNow().over, "a notification about connection 1 does not block connection 2")

	cur := make(chan amqp.Blocking, 2)
	cur <- amqp.Blocking{Active: true, Reason: "low on memory"}
	close(cur)
	c.mu.Lock()
	c.block = blockState{}
	c.mu.Unlock()
	c.watchBlocked(2, cur) // blocks, then the connection closes
	require.Nil(t, c.blockedNow().over)
	require.Len(t, got.find(slog.LevelWarn, "blocking publishers"), 1)
	ended := got.find(slog.LevelInfo, "no longer blocking")
	require.Len(t, ended, 1)
	require.Equal(t, "connection closed", ended[0].attrs["ended_by"])
	require.NotContains(t, ended[0].attrs["broker"], ":p@")
}

// TestPublishTimeoutExplainsBlock: a Publish that ran out of time for any
// reason (here: waiting for confirms, the block having come after the
// messages were written) says that the broker is blocking, if it is; one
// that failed in time, or while not blocked, is left as it is.
func TestPublishTimeoutExplainsBlock(t *testing.T) {
	t.Parallel()
	c := newConn(Config{URL: "amqp://u:p@h/", Logger: quiet()}, "publisher")
	p := &Publisher{conn: c}
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	timedOut := fmt.Errorf("%w: no confirm for message m to q within 30s", ErrNotConfirmed)

	require.NotErrorIs(t, p.explain(expired, timedOut), ErrBlocked, "not blocked")
	c.blocked(0, "low on memory")
	err := p.explain(expired, timedOut)
	require.ErrorIs(t, err, ErrBlocked)
	require.ErrorIs(t, err, ErrNotConfirmed)
	require.Contains(t, err.Error(), "no confirm for message m to q within 30s: rabbitmq: broker is blocking publishers since ")
	require.Contains(t, err.Error(), "low on memory")
	require.NotErrorIs(t, p.explain(context.Background(), ErrUnroutable), ErrBlocked, "in time: not about the block")
	require.Equal(t, 1, strings.Count(p.explain(expired, err).Error(), "blocking publishers"), "said once")
}

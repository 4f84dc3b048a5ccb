package rabbitmq

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
)

// TestOutage: one line when an outage begins, then at most one a minute
// however many attempts fail, and the count and length at the end.
func TestOutage(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := outage{now: func() time.Time { return now }}
	type step struct {
		after time.Duration // clock advance before the failure
		log   bool
	}
	steps := []step{{0, true}, {time.Second, false}, {30 * time.Second, false}, {29 * time.Second, true},
		{time.Second, false}, {58 * time.Second, false}, {time.Second, true}} // lines at 0s, 60s, 120s
	for i, s := range steps {
		now = now.Add(s.after)
		require.Equal(t, s.log, o.failed(), "failure %d", i+1)
	}
	lasted, failures, ok := o.end()
	require.True(t, ok)
	require.Equal(t, len(steps), failures)
	require.Equal(t, 2*time.Minute, lasted)
	_, _, ok = o.end()
	require.False(t, ok, "ended")

	require.True(t, o.begin(), "a new outage")
	require.False(t, o.begin(), "in progress")
	require.False(t, o.failed(), "begin was its line")
}

// TestRabbitMQOutageLogs: a broker outage during which reconnecting fails
// many times is logged in one WARN per connection and one per subscription
// when it begins, and one INFO each when it ends; and a clean Close logs
// nothing at WARN or above. (Short reconnect waits, so that the outage
// sees many failed attempts.)
func TestRabbitMQOutageLogs(t *testing.T) {
	t.Parallel()
	var got logs
	base := testConfig(t)
	cfg, proxy := throughProxy(t, base)
	cfg.Logger = got.logger()
	cfg.ReconnectInitialInterval = 5 * time.Millisecond
	cfg.ReconnectMaxInterval = 20 * time.Millisecond
	sub, err := NewSubscriber(context.Background(), cfg)
	require.NoError(t, err)
	q := queue(t, base.URL)
	msgs, err := sub.Subscribe(context.Background(), q)
	require.NoError(t, err)

	proxy.Cut()
	time.Sleep(time.Second)
	proxy.Restore()
	require.Eventually(t, func() bool { return len(got.find(slog.LevelInfo, "consuming again")) == 1 }, 10*time.Second, 10*time.Millisecond)

	warns := got.atLeast(slog.LevelWarn)
	require.Len(t, warns, 2, "%v", warns)
	require.Len(t, got.find(slog.LevelWarn, "connection lost"), 1)
	require.Len(t, got.find(slog.LevelWarn, "subscription interrupted"), 1)
	back := got.find(slog.LevelInfo, "reconnected")
	require.Len(t, back, 1)
	require.NotEqual(t, "0", back[0].attrs["failed_attempts"], "the outage saw failed attempts")
	t.Logf("reconnected after %s failed attempts in %s", back[0].attrs["failed_attempts"], back[0].attrs["outage"])

	pub, err := NewPublisher(context.Background(), cfg)
	require.NoError(t, err)
	require.NoError(t, pub.Publish(q, message.NewMessage("m-1", []byte("x"))))
	next(t, msgs) // in hand at Close: nacked
	before := len(got.atLeast(slog.LevelWarn))
	require.NoError(t, pub.Close())
	require.NoError(t, sub.Close())
	require.Len(t, got.atLeast(slog.LevelWarn), before, "Close logs nothing at WARN or above: %v", got.atLeast(slog.LevelWarn))
}

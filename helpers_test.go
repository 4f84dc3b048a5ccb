package worker

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/testenv"
)

// testLogger shows warnings in verbose runs and nothing otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return discardLogger()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runWorkerUntilCleanup runs w until the test ends, when Run must return
// nil; it returns once w consumes, with the context Run runs under.
func runWorkerUntilCleanup(t *testing.T, w *Worker) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Running():
	case err := <-done:
		cancel()
		t.Fatalf("worker did not start: %v", err)
	}
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return ctx
}

// rawChannel is a channel of a plain AMQP client on the broker at url,
// closed with its connection when the test ends.
func rawChannel(t *testing.T, url string) *amqp091.Channel {
	t.Helper()
	conn, err := amqp091.Dial(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	require.NoError(t, err)
	return ch
}

// uniqueTopology is the default topology under a prefix of the test's own,
// whose queues on the broker at url are deleted when the test ends.
func uniqueTopology(t *testing.T, url string) Topology {
	t.Helper()
	top := Topology{Prefix: testenv.UniqueName(t)}
	top.setDefaults()
	testenv.DeleteQueuesOnCleanup(t, url, top.Topics()...)
	return top
}

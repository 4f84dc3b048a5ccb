package sqlitemq

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
)

func open(t *testing.T, cfg Config) *PubSub {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "queue.db") // a fresh file per test, not queue.db in the working directory
	}
	p, err := New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func recv(t *testing.T, ch <-chan *message.Message, within time.Duration) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		require.True(t, ok, "subscription closed")
		return m
	case <-time.After(within):
		t.Fatalf("no message within %v", within)
		return nil
	}
}

func noMessage(t *testing.T, ch <-chan *message.Message, during time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %s", m.UUID)
	case <-time.After(during):
	}
}

// crash stops p as a killed process would: nothing released, nothing
// committed after this point.
func (p *PubSub) crash() {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.closing)
		p.wg.Wait()
		close(p.w.stop)
		<-p.w.stopped
		_ = p.db.Close()
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Config{}.Validate())
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Path: ":memory:"}, "Path"},
		{Config{Path: "file:q.db?mode=rwc"}, "Path"},
		{Config{Path: "q.db", MaxInFlight: -1}, "MaxInFlight"},
		{Config{Path: "q.db", VisibilityTimeout: time.Microsecond}, "VisibilityTimeout"},
		{Config{Path: "q.db", PollInterval: -1}, "PollInterval"},
		{Config{Path: "q.db", MaxBatch: -1}, "MaxBatch"},
		{Config{Path: "q.db", Synchronous: "off"}, "Synchronous"},
		{Config{Path: "q.db", BusyTimeout: -1}, "BusyTimeout"},
	} {
		err := tc.cfg.Validate()
		require.ErrorIs(t, err, ErrInvalidConfig, tc.field)
		require.ErrorContains(t, err, tc.field)
	}
	require.NoError(t, Config{Path: "q.db"}.Validate())
	_, err := New(context.Background(), Config{Path: filepath.Join(t.TempDir(), "missing", "q.db")})
	require.ErrorContains(t, err, "directory")
}

// TestSurvivesReopen: what was published is there after the PubSub (the
// process) is gone, metadata byte for byte.
func TestSurvivesReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	p := open(t, Config{Path: path})
	m := message.NewMessage("id-1", []byte("payload"))
	m.Metadata.Set("k", "v\x00é")
	m.Metadata.Set("", "")
	require.NoError(t, p.Publish("t", m))
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Publish("t", m), ErrClosed)

	q := open(t, Config{Path: path})
	msgs, err := q.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	got := recv(t, msgs, 5*time.Second)
	require.Equal(t, "id-1", got.UUID)
	require.Equal(t, "payload", string(got.Payload))
	require.Equal(t, message.Metadata{"k": "v\x00é", "": ""}, got.Metadata)
	got.Ack()
	noMessage(t, msgs, 200*time.Millisecond)
}

// TestLeaseExpires: a message held by a process that died is handed out
// again once its lease (VisibilityTimeout) runs out, and not before.
func TestLeaseExpires(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	cfg := Config{Path: path, VisibilityTimeout: 600 * time.Millisecond} // a short lease keeps the test quick
	a := open(t, cfg)
	require.NoError(t, a.Publish("t", message.NewMessage("m", nil)))
	am, err := a.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	recv(t, am, 5*time.Second) // held, never acked
	b := open(t, cfg)
	bm, err := b.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	noMessage(t, bm, 900*time.Millisecond) // a is alive and renews its lease
	a.crash()
	require.Equal(t, "m", recv(t, bm, 5*time.Second).UUID)
}

// TestNackAndCloseRelease: a nacked message comes back at once, and so do
// the messages a closed PubSub held.
func TestNackAndCloseRelease(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	a := open(t, Config{Path: path, MaxInFlight: 4}) // several in hand: the close releases more than one
	for i := range 3 {
		require.NoError(t, a.Publish("t", message.NewMessage(fmt.Sprint(i), nil)))
	}
	msgs, err := a.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	first := recv(t, msgs, 5*time.Second)
	first.Nack()
	seen := map[string]int{}
	for range 3 {
		seen[recv(t, msgs, 5*time.Second).UUID]++ // held, not settled
	}
	require.Len(t, seen, 3)
	require.NoError(t, a.Close())

	b := open(t, Config{Path: path, MaxInFlight: 4}) // as a
	msgs, err = b.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	for range 3 {
		recv(t, msgs, 5*time.Second).Ack()
	}
}

// TestPublishDelayed: a delayed message is not handed out before its time.
func TestPublishDelayed(t *testing.T) {
	t.Parallel()
	p := open(t, Config{})
	start := time.Now()
	require.NoError(t, p.PublishDelayed("t", 300*time.Millisecond, message.NewMessage("late", nil)))
	require.NoError(t, p.Publish("t", message.NewMessage("now", nil)))
	msgs, err := p.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	m := recv(t, msgs, 5*time.Second)
	require.Equal(t, "now", m.UUID)
	m.Ack()
	m = recv(t, msgs, 5*time.Second)
	require.Equal(t, "late", m.UUID)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	m.Ack()
}

// TestCompetingSubscriptions: subscriptions share a topic's messages, each
// message goes to one of them.
func TestCompetingSubscriptions(t *testing.T) {
	t.Parallel()
	p := open(t, Config{MaxInFlight: 8}) // several in hand per subscription, as the worker runs it
	const n = 200
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for range 3 {
		msgs, err := p.Subscribe(ctx, "t")
		require.NoError(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				mu.Lock()
				got[m.UUID]++
				mu.Unlock()
				m.Ack()
			}
		}()
	}
	for i := range n {
		require.NoError(t, p.Publish("t", message.NewMessage(fmt.Sprint(i), nil)))
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n }, 10*time.Second, 10*time.Millisecond)
	cancel()
	wg.Wait()
	for id, c := range got {
		require.Equal(t, 1, c, id)
	}
}

// TestPublishesShareCommits: concurrent publishes are coalesced into far
// fewer transactions than calls.
func TestPublishesShareCommits(t *testing.T) {
	t.Parallel()
	p := open(t, Config{})
	const callers, each = 64, 20
	var wg sync.WaitGroup
	before := p.w.commits.Load()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				require.NoError(t, p.Publish("t", message.NewMessage(fmt.Sprint(c, "-", i), nil)))
			}
		}()
	}
	wg.Wait()
	commits := p.w.commits.Load() - before
	t.Logf("%d publishes in %d commits", callers*each, commits)
	require.Less(t, commits, int64(callers*each/2))
}

func TestMetadataCodec(t *testing.T) {
	t.Parallel()
	for _, md := range []message.Metadata{{}, {"a": "b"}, {"": "", "x": string(make([]byte, 300))}} {
		got, err := decodeMetadata(encodeMetadata(md))
		require.NoError(t, err)
		require.Equal(t, md, got)
	}
	for _, bad := range [][]byte{nil, {5}, {1, 3, 'a'}, append(encodeMetadata(message.Metadata{"a": "b"}), 0)} {
		_, err := decodeMetadata(bad)
		require.Error(t, err)
	}
}

// TestWaitingClaims: an idle subscription's claim waits in the writer. A
// message published in this process reaches it at once; one published by
// another process (PubSub) on the same file within about PollInterval; and
// a subscription ended while it waits loses nothing (the next one gets what
// was published after).
func TestWaitingClaims(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "queue.db")
	a := open(t, Config{Path: path})
	b := open(t, Config{Path: path})
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := a.Subscribe(ctx, "t")
	require.NoError(t, err)
	noMessage(t, msgs, 50*time.Millisecond) // its claim is waiting now

	require.NoError(t, a.Publish("t", message.NewMessage("here", []byte("1"))))
	m := recv(t, msgs, time.Second)
	require.Equal(t, "here", m.UUID)
	require.Equal(t, "1", string(m.Payload))
	m.Ack()

	require.NoError(t, b.Publish("t", message.NewMessage("there", nil)))
	recv(t, msgs, 2*time.Second).Ack()

	cancel()
	for range msgs { // closes
	}
	require.NoError(t, a.Publish("t", message.NewMessage("after", nil)))
	again, err := a.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	require.Equal(t, "after", recv(t, again, 2*time.Second).UUID)
}

// TestOnlyPublishesWaitForTheDisk: with the default SyncFull, a commit that
// publishes is fsynced; one that only settles (an ack) is not, and its ack
// still holds: the message is gone from the file.
func TestOnlyPublishesWaitForTheDisk(t *testing.T) {
	t.Parallel()
	p := open(t, Config{})
	msgs, err := p.Subscribe(context.Background(), "t")
	require.NoError(t, err)
	commits, synced := p.w.commits.Load(), p.w.synced.Load()
	require.NoError(t, p.Publish("t", message.NewMessage("m-1", []byte("x"))))
	require.Eventually(t, func() bool { return p.w.synced.Load() > synced }, 5*time.Second, time.Millisecond,
		"the publish is committed with SyncFull")
	synced = p.w.synced.Load()
	m := recv(t, msgs, 5*time.Second)
	afterPublish := p.w.commits.Load()
	m.Ack()
	require.Eventually(t, func() bool { return p.w.commits.Load() > afterPublish }, 5*time.Second, time.Millisecond)
	require.Equal(t, synced, p.w.synced.Load(), "the ack's commit waits for no fsync")
	require.Greater(t, p.w.commits.Load(), commits)

	var left int
	require.NoError(t, p.db.QueryRow("SELECT COUNT(*) FROM sqlitemq_messages").Scan(&left))
	require.Zero(t, left, "the ack is committed")

	require.NoError(t, p.Publish("t", message.NewMessage("m-2", []byte("y"))))
	require.Equal(t, synced+1, p.w.synced.Load(), "the next publish is fsynced again, and its fsync covers the ack")
}

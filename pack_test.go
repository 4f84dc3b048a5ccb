package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
)

// capturePublisher records what a Publisher hands the transport.
type capturePublisher struct {
	mu   sync.Mutex
	msgs []*message.Message
}

func (c *capturePublisher) Publish(_ string, msgs ...*message.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msgs...)
	return nil
}
func (c *capturePublisher) Close() error { return nil }

func testActions(t *testing.T, n int, payload string) []Action {
	t.Helper()
	out := make([]Action, n)
	for i := range out {
		a, err := NewAction("t", nil)
		require.NoError(t, err)
		a.Key = fmt.Sprintf("k%03d", i)
		if payload != "" {
			a.Payload = json.RawMessage(payload)
		}
		out[i] = a
	}
	return out
}

// unpackIDs decodes published messages back into the actions' IDs, in order.
func unpackIDs(t *testing.T, msgs []*message.Message) (ids []string, packs int) {
	t.Helper()
	for _, m := range msgs {
		if !isPacked(m) {
			a, err := decode(m, defaultMaxPayload)
			require.NoError(t, err)
			ids = append(ids, a.ID)
			continue
		}
		packs++
		bodies, err := unpackBody(m.Payload, defaultMaxPayload)
		require.NoError(t, err)
		for i, b := range bodies {
			a, err := decode(childMessage(m, i, b), defaultMaxPayload)
			require.NoError(t, err)
			ids = append(ids, a.ID)
		}
	}
	return ids, packs
}

func TestPublisherPacks(t *testing.T) {
	big := `"` + strings.Repeat("x", 3000) + `"`
	tests := []struct {
		name                 string
		n                    int
		payload              string
		packActions, bytes   int
		wantMsgs, wantPacked int
	}{
		{"Off", 10, "", 1, 0, 10, 0},
		{"ByCount", 25, "", 10, 0, 3, 3},
		{"LastAlone", 21, "", 10, 0, 3, 2}, // 10, 10 and a lone v1 message
		{"OneAction", 1, "", 10, 0, 1, 0},
		{"ByBytes", 10, big, 100, 8 << 10, 5, 5}, // two ~3 KB actions per 8 KiB pack
		{"TooLargeForAPack", 3, big, 100, 2 << 10, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp := &capturePublisher{}
			p, err := NewPublisher(PublisherConfig{Publisher: cp, PackActions: tt.packActions, PackBytes: tt.bytes})
			require.NoError(t, err)
			as := testActions(t, tt.n, tt.payload)
			require.NoError(t, p.Publish(context.Background(), as...))
			require.Len(t, cp.msgs, tt.wantMsgs)
			ids, packs := unpackIDs(t, cp.msgs)
			require.Equal(t, tt.wantPacked, packs)
			want := make([]string, len(as))
			for i, a := range as {
				want[i] = a.ID
			}
			require.Equal(t, want, ids, "every action once, in order")
			for _, m := range cp.msgs {
				require.LessOrEqual(t, len(m.Payload), max(p.cfg.PackBytes, len(big)+400))
				if isPacked(m) {
					require.Equal(t, "2", m.Metadata[MetaVersion])
					require.Len(t, m.Metadata, 1, "a pack carries only its version header")
				}
			}
		})
	}
}

func TestPublisherConfigPackValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg   PublisherConfig
		field string
	}{
		{PublisherConfig{PackActions: -1}, "PackActions"},
		{PublisherConfig{PackActions: maxPackActions + 1}, "PackActions"},
		{PublisherConfig{PackBytes: -1}, "PackBytes"},
		{PublisherConfig{PackBytes: 2 << 20}, "PackBytes"},
	} {
		tt.cfg.Publisher = &capturePublisher{}
		_, err := NewPublisher(tt.cfg)
		require.ErrorContains(t, err, tt.field)
	}
}

func TestIsPacked(t *testing.T) {
	for _, tt := range []struct {
		body   string
		header string // "" no header
		want   bool
	}{
		{`{"v":2,"actions":[]}`, "", true},
		{" \n{\"v\":2,\"actions\":[]}", "", true},
		{`{"v":1,"type":"t"}`, "", false},
		{`{"v":2,"actions":[]}`, "1", false}, // the header decides
		{`{"actions":[],"v":2}`, "2", true},
		{`{"type":"t","v":2}`, "", false}, // a v1 decoder refuses it with the version
	} {
		m := message.NewMessage("m", []byte(tt.body))
		if tt.header != "" {
			m.Metadata[MetaVersion] = tt.header
		}
		require.Equal(t, tt.want, isPacked(m), tt.body)
	}
}

// packedSubHarness is a subHarness whose publisher packs by 10.
func packedSubHarness(t *testing.T, mutate func(*SubscriberConfig)) *subHarness {
	h := newSubHarness(t, mutate)
	pub, err := NewPublisher(PublisherConfig{Publisher: h.mem, Declarer: h.mem, Topology: h.sub.cfg.Topology, PackActions: 10})
	require.NoError(t, err)
	h.pub = pub
	return h
}

// TestSubscriberUnpacks: each action of a pack is handled on its own —
// retried, parked, poisoned — and the pack is acked once all are done.
func TestSubscriberUnpacks(t *testing.T) {
	h := packedSubHarness(t, func(c *SubscriberConfig) { c.Retry.InlineMax = 50 * time.Millisecond })
	var mu sync.Mutex
	handled := map[string]int{}
	failedOnce := map[string]bool{}
	require.NoError(t, h.sub.HandleFunc("t", func(_ context.Context, a Action) error {
		mu.Lock()
		defer mu.Unlock()
		switch a.Key {
		case "k003":
			return Permanent(errors.New("bad request"))
		case "k007":
			return Snooze(time.Hour) // parked
		case "k011", "k012":
			if !failedOnce[a.Key] {
				failedOnce[a.Key] = true
				return errors.New("transient")
			}
		}
		handled[a.Key]++
		return nil
	}))
	h.start()
	as := testActions(t, 25, `{"n":1}`)
	h.publish(as...)
	got := map[string]string{}
	for range 2 {
		p := h.nextParked()
		got[string(p.Payload)] = p.Reason
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 23
	}, 30*time.Second, 5*time.Millisecond)
	mu.Lock()
	for k, n := range handled {
		require.Equal(t, 1, n, k)
	}
	mu.Unlock()
	h.stores.mu.Lock()
	defer h.stores.mu.Unlock()
	require.Len(t, h.stores.poison, 1)
	require.Equal(t, as[3].ID, h.stores.poison[0].MessageUUID)
	require.Contains(t, h.stores.poison[0].Reason, "bad request")
	require.Len(t, h.stores.deferred, 1)
	require.Equal(t, as[7].ID, h.stores.deferred[0].MessageUUID)
	// A parked action is stored as the single (version 1) message it
	// becomes when it is due again.
	require.Equal(t, "1", h.stores.deferred[0].Metadata[MetaVersion])
	a, err := decode(message.NewMessage("x", h.stores.deferred[0].Payload), defaultMaxPayload)
	require.NoError(t, err)
	require.Equal(t, "k007", a.Key)
}

// chanSubscriber hands out the messages put on ch, on every topic.
type chanSubscriber struct{ ch chan *message.Message }

func (c chanSubscriber) Subscribe(context.Context, string) (<-chan *message.Message, error) {
	return c.ch, nil
}
func (c chanSubscriber) Close() error { return nil }

// verdict waits for m to be acked (true) or nacked (false).
func verdict(t *testing.T, m *message.Message) bool {
	t.Helper()
	select {
	case <-m.Acked():
		return true
	case <-m.Nacked():
		return false
	case <-time.After(30 * time.Second):
		t.Fatal("no verdict in 30s")
		return false
	}
}

// TestSubscriberPackRedelivered: a pack whose actions did not all finish
// (the subscriber stopped) is nacked whole; delivered again, the actions
// already handled are absorbed by their keys and the pack is acked.
func TestSubscriberPackRedelivered(t *testing.T) {
	cp := &capturePublisher{}
	p, err := NewPublisher(PublisherConfig{Publisher: cp, PackActions: 100})
	require.NoError(t, err)
	require.NoError(t, p.Publish(context.Background(), testActions(t, 20, "")...))
	require.Len(t, cp.msgs, 1)
	carrier := cp.msgs[0]

	var mu sync.Mutex
	effects := map[string]int{} // the effect of each key: the inbox's job
	calls := 0
	handler := func(block bool) HandlerFunc {
		return func(ctx context.Context, a Action) error {
			if block && a.Key == "k010" {
				<-ctx.Done() // never finishes before the stop
				return ctx.Err()
			}
			mu.Lock()
			defer mu.Unlock()
			calls++
			if effects[a.Key] == 0 {
				effects[a.Key]++
			}
			return nil
		}
	}
	run := func(block bool, m *message.Message) bool {
		stores := newMemStores()
		src := chanSubscriber{ch: make(chan *message.Message, 1)}
		sub, err := NewSubscriber(SubscriberConfig{Subscriber: src, Poison: stores, Defer: stores, Concurrency: 4,
			DrainTimeout: 100 * time.Millisecond, Logger: discardLogger()})
		require.NoError(t, err)
		require.NoError(t, sub.Handle("t", handler(block)))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sub.Run(ctx) }()
		src.ch <- m
		if block {
			require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return calls == 19 }, 5*time.Second, time.Millisecond)
			cancel()
		}
		ok := verdict(t, m)
		cancel()
		require.NoError(t, <-done)
		require.Empty(t, stores.poison)
		return ok
	}
	require.False(t, run(true, carrier.Copy()), "a pack with an unfinished action is nacked")
	require.True(t, run(false, carrier.Copy()), "delivered again, the pack is acked")
	require.Len(t, effects, 20)
	for k, n := range effects {
		require.Equal(t, 1, n, k)
	}
	require.Equal(t, 39, calls, "19 actions handled twice (absorbed by their keys), one once")
}

// TestSubscriberBadPacks: a pack that does not unpack is poisoned whole
// with the reason; an action inside a pack that does not decode is
// poisoned alone, and the others are handled.
func TestSubscriberBadPacks(t *testing.T) {
	h := newSubHarness(t, nil)
	handled := make(chan string, 10)
	require.NoError(t, h.sub.HandleFunc("t", func(_ context.Context, a Action) error {
		handled <- a.ID
		return nil
	}))
	h.start()
	topic := h.sub.cfg.Topology.Topic(QueueActions)
	raw := func(id, body string, header bool) {
		m := message.NewMessage(id, []byte(body))
		if header {
			m.Metadata[MetaVersion] = "2"
		}
		h.publishRaw(topic, m)
	}
	raw("not-json", `{"v":2,"actions":[`, false)
	raw("empty", `{"v":2,"actions":[]}`, true)
	raw("wrong-v", `{"v":3,"actions":[{"v":1,"type":"t"}]}`, true)
	for range 3 {
		p := h.nextParked()
		require.Contains(t, p.Reason, "packed message does not unpack", p.MessageUUID)
	}
	raw("mixed", `{"v":2,"actions":[{"v":1,"id":"a1","type":"t"},{"v":1,"type":`+"\"\\ud800\""+`},`+
		`{"v":2,"actions":[{"v":1,"id":"nested","type":"t"}]},{"v":1,"id":"a2","type":"t"}]}`, false)
	require.ElementsMatch(t, []string{"a1", "a2"}, []string{recv(t, handled), recv(t, handled)})
	reasons := map[string]string{}
	for range 2 {
		p := h.nextParked()
		reasons[p.MessageUUID] = p.Reason
	}
	require.Contains(t, reasons["mixed/1"], "lone UTF-16 surrogate")
	require.Contains(t, reasons["mixed/2"], "wire version 2", "packs do not nest")
}

// TestForeignPackedDecoder: a reader and a writer written in Python from
// the package documentation alone (testdata/packed.py) read a pack this
// package published, and write one this package's subscriber handles.
func TestForeignPackedDecoder(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: the foreign decoder is a Python script")
	}
	cp := &capturePublisher{}
	p, err := NewPublisher(PublisherConfig{Publisher: cp, PackActions: 100})
	require.NoError(t, err)
	as := testActions(t, 5, `{"image":"debian-13","note":"caf\u00e9 \"quoted\""}`)
	as[2].Type = "server.launch"
	require.NoError(t, p.Publish(context.Background(), as...))
	require.Len(t, cp.msgs, 1)

	cmd := exec.Command(py, "testdata/packed.py", "read")
	cmd.Stdin = bytes.NewReader(cp.msgs[0].Payload)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var want strings.Builder
	for _, a := range as {
		fmt.Fprintf(&want, "%s %s %s\n", a.ID, a.Type, a.Key)
	}
	require.Equal(t, want.String(), string(out))

	body, err := exec.Command(py, "testdata/packed.py", "write", "f1", "f2", "f3").Output()
	require.NoError(t, err)
	h := newSubHarness(t, nil)
	handled := make(chan string, 3)
	require.NoError(t, h.sub.HandleFunc("t", func(_ context.Context, a Action) error {
		handled <- a.ID + "/" + a.Key
		return nil
	}))
	h.start()
	h.publishRaw(h.sub.cfg.Topology.Topic(QueueActions), message.NewMessage("foreign", body)) // no header: the body says it
	require.ElementsMatch(t, []string{"f1/key-f1", "f2/key-f2", "f3/key-f3"},
		[]string{recv(t, handled), recv(t, handled), recv(t, handled)})
}

func TestPublisherDoesNotPackEvents(t *testing.T) {
	cp := &capturePublisher{}
	p, err := NewPublisher(PublisherConfig{Publisher: cp, PackActions: 100})
	require.NoError(t, err)
	as := testActions(t, 5, "")
	for i := range as {
		as[i].Type = "server.changed" // routes to the events queue
	}
	require.NoError(t, p.Publish(context.Background(), as...))
	require.Len(t, cp.msgs, 5)
}

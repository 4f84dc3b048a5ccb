package rabbitmq

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeBroker keeps a channel's unacked deliveries as the broker does and
// fails the test on what would close a real channel (an unknown or settled
// tag) or lose a verdict (a multiple ack over a delivery whose verdict is
// not an ack).
type fakeBroker struct {
	t        *testing.T
	mu       sync.Mutex
	unacked  map[uint64]bool
	verdicts map[uint64]bool // what the consumer decided, recorded before settle
	rejects  map[uint64]bool // nacks decided without requeue
	acked    map[uint64]bool
	nacked   map[uint64]bool
	rejected map[uint64]bool
	frames   []string
}

func newFakeBroker(t *testing.T, n int) *fakeBroker {
	b := &fakeBroker{t: t, unacked: map[uint64]bool{}, verdicts: map[uint64]bool{}, rejects: map[uint64]bool{},
		acked: map[uint64]bool{}, nacked: map[uint64]bool{}, rejected: map[uint64]bool{}}
	for tag := uint64(1); tag <= uint64(n); tag++ {
		b.unacked[tag] = true
	}
	return b
}

func (b *fakeBroker) decide(tag uint64, ack bool) {
	b.mu.Lock()
	b.verdicts[tag] = ack
	b.mu.Unlock()
}

func (b *fakeBroker) decideReject(tag uint64) {
	b.mu.Lock()
	b.verdicts[tag] = false
	b.rejects[tag] = true
	b.mu.Unlock()
}

func (b *fakeBroker) Ack(tag uint64, multiple bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames = append(b.frames, fmt.Sprintf("ack %d %v", tag, multiple))
	if !b.unacked[tag] {
		b.t.Errorf("ack of unknown or settled tag %d: PRECONDITION_FAILED", tag)
	}
	for t := range b.unacked {
		if t == tag || (multiple && t < tag) {
			if ack, ok := b.verdicts[t]; !ok || !ack {
				b.t.Errorf("tag %d acked (by ack %d multiple=%v) but its verdict is %v (decided: %v)", t, tag, multiple, ack, ok)
			}
			delete(b.unacked, t)
			b.acked[t] = true
		}
	}
	return nil
}

func (b *fakeBroker) Nack(tag uint64, multiple bool, requeue bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames = append(b.frames, fmt.Sprintf("nack %d requeue=%v", tag, requeue))
	if multiple || requeue == b.rejects[tag] {
		b.t.Errorf("nack %d multiple=%v requeue=%v, decided reject=%v", tag, multiple, requeue, b.rejects[tag])
	}
	if !b.unacked[tag] {
		b.t.Errorf("nack of unknown or settled tag %d: PRECONDITION_FAILED", tag)
	}
	if ack, ok := b.verdicts[tag]; !ok || ack {
		b.t.Errorf("tag %d nacked but its verdict is ack=%v (decided: %v)", tag, ack, ok)
	}
	delete(b.unacked, tag)
	if requeue {
		b.nacked[tag] = true
	} else {
		b.rejected[tag] = true
	}
	return nil
}

func TestAckerCoalescesInOrderAcks(t *testing.T) {
	t.Parallel()
	b := newFakeBroker(t, 3)
	a := newAcker(b)
	for tag := uint64(1); tag <= 3; tag++ {
		a.handOut(tag)
	}
	// Verdicts that queue up while a write is in progress go out together.
	a.mu.Lock()
	a.writing = true // as if another goroutine were writing
	a.mu.Unlock()
	for tag := uint64(1); tag <= 2; tag++ {
		b.decide(tag, true)
		a.settle(tag, true) // queued
	}
	require.Empty(t, b.frames)
	a.mu.Lock()
	a.writing = false
	a.mu.Unlock()
	b.decide(3, true)
	a.settle(3, true) // writes the queued two and its own
	require.Equal(t, []string{"ack 3 true"}, b.frames)
	require.Empty(t, b.unacked)
}

// TestAckerNeverHoldsAnAckBack: a delivery still in hand does not delay the
// acks of later ones, and a nack is sent on its own.
func TestAckerNeverHoldsAnAckBack(t *testing.T) {
	t.Parallel()
	b := newFakeBroker(t, 4)
	a := newAcker(b)
	for tag := uint64(1); tag <= 4; tag++ {
		a.handOut(tag)
	}
	settle := func(tag uint64, ack bool) {
		b.decide(tag, ack)
		a.settle(tag, ack)
		b.mu.Lock()
		defer b.mu.Unlock()
		require.False(t, b.unacked[tag], "verdict for %d written before settle returned", tag)
	}
	settle(3, true)
	settle(2, false)
	settle(1, true)
	settle(4, true)
	require.Equal(t, []string{"ack 3 false", "nack 2 requeue=true", "ack 1 true", "ack 4 true"}, b.frames)
	require.Equal(t, map[uint64]bool{1: true, 3: true, 4: true}, b.acked)
	require.Equal(t, map[uint64]bool{2: true}, b.nacked)
}

// TestAckerConcurrentVerdicts: many deliveries, verdicts (acks and nacks) in
// random order from many goroutines while more are handed out: every
// delivery ends settled once, as decided, and no frame would close the channel.
func TestAckerConcurrentVerdicts(t *testing.T) {
	t.Parallel()
	const n = 5000
	b := newFakeBroker(t, n)
	a := newAcker(b)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64) // in hand at once, as MaxInFlight
	for tag := uint64(1); tag <= n; tag++ {
		sem <- struct{}{}
		a.handOut(tag)
		wg.Add(1)
		go func(tag uint64) {
			defer wg.Done()
			ack := rand.IntN(10) != 0
			b.decide(tag, ack)
			a.settle(tag, ack)
			<-sem
		}(tag)
	}
	wg.Wait()
	require.Empty(t, b.unacked)
	require.Equal(t, n, len(b.acked)+len(b.nacked))
	for tag, ack := range b.verdicts {
		require.Equal(t, ack, b.acked[tag], "tag %d", tag)
	}
	t.Logf("%d deliveries settled with %d frames", n, len(b.frames))
}

// TestAckerReject: a reject is a nack without requeue, sent on its own like
// any nack, and it does not stop later acks from coalescing over it.
func TestAckerReject(t *testing.T) {
	t.Parallel()
	b := newFakeBroker(t, 3)
	a := newAcker(b)
	for tag := uint64(1); tag <= 3; tag++ {
		a.handOut(tag)
	}
	b.decideReject(2)
	a.reject(2)
	b.decide(1, true)
	a.settle(1, true)
	b.decide(3, true)
	a.settle(3, true)
	require.Equal(t, []string{"nack 2 requeue=false", "ack 1 true", "ack 3 true"}, b.frames)
	require.Equal(t, map[uint64]bool{2: true}, b.rejected)
	require.Empty(t, b.nacked)
	require.Empty(t, b.unacked)
}

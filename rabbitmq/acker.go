package rabbitmq

import "sync"

// acknowledger is the part of *amqp.Channel an acker needs.
type acknowledger interface {
	Ack(tag uint64, multiple bool) error
	Nack(tag uint64, multiple bool, requeue bool) error
}

// acker passes a channel's verdicts to the broker, each as soon as it comes,
// but coalesces acks: verdicts that come while another is being written are
// written next, together, and acks that complete a run of settled deliveries
// from the oldest one in hand go as one multiple ack. A multiple ack for tag
// N acks every unacked delivery up to N on the channel, so it is used only
// when every delivery up to N has been handed out and has its verdict (the
// nacks among them are sent first). Any other ack goes out on its own at
// once: an ack is never held back waiting for a slower delivery.
//
// One acker serves one channel: delivery tags mean nothing on another.
type acker struct {
	ch acknowledger

	mu      sync.Mutex
	hand    []inHandTag // handed out and not yet covered, by increasing tag
	pending []verdict   // waiting to be written
	writing bool        // a goroutine is writing; it will write pending too
}

type inHandTag struct {
	tag     uint64
	settled bool // its verdict went to the broker on its own
	acked   bool // acked, to be written with a multiple ack
}

type verdict struct {
	tag    uint64
	ack    bool
	reject bool // a nack without requeue, for the broker to dead-letter
}

func newAcker(ch acknowledger) *acker { return &acker{ch: ch} }

// handOut records that the delivery with tag is in hand. Tags must come in
// increasing order (the order the channel delivers them).
func (a *acker) handOut(tag uint64) {
	a.mu.Lock()
	a.hand = append(a.hand, inHandTag{tag: tag})
	a.mu.Unlock()
}

// settle passes on the verdict for a delivery handed out (a nack requeues).
// When it returns the verdict has been written to the channel, or is being
// written, together with its own, by a goroutine that has yet to return from
// settle.
func (a *acker) settle(tag uint64, ack bool) { a.add(verdict{tag: tag, ack: ack}) }

// reject is settle for a nack without requeue.
func (a *acker) reject(tag uint64) { a.add(verdict{tag: tag, reject: true}) }

func (a *acker) add(v verdict) {
	a.mu.Lock()
	a.pending = append(a.pending, v)
	if a.writing {
		a.mu.Unlock()
		return
	}
	a.writing = true
	for len(a.pending) > 0 {
		batch := a.pending
		a.pending = nil
		a.write(batch)
	}
	a.writing = false
	a.mu.Unlock()
}

// write sends one batch of verdicts. a.mu is held on entry and on return,
// not while frames are written.
func (a *acker) write(batch []verdict) {
	var nacks []verdict
	var acks []uint64
	for _, v := range batch {
		i := a.find(v.tag)
		if i < 0 {
			continue // not handed out by this acker's channel: cannot happen
		}
		if v.ack {
			a.hand[i].acked = true
		} else {
			a.hand[i].settled = true
			nacks = append(nacks, v)
		}
	}
	// The run from the oldest delivery in hand whose verdicts are all in.
	var upTo uint64
	run := 0
	for run < len(a.hand) && (a.hand[run].settled || a.hand[run].acked) {
		if a.hand[run].acked {
			upTo = a.hand[run].tag
		}
		run++
	}
	for i := run; i < len(a.hand); i++ { // acks after a delivery still in hand
		if a.hand[i].acked {
			a.hand[i].acked, a.hand[i].settled = false, true
			acks = append(acks, a.hand[i].tag)
		}
	}
	a.hand = a.hand[run:]
	if len(a.hand) == 0 {
		a.hand = nil // let the array go
	}

	a.mu.Unlock()
	for _, v := range nacks {
		_ = a.ch.Nack(v.tag, false, !v.reject)
	}
	if upTo > 0 {
		_ = a.ch.Ack(upTo, true)
	}
	for _, t := range acks {
		_ = a.ch.Ack(t, false)
	}
	a.mu.Lock()
}

// find returns the index in a.hand of tag, or -1.
func (a *acker) find(tag uint64) int {
	lo, hi := 0, len(a.hand)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case a.hand[m].tag == tag:
			return m
		case a.hand[m].tag < tag:
			lo = m + 1
		default:
			hi = m
		}
	}
	return -1
}

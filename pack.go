package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// WirePacked is the wire version of a packed message: one message that
// carries several actions bound for the same queue (see "Packed messages"
// in the package documentation). Single actions keep [WireVersion].
const WirePacked = 2

// Packing bounds (PublisherConfig.PackActions, PackBytes).
const (
	defaultPackBytes   = 256 << 10 // PackBytes default (at most MaxPayloadBytes)
	defaultPackActions = 256       // Config.MQ.PackActions default
	maxPackActions     = 10_000    // PackActions upper bound
)

// The bytes a packed body has besides its actions' bodies: the opening
// `{"v":2,"actions":[` and the closing `]}`; each action after the first
// adds a comma.
var (
	packHead = []byte(`{"v":2,"actions":[`)
	packTail = []byte(`]}`)
)

const packOverhead = len(`{"v":2,"actions":[`) + len(`]}`)

// packMessages packs msgs (single actions encoded for one queue, in order)
// into messages of at most maxActions actions and maxBytes body bytes. A
// run of one action, and an action too large to share a pack, stays the
// message it was (version 1). The order of the actions is kept.
func packMessages(msgs []*message.Message, maxActions, maxBytes int) []*message.Message {
	if maxActions < 2 || len(msgs) < 2 {
		return msgs
	}
	out := make([]*message.Message, 0, len(msgs)/maxActions+1)
	var run []*message.Message // the actions of the pack being filled
	size := packOverhead
	flush := func() {
		switch len(run) {
		case 0:
		case 1:
			out = append(out, run[0])
		default:
			body := make([]byte, 0, size)
			body = append(body, packHead...)
			for i, m := range run {
				if i > 0 {
					body = append(body, ',')
				}
				body = append(body, m.Payload...)
			}
			body = append(body, packTail...)
			c := message.NewMessage(watermill.NewUUID(), body)
			c.Metadata = message.Metadata{MetaVersion: packedVersion}
			c.SetContext(run[0].Context())
			out = append(out, c)
		}
		run = run[:0]
		size = packOverhead
	}
	for _, m := range msgs {
		add := len(m.Payload)
		if len(run) > 0 {
			add++ // the comma
		}
		if packOverhead+len(m.Payload) > maxBytes { // never fits a pack: alone
			flush()
			out = append(out, m)
			continue
		}
		if len(run) == maxActions || size+add > maxBytes {
			flush()
			add = len(m.Payload)
		}
		run = append(run, m)
		size += add
	}
	flush()
	return out
}

// packedVersion is the MetaVersion header of a packed message.
var packedVersion = strconv.Itoa(WirePacked)

// isPacked reports whether msg is a packed message: its worker_version
// header is "2", or it has none and its body starts with `{"v":2,` (after
// white space), as every packed body this package writes does.
func isPacked(msg *message.Message) bool {
	if v, ok := msg.Metadata[MetaVersion]; ok {
		return v == packedVersion
	}
	return bytes.HasPrefix(bytes.TrimLeft(msg.Payload, " \t\r\n"), []byte(`{"v":2,`))
}

// packedBody is the JSON of a packed message.
type packedBody struct {
	V       int               `json:"v"`
	Actions []json.RawMessage `json:"actions"`
}

// errBadPack marks a packed message that cannot be unpacked at all.
var errBadPack = errors.New("packed message does not unpack")

// unpackBody returns the bodies of the actions of a packed message, each a
// version-1 body as it is in the message (not checked: each action is
// decoded, and refused or poisoned on its own, as a single message is).
func unpackBody(body []byte, maxBytes int) ([]json.RawMessage, error) {
	if len(body) > maxBytes {
		return nil, fmt.Errorf("%w: %w: %d bytes, limit is %d (Config.MaxPayloadBytes)", ErrInvalidAction, ErrPayloadTooLarge, len(body), maxBytes)
	}
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: %w: body is not valid UTF-8 (first bad byte at offset %d)", ErrInvalidAction, errBadPack, invalidUTF8At(body))
	}
	var p packedBody
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: %w: %v", ErrInvalidAction, errBadPack, err)
	}
	switch {
	case p.V != WirePacked:
		return nil, fmt.Errorf("%w: %w: \"v\" is %d, want %d", ErrInvalidAction, errBadPack, p.V, WirePacked)
	case len(p.Actions) == 0:
		return nil, fmt.Errorf("%w: %w: \"actions\" is missing or empty", ErrInvalidAction, errBadPack)
	case len(p.Actions) > maxPackActions:
		return nil, fmt.Errorf("%w: %w: %d actions, at most %d", ErrInvalidAction, errBadPack, len(p.Actions), maxPackActions)
	}
	return p.Actions, nil
}

// childMessage is action i of a packed message as a message of its own, as
// a version-1 publish of it would have arrived: its body, its ID as the
// UUID and the version and type headers. An action that does not decode
// gets the pack's UUID with "/<i>" and no type: dispatch poisons it with
// the reason.
func childMessage(carrier *message.Message, i int, body []byte) *message.Message {
	var w wireAction
	id := carrier.UUID + "/" + strconv.Itoa(i)
	md := message.Metadata{MetaVersion: strconv.Itoa(WireVersion)}
	if _, err := unmarshalWire(body, &w); err == nil && w.Type != "" {
		if w.ID != "" {
			id = w.ID
		}
		md[MetaType] = w.Type
	}
	m := message.NewMessage(id, body)
	m.Metadata = md
	m.SetContext(carrier.Context())
	return m
}

// pack is a packed message being handled: acked once each of its actions
// reached a durable outcome (handled, parked, poisoned), nacked (redelivered
// whole; the actions already handled are absorbed by their keys) when one
// did not.
type pack struct {
	carrier *message.Message
	left    atomic.Int32
	failed  atomic.Bool
}

// done records the outcome of one of the pack's actions; the last one
// settles the carrier.
func (p *pack) done(ok bool) {
	if !ok {
		p.failed.Store(true)
	}
	if p.left.Add(-1) == 0 {
		if p.failed.Load() {
			p.carrier.Nack()
		} else {
			p.carrier.Ack()
		}
	}
}

// child is one action of a pack, waiting for a handler slot.
type child struct {
	pack *pack
	msg  *message.Message
}

// kidQueue holds the actions of packs waiting for a worker. It is not
// bounded by itself: what it holds are the actions of the packs in hand,
// whose bodies are in memory anyway, and the transport bounds those
// (Prefetch). A pack's actions are queued at once, so that a slow one
// never holds up the others while workers are idle.
type kidQueue struct {
	mu    sync.Mutex
	q     []child
	head  int
	ready chan struct{} // a token per queued action, while there is room
	n     atomic.Int64  // len(q) - head: the workers' check costs no lock
}

func (k *kidQueue) push(kids []child) {
	k.mu.Lock()
	k.q = append(k.q, kids...)
	k.n.Add(int64(len(kids)))
	k.mu.Unlock()
	for range kids {
		select {
		case k.ready <- struct{}{}:
		default:
			// As many tokens wait as there are workers: each woken one
			// takes actions until none is left.
			return
		}
	}
}

func (k *kidQueue) pop() (child, bool) {
	if k.n.Load() == 0 {
		return child{}, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.head == len(k.q) {
		return child{}, false
	}
	c := k.q[k.head]
	k.q[k.head] = child{}
	k.head++
	k.n.Add(-1)
	if k.head == len(k.q) {
		k.q, k.head = k.q[:0], 0
	}
	return c, true
}

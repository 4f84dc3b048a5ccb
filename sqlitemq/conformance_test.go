package sqlitemq

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stretchr/testify/require"
)

// conformanceFeatures are the features of Watermill's suite this pub/sub
// honestly supports. A work queue, not consumer groups: subscriptions of a
// topic compete for its messages. Order is kept with MaxInFlight 1 (the
// default). Messages persist across PubSubs on one file. Delivery is at
// least once. There is no broker to restart (TestReconnect skips).
func conformanceFeatures() tests.Features {
	return tests.Features{
		ConsumerGroups:                      false,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
	}
}

// constructor opens two new PubSubs on the suite's one file for every call,
// one to publish and one to subscribe (the suite closes a publisher and
// keeps using its subscriber): they share their messages as processes
// sharing the file would. cfg is the test's Config, Path filled in.
func constructor(t *testing.T, cfg Config) tests.PubSubConstructor {
	cfg.Path = filepath.Join(t.TempDir(), "queue.db")
	return func(t *testing.T) (message.Publisher, message.Subscriber) {
		pub, err := New(context.Background(), cfg)
		require.NoError(t, err)
		sub, err := New(context.Background(), cfg)
		require.NoError(t, err)
		return pub, sub
	}
}

// TestWatermillConformance runs Watermill's pub/sub suite on the default
// Config: one message in hand per subscription, order kept.
func TestWatermillConformance(t *testing.T) {
	tests.TestPubSub(t, conformanceFeatures(), constructor(t, Config{}), nil)
}

// TestWatermillConformanceInFlight runs it again with several messages in
// hand per subscription (MaxInFlight 16, as the worker uses it). Order is
// then not kept (a nacked message comes back behind others already handed
// out), and the tests that need order (TestNoAck among them, which expects
// one message in hand) skip. No loss, redelivery after a nack and a close,
// and ctx and close handling must hold as with one in hand.
func TestWatermillConformanceInFlight(t *testing.T) {
	features := conformanceFeatures()
	features.GuaranteedOrder = false
	features.GuaranteedOrderWithSingleSubscriber = false
	tests.TestPubSub(t, features, constructor(t, Config{MaxInFlight: 16}), nil)
}

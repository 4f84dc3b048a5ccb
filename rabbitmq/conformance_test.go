package rabbitmq

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

// conformanceFeatures are the features of Watermill's suite this pub/sub
// honestly supports. Queues, not consumer groups: subscribers of one topic
// compete for its messages. Order is kept for a single subscriber. Messages
// survive a broker restart. Delivery is at least once.
func conformanceFeatures(prefix string) tests.Features {
	return tests.Features{
		ConsumerGroups:                      false,
		ExactlyOnceDelivery:                 false,
		GuaranteedOrder:                     true,
		GuaranteedOrderWithSingleSubscriber: true,
		Persistent:                          true,
		GenerateTopicFunc: func(tctx tests.TestContext) string {
			return prefix + "-" + string(tctx.TestID)
		},
	}
}

func conformanceConstructor(url string, maxInFlight int) tests.PubSubConstructor {
	return func(t *testing.T) (message.Publisher, message.Subscriber) {
		cfg := Config{URL: url, MaxInFlight: maxInFlight, Logger: quiet()}
		pub, err := NewPublisher(context.Background(), cfg)
		require.NoError(t, err)
		sub, err := NewSubscriber(context.Background(), cfg)
		require.NoError(t, err)
		return pub, sub
	}
}

// deleteQueuesWithPrefix removes the queues a suite run created. It needs
// rabbitmqctl (a local broker); elsewhere it only logs.
func deleteQueuesWithPrefix(t *testing.T, url, prefix string) {
	t.Cleanup(func() {
		out, err := exec.Command("rabbitmqctl", "-q", "list_queues", "name").Output()
		if err != nil {
			t.Logf("cannot list queues to clean up (%v); queues %s* are left on the broker", err, prefix)
			return
		}
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		for _, name := range strings.Fields(string(out)) {
			if strings.HasPrefix(name, prefix) {
				_, _ = ch.QueueDelete(name, false, false, false)
			}
		}
	})
}

// TestRabbitMQWatermillConformance runs Watermill's own pub/sub test suite
// against this package's Publisher and Subscriber with the default
// MaxInFlight of 1: Watermill's contract, one message in hand per
// subscription, order kept. The reconnect test, which restarts the broker,
// runs in the "faults" build (see faults_test.go).
func TestRabbitMQWatermillConformance(t *testing.T) {
	url := testenv.AMQPURL(t)
	prefix := testenv.UniqueName(t)
	deleteQueuesWithPrefix(t, url, prefix)
	tests.TestPubSub(t, conformanceFeatures(prefix), conformanceConstructor(url, 0), nil)
}

// TestRabbitMQWatermillConformanceInFlight runs the suite again with several
// messages in hand per subscription (MaxInFlight 16, as the worker's
// Subscriber uses it). Order is then not kept: a nacked message comes back
// behind others already handed out, and the tests that need order
// (TestNoAck among them, which expects one message in hand) are skipped.
// Everything else (no loss, redelivery after nack and close, ctx and close
// handling) must hold as it does with one in hand.
func TestRabbitMQWatermillConformanceInFlight(t *testing.T) {
	url := testenv.AMQPURL(t)
	prefix := testenv.UniqueName(t)
	deleteQueuesWithPrefix(t, url, prefix)
	features := conformanceFeatures(prefix)
	features.GuaranteedOrder = false
	features.GuaranteedOrderWithSingleSubscriber = false
	tests.TestPubSub(t, features, conformanceConstructor(url, 16), nil)
}

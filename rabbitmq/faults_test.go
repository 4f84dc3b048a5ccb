//go:build faults

package rabbitmq

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stratusworks/worker/internal/testenv"
)

// TestFaultsRabbitMQWatermillReconnect runs Watermill's reconnect conformance
// test: 10,000 messages from 100 publishers while the broker is restarted
// twice for real by the same script .ci/run uses. It runs in the serial faults
// step of .ci/run.
func TestFaultsRabbitMQWatermillReconnect(t *testing.T) {
	url := testenv.AMQPURL(t)
	prefix := testenv.UniqueName(t)
	deleteQueuesWithPrefix(t, url, prefix)
	features := conformanceFeatures(prefix)
	features.RestartServiceCommand = []string{"../.ci/restart-rabbitmq"}
	tests.TestReconnect(t, tests.TestContext{TestID: tests.NewTestID(), Features: features}, conformanceConstructor(url))
}

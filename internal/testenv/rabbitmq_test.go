package testenv

import (
	"context"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// TestSharedRabbitMQLookup finds the shared node's pid without touching the
// node: by the pid file the node reports and by its AMQP port, which agree.
func TestSharedRabbitMQLookup(t *testing.T) {
	r := SharedRabbitMQ(t)
	require.NotEmpty(t, r.PIDFile(), "the node reports its pid file")
	pid, err := r.PID()
	require.NoError(t, err)
	filePID, err := pidFromFile(r.PIDFile())
	require.NoError(t, err)
	portPID, err := ListeningPID(r.port)
	require.NoError(t, err)
	require.Equal(t, pid, filePID)
	require.Equal(t, pid, portPID)
	out, err := rabbitmqctl(10*time.Second, "eval", "os:getpid().")
	require.NoError(t, err)
	require.Contains(t, out, `"`+strconv.Itoa(pid)+`"`, "the node's own os:getpid() agrees")
	t.Logf("%s: pid %d, pid file %s", r, pid, r.PIDFile())
	require.NoError(t, r.WaitReady(10*time.Second))
}

func TestQueueCountsRabbitMQ(t *testing.T) {
	url := AMQPURL(t)
	queue := UniqueName(t)
	DeleteQueuesOnCleanup(t, url, queue)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := QueueCounts(ctx, url, queue)
	require.ErrorIs(t, err, ErrNoQueue)

	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclare(queue, false, false, false, false, nil)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{Body: []byte("x")}))
	}
	require.Eventually(t, func() bool {
		c, err := QueueCounts(ctx, url, queue)
		return err == nil && c == QueueCount{Messages: 3}
	}, 5*time.Second, 20*time.Millisecond)

	_, err = ch.Consume(queue, "", false, false, false, false, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c, err := QueueCounts(ctx, url, queue)
		return err == nil && c.Consumers == 1 && c.Messages == 0 // delivered, unacked: not counted
	}, 5*time.Second, 20*time.Millisecond)

	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	_, err = QueueCounts(short, url, queue)
	require.ErrorIs(t, err, context.Canceled)
}

package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// TestSharedRabbitMQLookup finds the shared node's pid without touching the
// node: by the pid file the node reports and by its AMQP port, which agree.
// A node started again with rabbitmq-server -detached (as the fault tests
// do) may have no pid file: then the port alone must find it.
func TestSharedRabbitMQLookup(t *testing.T) {
	r := SharedRabbitMQ(t)
	require.NotEmpty(t, r.PIDFile(), "the node reports its pid file")
	pid, err := r.PID()
	require.NoError(t, err)
	portPID, err := ListeningPID(r.port)
	require.NoError(t, err)
	require.Equal(t, pid, portPID)
	if filePID, err := pidFromFile(r.PIDFile()); err == nil {
		require.Equal(t, pid, filePID)
	} else {
		require.ErrorIs(t, err, ErrNotRunning, "only a missing pid file is acceptable")
		t.Logf("%s: no pid file at %s; found by its port", r, r.PIDFile())
	}
	out, err := r.ctl(10*time.Second, "eval", "os:getpid().")
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

// startPrivateRabbitMQ starts a RabbitMQ node of the test's own (its own node
// name, ports, data, pid file and config; no plugins), as root through the
// same rabbitmq-server wrapper as the shared node, and kills it when the test
// ends.
func startPrivateRabbitMQ(t *testing.T) *RabbitMQ {
	t.Helper()
	if os.Getenv("WORKER_TEST_PRIVATE_RABBITMQ") == "" {
		t.Skip("skipping: set WORKER_TEST_PRIVATE_RABBITMQ=1 to start a private RabbitMQ node (15-30 s)")
	}
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Skip("skipping: no rabbitmq-server")
	}
	rmq, err := user.Lookup("rabbitmq")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("skipping: a private node needs root and the rabbitmq user")
	}
	dir, err := os.MkdirTemp("", "testenv-rabbitmq-") // t.TempDir's parent is not the rabbitmq user's to enter
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(rmq.Uid)
	gid, _ := strconv.Atoi(rmq.Gid)
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chown(dir, uid, gid))

	port, err := freePort()
	require.NoError(t, err)
	dist, err := freePort()
	require.NoError(t, err)
	node := "testenv" + Suffix() + "@localhost"
	files := map[string]string{
		"rabbitmq.conf":   "listeners.tcp.local = 127.0.0.1:" + strconv.Itoa(port) + "\n",
		"enabled_plugins": "[].\n",
		"env.conf":        "",
	}
	for name, body := range files {
		f := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(f, []byte(body), 0o644))
		require.NoError(t, os.Chown(f, uid, gid))
	}
	r := &RabbitMQ{
		desc: "private RabbitMQ " + node, url: "amqp://guest:guest@127.0.0.1:" + strconv.Itoa(port) + "/",
		port: port, pidFile: filepath.Join(dir, "node.pid"), node: node, private: true,
		env: []string{
			"RABBITMQ_NODENAME=" + node, "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
			"RABBITMQ_NODE_PORT=" + strconv.Itoa(port), "RABBITMQ_DIST_PORT=" + strconv.Itoa(dist),
			"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "env.conf"), // not /etc/rabbitmq/rabbitmq-env.conf
			"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq"),
			"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(dir, "advanced.config"),
			"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
			"RABBITMQ_PLUGINS_EXPAND_DIR=" + filepath.Join(dir, "plugins-expand"),
			"RABBITMQ_FEATURE_FLAGS_FILE=" + filepath.Join(dir, "feature_flags"),
			"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
			"RABBITMQ_PID_FILE=" + filepath.Join(dir, "node.pid"),
			"ERL_EPMD_ADDRESS=127.0.0.1", "ERL_FLAGS=-kernel inet_dist_use_interface {127,0,0,1}",
		},
	}
	t.Cleanup(func() {
		if pid, err := r.PID(); err == nil {
			_ = sendSignal(pid, sigKill)
			waitState(pid, killTimeout, processGone)
		}
	})
	began := time.Now()
	require.NoError(t, r.start())
	t.Logf("%s (port %d) up in %v", r, port, time.Since(began).Round(time.Millisecond))
	return r
}

// TestPrivateRabbitMQStopStart runs the RabbitMQ controls against a private
// node: Stop ends the process found by its pid file and closes the port, Start
// brings it back with its durable messages, and a test that ends with the node
// stopped has it started again by its cleanup.
func TestPrivateRabbitMQStopStart(t *testing.T) {
	r := startPrivateRabbitMQ(t)
	pid, err := r.PID()
	require.NoError(t, err)
	portPID, err := ListeningPID(r.port)
	require.NoError(t, err)
	require.Equal(t, pid, portPID)
	learnt := &RabbitMQ{port: r.port, node: r.node, env: r.env}
	require.Equal(t, r.pidFile, learnt.learnPIDFile(), "the node reports the pid file it was given")

	queue := UniqueName(t)
	conn, err := amqp.Dial(r.url)
	require.NoError(t, err)
	ch, err := conn.Channel()
	require.NoError(t, err)
	_, err = ch.QueueDeclare(queue, true, false, false, false, nil)
	require.NoError(t, err)
	require.NoError(t, ch.Confirm(false))
	confirm, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue, false, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("x")})
	require.NoError(t, err)
	require.True(t, confirm.Wait())
	_ = conn.Close()

	r.Stop(t)
	require.False(t, processAlive(pid))
	_, err = r.PID()
	require.ErrorIs(t, err, ErrNotRunning)
	_, err = net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), time.Second)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = QueueCounts(ctx, r.url, queue)
	cancel()
	require.Error(t, err)

	r.Start(t)
	pid2, err := r.PID()
	require.NoError(t, err)
	require.NotEqual(t, pid, pid2)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	c, err := QueueCounts(ctx, r.url, queue)
	cancel()
	require.NoError(t, err)
	require.Equal(t, QueueCount{Messages: 1}, c, "the durable queue and its persistent message survive")

	t.Run("CleanupStartsIt", func(t *testing.T) { r.Stop(t) })
	_, err = r.PID()
	require.NoError(t, err, "running again after the subtest")
	require.NoError(t, r.WaitReady(10*time.Second))
}

package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

// RabbitMQ is the shared RabbitMQ node, for fault tests that stop and start
// it. Its process is found by the node's pid file (asked from the node,
// rabbit_env's pid_file) or else the pid listening on the AMQP port
// ([FindPID]), never by process name.
//
// [RabbitMQ.Stop] and [RabbitMQ.Restart] register, once per test, a t.Cleanup
// that starts the node again if it is down and waits until it is up, even when
// the test fails or panics half-way. Like the MariaDB controls, they may only
// be called from tests built with -tags faults (which .ci/run runs serially);
// elsewhere they fail the test, since other packages' tests use the node.
type RabbitMQ struct {
	desc    string
	url     string
	port    int
	pidFile string
	// For the package's own test of a private node: rabbitmqctl's -n, extra
	// environment for rabbitmq-server and rabbitmqctl, and no faults-only rule.
	node    string
	env     []string
	private bool

	mu      sync.Mutex
	guarded map[testing.TB]bool
}

// Timeouts of the RabbitMQ controls.
const (
	rabbitStopTimeout  = time.Minute     // SIGTERM to gone; then SIGKILL
	rabbitReadyTimeout = 2 * time.Minute // start to await_startup and an AMQP login
)

var rabbitPIDFiles sync.Map // amqp addr -> pid file learnt from the node

// SharedRabbitMQ returns the controls of the node named by
// WORKER_TEST_AMQP_URL (skipping, or failing in CI, when it is not set). The
// node must run on this machine, started as .ci/run does (rabbitmq-server
// -detached), and rabbitmqctl must reach it. Looking it up is harmless; Stop
// and Restart are for fault tests only.
func SharedRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	raw := AMQPURL(t)
	u, err := url.Parse(raw)
	require.NoError(t, err, "testenv: %s is not a valid URL", AMQPURLEnv)
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5672"
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Fatalf("testenv: %s: %s is not on this machine; its process cannot be controlled", AMQPURLEnv, u.Host)
	}
	r := &RabbitMQ{desc: "shared RabbitMQ " + net.JoinHostPort(host, port), url: raw}
	r.port, err = strconv.Atoi(port)
	require.NoError(t, err, "testenv: %s: port %q", AMQPURLEnv, port)
	r.pidFile = r.learnPIDFile()
	return r
}

// learnPIDFile asks the node for its pid file (remembered for the life of the
// test binary); "" if the node cannot tell, and then the port alone is used.
func (r *RabbitMQ) learnPIDFile() string {
	if v, ok := rabbitPIDFiles.Load(r.port); ok {
		return v.(string)
	}
	out, err := r.ctl(10*time.Second, "eval", "maps:get(pid_file, rabbit_env:get_context()).")
	if err != nil {
		return ""
	}
	f, err := strconv.Unquote(strings.TrimSpace(out))
	if err != nil || !strings.HasPrefix(f, "/") {
		return ""
	}
	rabbitPIDFiles.Store(r.port, f)
	return f
}

// String names the node in messages.
func (r *RabbitMQ) String() string { return r.desc }

// URL returns the node's AMQP URL.
func (r *RabbitMQ) URL() string { return r.url }

// PIDFile returns the pid file the node's pid is looked up in first ("" when
// the node could not tell; then the port is used).
func (r *RabbitMQ) PIDFile() string { return r.pidFile }

// PID returns the node's pid (the beam.smp process), from its pid file or else
// its AMQP port; the error wraps [ErrNotRunning] when the node is down.
func (r *RabbitMQ) PID() (int, error) {
	pid, err := FindPID(r.pidFile, r.port)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", r, err)
	}
	return pid, nil
}

// Stop stops the node: SIGTERM to its pid, which the Erlang VM turns into a
// graceful shutdown (init:stop), then SIGKILL if it is still alive after a
// minute; it returns once the process is gone and the port is closed. The
// test's cleanup starts the node again if the test does not.
func (r *RabbitMQ) Stop(t testing.TB) {
	t.Helper()
	r.disrupt(t, "Stop")
	began := time.Now()
	require.NoError(t, r.stop())
	t.Logf("testenv: %s stopped in %v", r, time.Since(began).Round(time.Millisecond))
}

// Start starts the node unless it is running (rabbitmq-server -detached), and
// waits until rabbitmqctl await_startup succeeds and an AMQP login works.
func (r *RabbitMQ) Start(t testing.TB) {
	t.Helper()
	began := time.Now()
	require.NoError(t, r.start())
	t.Logf("testenv: %s up (%v after Start)", r, time.Since(began).Round(time.Millisecond))
}

// Restart is Stop then Start.
func (r *RabbitMQ) Restart(t testing.TB) {
	t.Helper()
	r.disrupt(t, "Restart")
	r.Stop(t)
	r.Start(t)
}

func (r *RabbitMQ) stop() error {
	pid, err := r.PID()
	if errors.Is(err, ErrNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := sendSignal(pid, sigTerm); err != nil {
		return err
	}
	if !waitState(pid, rabbitStopTimeout, processGone) {
		if err := sendSignal(pid, sigKill); err != nil {
			return err
		}
		if !waitState(pid, killTimeout, processGone) {
			return fmt.Errorf("testenv: %s: pid %d still alive after SIGTERM and SIGKILL", r, pid)
		}
	}
	// The socket closes with the process; wait for it anyway, it is what clients see.
	for deadline := time.Now().Add(killTimeout); ; {
		if _, err := ListeningPID(r.port); errors.Is(err, ErrNotRunning) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: %s: port %d still listening after pid %d exited", r, r.port, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *RabbitMQ) start() error {
	_, err := r.PID()
	switch {
	case err == nil:
	case errors.Is(err, ErrNotRunning):
		cmd := exec.Command("rabbitmq-server", "-detached")
		cmd.Env = append(os.Environ(), r.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("testenv: start %s: %s: %w: %s", r, cmd, err, out)
		}
	default:
		return err
	}
	return r.WaitReady(rabbitReadyTimeout)
}

// WaitReady waits until rabbitmqctl await_startup succeeds and an AMQP login
// works, for at most timeout.
func (r *RabbitMQ) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if _, last = r.ctl(10*time.Second, "-q", "await_startup", "--timeout", "5"); last == nil {
			var conn *amqp.Connection
			if conn, last = amqp.DialConfig(r.url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)}); last == nil {
				_ = conn.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: %s not up within %v: %w", r, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// disrupt refuses Stop outside fault tests and registers (once per test) the
// cleanup that brings the node back.
func (r *RabbitMQ) disrupt(t testing.TB, what string) {
	t.Helper()
	if !faultsBuild && !r.private {
		t.Fatalf("testenv: %s on the %s is for fault tests only (build tag faults, run serially by .ci/run): "+
			"other packages' tests use it right now", what, r)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.guarded == nil {
		r.guarded = map[testing.TB]bool{}
	}
	if r.guarded[t] {
		return
	}
	r.guarded[t] = true
	t.Cleanup(func() {
		if err := r.start(); err != nil {
			t.Errorf("testenv: bring back %s: %v", r, err)
		}
		r.mu.Lock()
		delete(r.guarded, t)
		r.mu.Unlock()
	})
}

// ctl runs rabbitmqctl with args against the node and returns its standard output.
func (r *RabbitMQ) ctl(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if r.node != "" {
		args = append([]string{"-n", r.node}, args...)
	}
	cmd := exec.CommandContext(ctx, "rabbitmqctl", args...)
	cmd.Env = append(os.Environ(), r.env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("testenv: rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// ErrNoQueue is returned (wrapped) by [QueueCounts] when the queue does not exist.
var ErrNoQueue = errors.New("testenv: no such queue")

// QueueCount is what the broker reports about a queue.
type QueueCount struct {
	// Messages counts the messages ready for delivery; those delivered and
	// not yet acknowledged are not included.
	Messages int
	// Consumers counts the queue's consumers.
	Consumers int
}

// QueueCounts asks the broker at url about queue through AMQP itself (a
// passive QueueDeclare, so it needs neither the management plugin nor
// rabbitmqctl, and does not create the queue). It returns [ErrNoQueue]
// (wrapped) when the queue does not exist, and ctx's error when ctx ends
// first, e.g. while the broker is down or frozen.
func QueueCounts(ctx context.Context, url, queue string) (QueueCount, error) {
	type result struct {
		q   QueueCount
		err error
	}
	dialTimeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok && time.Until(d) < dialTimeout {
		dialTimeout = max(time.Until(d), time.Millisecond)
	}
	res := make(chan result, 1)
	go func() { // amqp091 takes no context: run it aside and stop waiting when ctx ends
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(dialTimeout)})
		if err != nil {
			res <- result{err: fmt.Errorf("testenv: queue %s: dial: %w", queue, err)}
			return
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		defer stop()
		ch, err := conn.Channel()
		if err != nil {
			res <- result{err: fmt.Errorf("testenv: queue %s: channel: %w", queue, err)}
			return
		}
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		var amqpErr *amqp.Error
		switch {
		case errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound:
			err = fmt.Errorf("%w: %s (%v)", ErrNoQueue, queue, err)
		case err != nil:
			err = fmt.Errorf("testenv: queue %s: %w", queue, err)
		default:
			_ = ch.Close()
		}
		res <- result{q: QueueCount{Messages: q.Messages, Consumers: q.Consumers}, err: err}
	}()
	select {
	case r := <-res:
		if r.err != nil && ctx.Err() != nil {
			return QueueCount{}, fmt.Errorf("testenv: queue %s: %w (%v)", queue, ctx.Err(), r.err)
		}
		return r.q, r.err
	case <-ctx.Done():
		return QueueCount{}, fmt.Errorf("testenv: queue %s: %w", queue, ctx.Err())
	}
}

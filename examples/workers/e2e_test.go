package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/logging"
	"github.com/stratusworks/worker/service"
)

// The end-to-end tests build the binary, write a configuration, and run
// its roles as separate OS processes that share a transport and a store:
// the durable SQLite queue and a SQLite store (no services), or RabbitMQ
// and MariaDB (WORKER_TEST_AMQP_URL, WORKER_TEST_MYSQL_DSN).

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// workersBinary builds this command once per test binary.
func workersBinary(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skipf("the process tests send POSIX signals; %s has none", runtime.GOOS)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the process tests build the binary and need the go tool: %v", err)
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "workers-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "workers")
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	require.NoError(t, binErr)
	return binPath
}

// deployment is one configuration file and what the processes of the test
// share: the directory, the log directory.
type deployment struct {
	t       *testing.T
	dir     string
	config  string
	logDir  string
	bin     string
	procs   []*proc
	nextLog int
}

// heartbeat settings of the tests: the duties tick on real time.
const (
	beat      = 250 * time.Millisecond
	deadAfter = 3
	waitLong  = 45 * time.Second // bound of every wait
)

type variant struct {
	name     string
	services bool
}

var variants = []variant{{"SQLite", false}, {"Services", true}}

func newDeployment(t *testing.T, v variant) *deployment {
	t.Helper()
	d := &deployment{t: t, dir: t.TempDir(), bin: workersBinary(t)}
	d.logDir = filepath.Join(d.dir, "log")
	mq := "  url: sqlite:" + filepath.Join(d.dir, "queue.db")
	db := "  driver: sqlite\n  dsn: " + filepath.Join(d.dir, "worker.db")
	inline := false
	if v.services {
		amqp := testenv.AMQPURL(t)
		dsn := testenv.MySQLDSN(t)
		prefix := testenv.UniqueName(t)
		testenv.DeleteQueuesOnCleanup(t, amqp, worker.Topology{Prefix: prefix}.Topics()...)
		mq = fmt.Sprintf("  url: %q\n  prefix: %s", amqp, prefix)
		db = fmt.Sprintf("  driver: mysql\n  dsn: %q", dsn)
		inline = true // the test broker's guest:guest
	}
	yaml := fmt.Sprintf(`allow_inline_secrets: %v
process:
  shutdown_timeout: 20s
mq:
%s
provisioning_db:
%s
logging:
  dir: %s
  process_log: worker.log
  customer_logs: true
  level: debug
pinger:
  interval: %s
  probe_interval: 1s
  dead_after: %d
schedule:
  intervals:
    server: 1s
    server-status: 1s
  account_sync_interval: 300ms
accounts:
  - id: sim-e2e
    customer: e2e
    provider: sim
    settings: {servers: 3}
`, inline, mq, db, d.logDir, beat, deadAfter)
	d.config = filepath.Join(d.dir, "worker.yaml")
	require.NoError(t, os.WriteFile(d.config, []byte(yaml), 0o600))
	return d
}

// proc is one worker process of the test.
type proc struct {
	role    string
	cmd     *exec.Cmd
	logName string
	out     string // stdout and stderr
	done    chan struct{}
	state   *os.ProcessState
}

// childEnv is the test's environment without the WORKER_* variables (a
// WORKER_* variable naming no key is a configuration error) and without
// systemd's.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "WORKER_") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "WATCHDOG_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// start runs `workers <role> -config <file>` with its own process log.
func (d *deployment) start(role string, extraEnv ...string) *proc {
	t := d.t
	t.Helper()
	d.nextLog++
	p := &proc{role: role, logName: fmt.Sprintf("%s-%d.log", role, d.nextLog), done: make(chan struct{})}
	p.out = filepath.Join(d.dir, strings.TrimSuffix(p.logName, ".log")+".out")
	out, err := os.Create(p.out)
	require.NoError(t, err)
	p.cmd = exec.Command(d.bin, role, "-config", d.config)
	p.cmd.Env = childEnv(append([]string{"WORKER_LOGGING_PROCESS_LOG=" + p.logName}, extraEnv...)...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		_ = out.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.out)
			t.Logf("%s (pid %d) output:\n%s", role, p.cmd.Process.Pid, b)
		}
	})
	d.procs = append(d.procs, p)
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(s), "%s: %v", p.role, s)
}

// wait returns the exit code once the process has exited.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.state.ExitCode()
	case <-time.After(waitLong):
		t.Fatalf("%s (pid %d) did not exit within %v", p.role, p.pid(), waitLong)
		return -1
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// observer opens the deployment's store and transport as a worker that
// is never run (so it beats nowhere): the test reads Members, the stored
// resources and the account registry through it, and publishes with it.
func (d *deployment) observer(ctx context.Context) *worker.Worker {
	t := d.t
	t.Helper()
	cfg, err := service.Load(d.config, nil)
	require.NoError(t, err)
	cfg.Process.Role = string(worker.RolePublisher)
	cfg.Logging = service.LoggingSection{}
	wc, closer, err := cfg.Worker()
	require.NoError(t, err)
	t.Cleanup(func() { _ = closer.Close() })
	wc.Logger = slog.New(slog.DiscardHandler)
	wc.Store.Logger = wc.Logger
	w, err := worker.New(ctx, wc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// eventually polls cond every 100ms until it holds or waitLong passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; last: %s", waitLong, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// membersOf returns the members of the processes, by pid, as the
// membership view shows them.
func membersOf(ctx context.Context, w *worker.Worker, procs []*proc) (map[int]worker.Member, string, error) {
	ms, err := w.Members(ctx)
	if err != nil {
		return nil, "", err
	}
	byPID := map[int]worker.Member{}
	var b strings.Builder
	for _, m := range ms {
		for _, p := range procs {
			// a pid may come back for a later process: the latest start wins
			if m.PID == p.pid() && (byPID[m.PID].StartedAt.Before(m.StartedAt)) {
				byPID[m.PID] = m
			}
		}
		fmt.Fprintf(&b, "[%d %v %s beat %s] ", m.PID, m.Roles, m.Status, m.BeatAt.Format("15:04:05.000"))
	}
	return byPID, b.String(), nil
}

// waitAlive waits until every process is an alive member with its role.
func waitAlive(t *testing.T, ctx context.Context, w *worker.Worker, procs ...*proc) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d processes alive in Members", len(procs)), func() (bool, string) {
		by, s, err := membersOf(ctx, w, procs)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range procs {
			m, ok := by[p.pid()]
			roles := []string{p.role}
			if p.role == "all" {
				roles = []string{"publisher", "subscriber"}
			}
			if !ok || m.Status != worker.MemberAlive || !slices.Equal(m.Roles, roles) {
				return false, s
			}
		}
		return true, s
	})
}

// putAccounts publishes n account.put actions for sim accounts with two
// servers each, under customers of their own, and returns their ids.
func putAccounts(t *testing.T, ctx context.Context, w *worker.Worker, prefix string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		a := accounts.Account{ID: fmt.Sprintf("%s-%d", prefix, i), Customer: fmt.Sprintf("cust-%s-%d", prefix, i),
			Provider: "sim", Settings: json.RawMessage(`{"servers":2}`)}
		act, err := worker.NewAction(worker.TypeAccountPut, a)
		require.NoError(t, err)
		act.Customer = a.Customer
		require.NoError(t, w.Publish(ctx, act))
		ids = append(ids, a.ID)
	}
	return ids
}

// waitPolled waits until every account is in the registry and its servers
// are stored: the account.put actions were handled and the polls landed.
func waitPolled(t *testing.T, ctx context.Context, w *worker.Worker, servers int, ids ...string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d accounts registered with %d servers stored each", len(ids), servers), func() (bool, string) {
		for _, id := range ids {
			if _, err := w.Accounts().Get(ctx, id); err != nil {
				return false, id + ": " + err.Error()
			}
			rs, err := w.Store().Resources(ctx, id, "server", "", 100)
			if err != nil {
				return false, id + ": " + err.Error()
			}
			if len(rs) != servers {
				return false, fmt.Sprintf("%s: %d servers stored", id, len(rs))
			}
		}
		return true, ""
	})
}

// notifySocket listens on a unixgram socket as systemd does and collects
// what the process sends.
type notifySocket struct {
	path string
	mu   sync.Mutex
	got  []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "notify-") // short: a socket path has at most 107 bytes
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n := &notifySocket{path: filepath.Join(dir, "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.got = append(n.got, strings.Split(strings.TrimSpace(string(buf[:k])), "\n")...)
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) has(state string) (bool, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(n.got, state), fmt.Sprint(n.got)
}

// TestProcesses runs publisher, subscriber and two pingers as separate
// processes from one configuration file: the configured sim account is
// polled into the store, actions published to the deployment are all
// handled, all four beat, none listens on a socket, systemd hears READY,
// WATCHDOG and STOPPING, SIGHUP reopens the process log, and SIGTERM
// stops each with exit status 0.
func TestProcesses(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			if v.services && testing.Short() {
				t.Skip("-short: the variant on RabbitMQ and MariaDB is skipped")
			}
			testProcesses(t, v)
		})
	}
}

func testProcesses(t *testing.T, v variant) {
	d := newDeployment(t, v)
	ctx := t.Context()
	notify := listenNotify(t)
	pub := d.start("publisher", "NOTIFY_SOCKET="+notify.path, "WATCHDOG_USEC=400000")
	sub := d.start("subscriber")
	p1 := d.start("pinger")
	p2 := d.start("pinger")
	all := []*proc{pub, sub, p1, p2}
	w := d.observer(ctx)

	waitAlive(t, ctx, w, all...)
	waitPolled(t, ctx, w, 3, "sim-e2e")
	ids := putAccounts(t, ctx, w, "put", 10)
	waitPolled(t, ctx, w, 2, ids...)
	// One action the subscriber refuses: it is poisoned, not lost, and
	// logged to its customer's own log.
	bad, err := worker.NewAction(worker.TypeAccountPut, accounts.Account{ID: "bad", Customer: "cust-bad", Provider: "Not A Type"})
	require.NoError(t, err)
	bad.Customer = "cust-bad"
	require.NoError(t, w.Publish(ctx, bad))
	eventually(t, "the refused action in the poison store", func() (bool, string) {
		ps, err := w.Poisoned(ctx, worker.PoisonQuery{})
		if err != nil {
			return false, err.Error()
		}
		return len(ps) == 1 && ps[0].Action.ID == bad.ID, fmt.Sprint(len(ps), " poisoned")
	})
	custDir, err := logging.CustomerDir(d.logDir, "cust-bad")
	require.NoError(t, err)
	eventually(t, "the customer's log", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(custDir, "worker.log"))
		return err == nil && strings.Contains(string(b), bad.ID), fmt.Sprint(err)
	})

	for _, s := range []string{"READY=1", "WATCHDOG=1"} {
		eventually(t, "the publisher to notify "+s, func() (bool, string) { return notify.has(s) })
	}
	for _, p := range all {
		requireNoListeningSocket(t, p)
	}

	// The logs: each process's own file, the customers' files.
	for _, p := range all {
		require.FileExists(t, filepath.Join(d.logDir, p.logName))
	}
	// logrotate moves the file away and sends SIGHUP.
	log := filepath.Join(d.logDir, pub.logName)
	require.NoError(t, os.Rename(log, log+".1"))
	pub.signal(t, syscall.SIGHUP)
	eventually(t, "the publisher to reopen its log", func() (bool, string) {
		b, err := os.ReadFile(log)
		return err == nil && strings.Contains(string(b), "log files reopened"), fmt.Sprint(err)
	})

	for _, p := range all {
		p.signal(t, syscall.SIGTERM)
	}
	for _, p := range all {
		require.Equal(t, 0, p.wait(t), "%s exits 0 after SIGTERM", p.role)
	}
	eventually(t, "the publisher to notify STOPPING=1", func() (bool, string) { return notify.has("STOPPING=1") })
	by, s, err := membersOf(ctx, w, all)
	require.NoError(t, err)
	for _, p := range all {
		require.Equal(t, worker.MemberStopped, by[p.pid()].Status, "%s: %s", p.role, s)
	}
}

// TestProcessesKilledSubscriber: a SIGKILLed subscriber is marked dead in
// Members after dead_after beats while the others stay alive; actions
// published while no subscriber runs are handled by the next one.
func TestProcessesKilledSubscriber(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			if testing.Short() {
				t.Skip("-short: the killed-subscriber run is skipped")
			}
			testKilledSubscriber(t, v)
		})
	}
}

func testKilledSubscriber(t *testing.T, v variant) {
	d := newDeployment(t, v)
	ctx := t.Context()
	pub := d.start("publisher")
	sub := d.start("subscriber")
	p1 := d.start("pinger")
	p2 := d.start("pinger")
	w := d.observer(ctx)
	waitAlive(t, ctx, w, pub, sub, p1, p2)
	waitPolled(t, ctx, w, 3, "sim-e2e")

	sub.signal(t, syscall.SIGKILL)
	require.Equal(t, -1, sub.wait(t), "killed by a signal")
	eventually(t, "the killed subscriber to be dead, the others alive", func() (bool, string) {
		by, s, err := membersOf(ctx, w, []*proc{pub, sub, p1, p2})
		if err != nil {
			return false, err.Error()
		}
		ok := by[sub.pid()].Status == worker.MemberDead
		for _, p := range []*proc{pub, p1, p2} {
			ok = ok && by[p.pid()].Status == worker.MemberAlive
		}
		return ok, s
	})

	ids := putAccounts(t, ctx, w, "late", 5)
	sub2 := d.start("subscriber")
	waitAlive(t, ctx, w, pub, sub2, p1, p2)
	waitPolled(t, ctx, w, 2, ids...)

	for _, p := range []*proc{pub, sub2, p1, p2} {
		p.signal(t, syscall.SIGTERM)
	}
	for _, p := range []*proc{pub, sub2, p1, p2} {
		require.Equal(t, 0, p.wait(t), "%s exits 0 after SIGTERM", p.role)
	}
}

// TestProcessBadConfig: a bad configuration exits 1 with the error on one
// line, before anything runs.
func TestProcessBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "worker.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("process:\n  role: all\nmq:\n  url: amqx://mq/\n"), 0o600))
	for _, role := range []string{"publisher", "subscriber", "pinger", "all"} {
		_, errOut, code := runWith([]string{role, "-config", bad}, nil)
		require.Equal(t, 1, code, role)
		require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %s", errOut)
		require.Contains(t, errOut, `worker.yaml:4: mq.url: "amqx://mq/"`)
	}
}

// requireNoListeningSocket: the process holds no listening TCP socket and
// no bound, unconnected UDP socket (Linux: /proc/<pid>/net and fd).
func requireNoListeningSocket(t *testing.T, p *proc) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Logf("not checking %s's sockets: /proc/<pid>/net is Linux only", p.role)
		return
	}
	listening := map[string]string{}
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		require.NoError(t, listeningInodes(filepath.Join("/proc", fmt.Sprint(p.pid()), "net", f), strings.HasPrefix(f, "udp"), listening))
	}
	fds, err := os.ReadDir(filepath.Join("/proc", fmt.Sprint(p.pid()), "fd"))
	require.NoError(t, err)
	sockets := 0
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc", fmt.Sprint(p.pid()), "fd", fd.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		sockets++
		inode := strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")
		require.Empty(t, listening[inode], "%s (pid %d) listens: %s", p.role, p.pid(), listening[inode])
	}
	t.Logf("%s (pid %d): %d sockets, none listening", p.role, p.pid(), sockets)
}

// listeningInodes adds the inodes of the listening sockets of a
// /proc/net/{tcp,udp}[6] file: TCP state 0A (LISTEN), and UDP sockets
// with no remote address (bound to receive from anyone).
func listeningInodes(path string, udp bool, out map[string]string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fl := strings.Fields(sc.Text())
		if len(fl) < 10 {
			continue
		}
		remote := strings.Trim(fl[2], "0:") == ""
		if (!udp && fl[3] == "0A") || (udp && remote) {
			out[fl[9]] = filepath.Base(path) + " " + fl[1]
		}
	}
	return sc.Err()
}

// TestSignals: the first SIGTERM cancels the context (the drain), a
// second exits 1 at once.
func TestSignals(t *testing.T) {
	t.Parallel()
	term := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	var stderr strings.Builder
	done := make(chan struct{})
	go signals{term: term, cancel: cancel, exit: func(code int) { exited <- code }, stderr: &stderr}.watch(done)

	term <- syscall.SIGTERM
	<-ctx.Done()
	require.Empty(t, exited, "the first signal only starts the shutdown")
	term <- syscall.SIGINT
	require.Equal(t, 1, <-exited)

	// A shutdown that ends before a second signal exits through main.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	done2 := make(chan struct{})
	returned := make(chan struct{})
	go func() {
		signals{term: term, cancel: cancel2, exit: func(int) { t.Error("exit called") }, stderr: io.Discard}.watch(done2)
		close(returned)
	}()
	term <- syscall.SIGTERM
	<-ctx2.Done()
	close(done2)
	<-returned
	close(done)
}

// TestInitScript runs init.d/stratus-worker end to end: start brings up
// publisher, subscriber and two pingers with pid files, status reads them,
// all four beat, stop drains them and removes the pid files.
func TestInitScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skipf("the init script needs bash: %v", err)
	}
	d := newDeployment(t, variants[0])
	ctx := t.Context()
	runDir := filepath.Join(d.dir, "run")
	script := func(args ...string) (string, int) {
		cmd := exec.Command(bash, append([]string{"init.d/stratus-worker"}, args...)...)
		cmd.Env = childEnv("WORKERS_BIN="+d.bin, "RUN_DIR="+runDir, "PINGERS=2", "START_CHECK=0.3", "STOP_TIMEOUT=30")
		cmd.Env = append(cmd.Env, "WORKER_CONFIG="+d.config)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		require.NoError(t, err)
		return string(out), 0
	}
	var pids []int
	t.Cleanup(func() { // a failed test leaves no process behind
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	out, code := script("start")
	require.Equal(t, 0, code, out)
	names := []string{"publisher", "subscriber", "pinger-1", "pinger-2"}
	var procs []*proc
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(runDir, n+".pid"))
		require.NoError(t, err, out)
		var pid int
		_, err = fmt.Sscan(string(b), &pid)
		require.NoError(t, err)
		pids = append(pids, pid)
		procs = append(procs, &proc{role: strings.TrimSuffix(strings.TrimSuffix(n, "-1"), "-2"), cmd: &exec.Cmd{Process: &os.Process{Pid: pid}}})
		require.FileExists(t, filepath.Join(d.logDir, n+".log"), "each process logs to its own file")
	}
	out, code = script("status")
	require.Equal(t, 0, code, out)
	require.Equal(t, 4, strings.Count(out, ": running (pid "), out)

	w := d.observer(ctx)
	waitAlive(t, ctx, w, procs...)
	out, code = script("reload")
	require.Equal(t, 0, code, out)
	require.Equal(t, 4, strings.Count(out, ": log files reopened"), out)

	out, code = script("stop")
	require.Equal(t, 0, code, out)
	require.Equal(t, 4, strings.Count(out, ": stopped"), out)
	for _, n := range names {
		require.NoFileExists(t, filepath.Join(runDir, n+".pid"))
	}
	out, code = script("status")
	require.Equal(t, 3, code, out)
	by, s, err := membersOf(ctx, w, procs)
	require.NoError(t, err)
	for _, p := range procs {
		require.Equal(t, worker.MemberStopped, by[p.pid()].Status, "%s stopped cleanly: %s", p.role, s)
	}
}

// TestProcessMetrics: with metrics.listen set (here per process through its
// WORKER_METRICS_LISTEN), the process serves /metrics there, with the
// worker's series next to Go's; the default opens no socket
// (TestProcesses).
func TestProcessMetrics(t *testing.T) {
	d := newDeployment(t, variant{name: "SQLite"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	all := d.start("all", "WORKER_METRICS_LISTEN="+addr)
	ctx := t.Context()
	w := d.observer(ctx)
	waitAlive(t, ctx, w, all)
	waitPolled(t, ctx, w, 3, "sim-e2e")
	var body string
	eventually(t, "the server polls to show in /metrics", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err.Error()
		}
		body = string(b)
		return resp.StatusCode == http.StatusOK && strings.Contains(body, `worker_polls_total{kind="server",outcome="ok"}`), body
	})
	require.Contains(t, body, "go_goroutines")
	require.Contains(t, body, "worker_members")
	resp, err := http.Get("http://" + addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "only /metrics is served")
	all.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, all.wait(t))
}

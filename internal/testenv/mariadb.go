package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
)

// MariaDB is a MariaDB server a fault test can kill, start, freeze and thaw:
// the shared one ([SharedMariaDB]) or a test's own ([PrivateMariaDB]). Both
// are found the same way, by pid file and then by port ([FindPID]), never by
// process name, so the tests of the private instance also test the lookups
// used on the shared one.
//
// Every disruptive call ([MariaDB.Kill], [MariaDB.Freeze],
// [MariaDB.SetReadOnly]) registers, once per test, a t.Cleanup that brings the
// server back, even when the test fails or panics half-way: it sends SIGCONT,
// starts the server if it is down, waits until a login works and turns
// read_only off.
//
// The shared server is used by every package's integration tests at once, so
// disrupting it is allowed only from tests built with -tags faults, which
// .ci/run runs serially, one package at a time (-p 1) after everything else.
// In any other build the disruptive calls on the shared server fail the test;
// use a private instance there.
type MariaDB struct {
	desc   string        // for messages: "shared MariaDB 127.0.0.1:3306"
	admin  *mysql.Config // root login, no database
	port   int
	shared bool
	proc   *privateProc // private instances only
	owner  testing.TB   // private: the test whose cleanup removes the server

	mu sync.Mutex
	// pidFile is where the server writes its pid: ours for a private server,
	// learnt from the shared server itself (@@pid_file) while it is up, and
	// "" until then (the port alone is used). It is never guessed: a guessed
	// pid file may name another server.
	pidFile  string
	guarded  map[testing.TB]bool // tests with a bring-back cleanup registered
	readOnly map[testing.TB]bool // tests that called SetReadOnly
}

// Timeouts of the MariaDB controls.
const (
	// mariaDBReadyTimeout bounds the wait for a login after a (re)start; a
	// SIGKILLed server first runs InnoDB crash recovery.
	mariaDBReadyTimeout = 2 * time.Minute
	// killTimeout bounds the wait for a SIGKILLed process to die.
	killTimeout = 10 * time.Second
)

// Shared server defaults, as .ci/run starts it.
const (
	sharedMariaDBD       = "/usr/sbin/mariadbd"
	sharedMariaDBPIDFile = "/run/mysqld/mysqld.pid" // used only when neither the server nor mariadbd --print-defaults tells
)

var sharedPIDFiles sync.Map // addr -> pid file learnt from the server

// SharedMariaDB returns the controls of the shared server named by
// WORKER_TEST_MYSQL_DSN (skipping, or failing in CI, when it is not set). The
// server must be on this machine (a loopback address): its pid is found from
// its pid file, which is asked from the server (SELECT @@pid_file) while it is
// up and remembered for the life of the test binary, or else from the pid
// listening on its port; a pid file is never guessed for the lookup.
// [MariaDB.Start] runs the command .ci/run uses, with --pidfile added:
//
//	start-stop-daemon --start --oknodo --background --pidfile <pid file> --exec /usr/sbin/mariadbd
//
// --pidfile makes start-stop-daemon look for this server only: with --exec
// alone, any mariadbd on the machine, a private instance included, counts as
// "already running" and nothing is started.
//
// Looking the server up is harmless; Kill, Freeze and SetReadOnly may only be
// called from tests built with -tags faults.
func SharedMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	base := need(t, MySQLDSNEnv, "MySQL/MariaDB")
	cfg, err := mysql.ParseDSN(base)
	require.NoError(t, err, "testenv: %s is not a valid DSN", MySQLDSNEnv)
	if cfg.Net != "tcp" {
		t.Fatalf("testenv: %s: the shared MariaDB controls need a TCP address, not %s", MySQLDSNEnv, cfg.Net)
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	require.NoError(t, err, "testenv: %s: address %q", MySQLDSNEnv, cfg.Addr)
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Fatalf("testenv: %s: %s is not on this machine; its process cannot be controlled", MySQLDSNEnv, cfg.Addr)
	}
	port, err := strconv.Atoi(portStr)
	require.NoError(t, err, "testenv: %s: port %q", MySQLDSNEnv, portStr)
	admin := cfg.Clone()
	admin.DBName = ""
	m := &MariaDB{desc: "shared MariaDB " + cfg.Addr, admin: admin, port: port, shared: true}
	m.learnPIDFile()
	return m
}

// learnPIDFile asks the shared server for its pid file unless it is known; the
// answer is remembered for the life of the test binary. While the server
// cannot answer, the pid file stays unknown and the port alone is used.
func (m *MariaDB) learnPIDFile() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pidFile != "" || !m.shared {
		return m.pidFile
	}
	if v, ok := sharedPIDFiles.Load(m.admin.Addr); ok {
		m.pidFile = v.(string)
		return m.pidFile
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var pidFile, dataDir string
	err := m.withDB(ctx, func(db *sql.DB) error {
		return db.QueryRowContext(ctx, "SELECT @@pid_file, @@datadir").Scan(&pidFile, &dataDir)
	})
	if err == nil && pidFile != "" {
		if !filepath.IsAbs(pidFile) {
			pidFile = filepath.Join(dataDir, pidFile)
		}
		sharedPIDFiles.Store(m.admin.Addr, pidFile)
		m.pidFile = pidFile
	}
	return m.pidFile
}

// startPIDFile is the pid file start-stop-daemon is given to start the shared
// server: the one the server reported, else the --pid-file mariadbd reads
// from its option files (it is what the started server will use), else the
// Debian default. Only start-stop-daemon uses a guessed one: it checks that
// the pid in it is a running /usr/sbin/mariadbd before doing nothing.
func (m *MariaDB) startPIDFile() string {
	if f := m.learnPIDFile(); f != "" {
		return f
	}
	if f := printDefaultsPIDFile(sharedMariaDBD); f != "" {
		return f
	}
	return sharedMariaDBPIDFile
}

// printDefaultsPIDFile returns the --pid-file that mariadbd would read from
// its option files, or "".
func printDefaultsPIDFile(mariadbd string) string {
	out, err := exec.Command(mariadbd, "--print-defaults").Output()
	if err != nil {
		return ""
	}
	file := ""
	for _, f := range strings.Fields(string(out)) {
		for _, p := range []string{"--pid-file=", "--pid_file="} {
			if v, ok := strings.CutPrefix(f, p); ok {
				file = v // the last one wins, as in mariadbd
			}
		}
	}
	return file
}

// String names the server in messages.
func (m *MariaDB) String() string { return m.desc }

// Addr returns the server's TCP address, host:port.
func (m *MariaDB) Addr() string { return m.admin.Addr }

// PIDFile returns the pid file the server's pid is looked up in first, ""
// while the shared server has not been able to tell it.
func (m *MariaDB) PIDFile() string { return m.learnPIDFile() }

// DSN returns a root DSN for database dbName on the server ("" for none).
func (m *MariaDB) DSN(dbName string) string {
	cfg := m.admin.Clone()
	cfg.DBName = dbName
	return cfg.FormatDSN()
}

// NewDatabase creates a fresh database on the server, drops it when the test
// ends, and returns a root DSN that points at it.
func (m *MariaDB) NewDatabase(t testing.TB) string {
	t.Helper()
	return createDatabase(t, m.admin)
}

// PID returns the server's pid, from its pid file or else its port
// ([FindPID]); the error wraps [ErrNotRunning] when the server is down.
func (m *MariaDB) PID() (int, error) {
	pid, err := FindPID(m.learnPIDFile(), m.port)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", m, err)
	}
	return pid, nil
}

// Kill sends SIGKILL to the server and waits until the process is gone. The
// test's cleanup starts it again if the test does not.
func (m *MariaDB) Kill(t testing.TB) {
	t.Helper()
	m.disrupt(t, "Kill")
	require.NoError(t, m.signalAndWait(sigKill, processGone, killTimeout))
}

// Start starts the server unless it is running, resumes it (SIGCONT) if it is
// frozen, and waits until a root login over TCP works.
func (m *MariaDB) Start(t testing.TB) {
	t.Helper()
	start := time.Now()
	require.NoError(t, m.start())
	t.Logf("testenv: %s answers (%v after Start)", m, time.Since(start).Round(time.Millisecond))
}

// Freeze sends SIGSTOP to the server and waits until it is stopped: its
// sockets stay open and TCP connections still complete, but nothing answers,
// as with a hung database. The test's cleanup thaws it if the test does not.
func (m *MariaDB) Freeze(t testing.TB) {
	t.Helper()
	m.disrupt(t, "Freeze")
	require.NoError(t, m.signalAndWait(sigStop, processStopped, 5*time.Second))
}

// Thaw sends SIGCONT to the server and waits until a login works again.
func (m *MariaDB) Thaw(t testing.TB) {
	t.Helper()
	require.NoError(t, m.signalAndWait(sigCont, processRunning, 5*time.Second))
	require.NoError(t, m.WaitReady(mariaDBReadyTimeout))
}

// SetReadOnly sets the server's global read_only on or off (SET GLOBAL
// read_only). Root and every user with SUPER / READ_ONLY ADMIN still write;
// use a login from [RestrictedDSN] to see the effect. read_only is global:
// on the shared server it affects every database, hence the faults-only rule.
// The test's cleanup always turns it off.
func (m *MariaDB) SetReadOnly(t testing.TB, on bool) {
	t.Helper()
	m.disrupt(t, "SetReadOnly")
	m.mu.Lock()
	if m.readOnly == nil {
		m.readOnly = map[testing.TB]bool{}
	}
	m.readOnly[t] = true
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, m.setReadOnly(ctx, on))
}

func (m *MariaDB) setReadOnly(ctx context.Context, on bool) error {
	v := "OFF"
	if on {
		v = "ON"
	}
	err := m.withDB(ctx, func(db *sql.DB) error {
		_, err := db.ExecContext(ctx, "SET GLOBAL read_only = "+v)
		return err
	})
	if err != nil {
		return fmt.Errorf("testenv: %s: SET GLOBAL read_only = %s: %w", m, v, err)
	}
	return nil
}

// WaitReady waits until a root login over TCP works and answers SELECT 1, for
// at most timeout. For a private instance it gives up at once, with the end of
// the server's error log, if the process exits.
func (m *MariaDB) WaitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		if m.proc != nil {
			if err := m.proc.exitErr(); err != nil {
				return fmt.Errorf("testenv: %s exited: %w\n%s", m, err, m.proc.logTail())
			}
		}
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		last = m.ping(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: %s did not answer within %v: %w", m, timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *MariaDB) ping(ctx context.Context) error {
	return m.withDB(ctx, func(db *sql.DB) error {
		var one int
		return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	})
}

// withDB runs f with a fresh root connection pool, closed afterwards.
func (m *MariaDB) withDB(ctx context.Context, f func(*sql.DB) error) error {
	connector, err := mysql.NewConnector(m.admin)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	return f(db)
}

// start starts the server unless it is running, then waits until it answers.
func (m *MariaDB) start() error {
	pid, err := m.PID()
	switch {
	case err == nil:
		if processStopped(pid) {
			if err := sendSignal(pid, sigCont); err != nil {
				return err
			}
		}
	case errors.Is(err, ErrNotRunning):
		if m.proc != nil {
			err = m.proc.start()
		} else {
			err = m.startShared()
		}
		if err != nil {
			return err
		}
	default:
		return err
	}
	return m.WaitReady(mariaDBReadyTimeout)
}

// startShared runs the shared server's start command (see SharedMariaDB).
func (m *MariaDB) startShared() error {
	pidFile := m.startPIDFile()
	// As .ci/run: /run is a tmpfs, so /run/mysqld (socket, pid file) may be gone.
	if err := os.MkdirAll("/run/mysqld", 0o755); err == nil {
		if u, err := user.Lookup("mysql"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			_ = os.Chown("/run/mysqld", uid, gid)
		}
	}
	_ = os.MkdirAll(filepath.Dir(pidFile), 0o755)
	// A pid file left by a killed server may by now name another mariadbd
	// (pids wrap), which start-stop-daemon would take for this one.
	if _, err := pidFromFile(pidFile); errors.Is(err, ErrNotRunning) {
		_ = os.Remove(pidFile)
	}
	cmd := exec.Command("start-stop-daemon", sharedStartArgs(pidFile)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: start %s: %s: %w: %s", m, cmd, err, out)
	}
	return nil
}

// sharedStartArgs are start-stop-daemon's arguments that start the shared server.
func sharedStartArgs(pidFile string) []string {
	return []string{"--start", "--oknodo", "--background", "--pidfile", pidFile, "--exec", sharedMariaDBD}
}

// signalAndWait sends s to the server and waits until cond holds for its pid.
func (m *MariaDB) signalAndWait(s signal, cond func(int) bool, timeout time.Duration) error {
	pid, err := m.PID()
	if err != nil {
		return err
	}
	if err := sendSignal(pid, s); err != nil {
		return fmt.Errorf("%s: %w", m, err)
	}
	if !waitState(pid, timeout, cond) {
		return fmt.Errorf("testenv: %s: pid %d is in state %q %v after %v", m, pid, processState(pid), timeout, s)
	}
	return nil
}

// disrupt refuses disruptive calls on the shared server outside fault tests,
// and registers (once per test) the cleanup that brings the server back.
func (m *MariaDB) disrupt(t testing.TB, what string) {
	t.Helper()
	if m.shared && !faultsBuild {
		t.Fatalf("testenv: %s on the %s is for fault tests only (build tag faults, run serially by .ci/run): "+
			"other packages' tests use it right now; use PrivateMariaDB", what, m)
	}
	if m.proc != nil && t == m.owner {
		return // the owner's cleanup removes the private server anyway
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.guarded == nil {
		m.guarded = map[testing.TB]bool{}
	}
	if m.guarded[t] {
		return
	}
	m.guarded[t] = true
	t.Cleanup(func() {
		if err := m.restore(t); err != nil {
			t.Errorf("testenv: bring back %s: %v", m, err)
		}
		m.mu.Lock()
		delete(m.guarded, t)
		delete(m.readOnly, t)
		m.mu.Unlock()
	})
}

// restore brings the server back after a test disrupted it: SIGCONT to a
// frozen process, a start if it is down, a wait until it answers, and
// read_only off if the test set it.
func (m *MariaDB) restore(t testing.TB) error {
	if err := m.start(); err != nil {
		return err
	}
	m.mu.Lock()
	ro := m.readOnly[t]
	m.mu.Unlock()
	if !ro {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		err := m.setReadOnly(ctx, false)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// createDatabase creates a fresh database on the server admin logs in to,
// drops it when the test ends, and returns a DSN that points at it.
func createDatabase(t testing.TB, admin *mysql.Config) string {
	t.Helper()
	name := UniqueName(t)
	admin = admin.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		t.Fatalf("testenv: open mysql: %v", err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", admin.FormatDSN())
		if err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
			return
		}
		defer db.Close()
		for i := 0; i < 3; i++ { // a restarting server may refuse once
			if _, err = db.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err == nil {
				return
			}
			time.Sleep(time.Second)
		}
		t.Logf("testenv: drop database %s: %v", name, err)
	})
	cfg := admin.Clone()
	cfg.DBName = name
	return cfg.FormatDSN()
}

// restrictedGrants are the privileges of a [RestrictedDSN] login on its database.
const restrictedGrants = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP"

// RestrictedDSN creates a login without administrative privileges (so that
// read_only applies to it, unlike root, whose SUPER bypasses it), with
// SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX and DROP on dsn's
// database only, and returns dsn with that login instead. dsn must name a
// database and log in as a user that may create users (root), e.g. one from
// [MySQLDSN] or [MariaDB.NewDatabase]. The user (host '%', so it matches TCP
// logins; the servers run with skip-name-resolve) is dropped when the test
// ends. Creating it does not disrupt the server; any test may call this.
func RestrictedDSN(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	require.NoError(t, err, "testenv: RestrictedDSN: invalid DSN")
	if cfg.DBName == "" {
		t.Fatalf("testenv: RestrictedDSN: %q names no database", dsn)
	}
	name, password := "tu_"+Suffix(), Suffix()+Suffix()
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	require.NoError(t, err)
	defer db.Close()
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", name, password),
		fmt.Sprintf("GRANT %s ON `%s`.* TO '%s'@'%%'", restrictedGrants, cfg.DBName, name),
	} {
		_, err := db.Exec(q)
		require.NoError(t, err, "testenv: RestrictedDSN: create user %s", name)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", admin.FormatDSN())
		if err != nil {
			t.Logf("testenv: drop user %s: %v", name, err)
			return
		}
		defer db.Close()
		for i := 0; i < 3; i++ {
			if _, err = db.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", name)); err == nil {
				return
			}
			time.Sleep(time.Second)
		}
		t.Logf("testenv: drop user %s: %v", name, err)
	})
	cfg.User, cfg.Passwd = name, password
	return cfg.FormatDSN()
}

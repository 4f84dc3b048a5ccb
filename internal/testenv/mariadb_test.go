package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
)

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n))
	return n
}

// TestPrivateMariaDBControls walks a private instance through every control:
// a frozen server lets a query with a 1 s context time out and answers once
// thawed; a killed one refuses connections and answers again once started,
// with its committed rows.
func TestPrivateMariaDBControls(t *testing.T) {
	m := PrivateMariaDB(t)
	db := openDB(t, m.NewDatabase(t))
	_, err := db.Exec("CREATE TABLE t (id INT PRIMARY KEY)")
	require.NoError(t, err)
	_, err = db.Exec("INSERT INTO t VALUES (1), (2), (3)")
	require.NoError(t, err)

	pid, err := m.PID()
	require.NoError(t, err)
	require.Equal(t, m.proc.cmd.Process.Pid, pid, "the pid from the pid file is the process we started")
	portPID, err := ListeningPID(m.port)
	require.NoError(t, err)
	require.Equal(t, pid, portPID, "the pid listening on the port is the same")

	// Freeze: connecting still works at TCP level, but nothing answers.
	m.Freeze(t)
	require.Equal(t, "T", processState(pid))
	for _, fresh := range []bool{false, true} { // a pooled connection and a new one
		if fresh {
			db.SetMaxIdleConns(0) // the next query dials
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		began := time.Now()
		var n int
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n)
		cancel()
		took := time.Since(began)
		require.Error(t, err, "a frozen server does not answer (fresh connection: %v)", fresh)
		require.ErrorIs(t, err, context.DeadlineExceeded, "fresh connection: %v", fresh)
		require.InDelta(t, time.Second.Seconds(), took.Seconds(), 0.5, "the query gives up when its context does (fresh connection: %v)", fresh)
	}
	db.SetMaxIdleConns(2)

	m.Thaw(t)
	require.Equal(t, 3, count(t, db))
	m.Freeze(t)
	m.Start(t) // resumes a frozen server too
	require.Equal(t, 3, count(t, db))

	// Kill: the port is closed; Start brings the same data back on the same port.
	m.Kill(t)
	_, err = m.PID()
	require.ErrorIs(t, err, ErrNotRunning)
	_, err = net.DialTimeout("tcp", m.Addr(), time.Second)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	require.Error(t, db.PingContext(ctx))
	cancel()

	began := time.Now()
	m.Start(t)
	t.Logf("restart after SIGKILL (crash recovery) took %v", time.Since(began).Round(time.Millisecond))
	require.Equal(t, 3, count(t, db))
	pid2, err := m.PID()
	require.NoError(t, err)
	require.NotEqual(t, pid, pid2)
	m.Start(t) // a no-op on a running server
	pid3, err := m.PID()
	require.NoError(t, err)
	require.Equal(t, pid2, pid3)
}

// TestPrivateMariaDBCleanupBringsItBack: a subtest that kills, freezes or sets
// read_only and ends without undoing it leaves the server answering, writable,
// for the rest of the test.
func TestPrivateMariaDBCleanupBringsItBack(t *testing.T) {
	m := PrivateMariaDB(t)
	dsn := m.NewDatabase(t)
	db := openDB(t, dsn)
	_, err := db.Exec("CREATE TABLE t (id INT PRIMARY KEY)")
	require.NoError(t, err)

	t.Run("Killed", func(t *testing.T) { m.Kill(t) })
	require.Equal(t, 0, count(t, db))
	t.Run("Frozen", func(t *testing.T) { m.Freeze(t) })
	require.Equal(t, 0, count(t, db))
	t.Run("FrozenThenKilled", func(t *testing.T) { m.Freeze(t); m.Kill(t) })
	require.Equal(t, 0, count(t, db))
	t.Run("ReadOnly", func(t *testing.T) { m.SetReadOnly(t, true) })
	var ro int
	require.NoError(t, db.QueryRow("SELECT @@global.read_only").Scan(&ro))
	require.Zero(t, ro, "read_only is off again")
}

// TestPrivateMariaDBReadOnly: read_only stops a RestrictedDSN login from
// writing, not root.
func TestPrivateMariaDBReadOnly(t *testing.T) {
	m := PrivateMariaDB(t)
	rootDSN := m.NewDatabase(t)
	appDSN := RestrictedDSN(t, rootDSN)
	root, app := openDB(t, rootDSN), openDB(t, appDSN)
	_, err := app.Exec("CREATE TABLE t (id INT PRIMARY KEY)")
	require.NoError(t, err, "the restricted login may create tables in its database")
	_, err = app.Exec("INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	_, err = app.Exec("CREATE DATABASE other_" + Suffix())
	require.Error(t, err, "but nothing outside it")

	m.SetReadOnly(t, true)
	_, err = app.Exec("INSERT INTO t VALUES (2)")
	var myErr *mysql.MySQLError
	require.ErrorAs(t, err, &myErr)
	require.EqualValues(t, 1290, myErr.Number, "ER_OPTION_PREVENTS_STATEMENT: %v", err)
	require.Equal(t, 1, count(t, app), "reads still work")
	_, err = root.Exec("INSERT INTO t VALUES (3)")
	require.NoError(t, err, "root's SUPER bypasses read_only")

	m.SetReadOnly(t, false)
	_, err = app.Exec("INSERT INTO t VALUES (2)")
	require.NoError(t, err)
	require.Equal(t, 3, count(t, app))
}

// TestSharedMariaDBLookup finds the shared server's pid without touching the
// server: by the pid file it reports and by its port, which must agree, and
// dry-runs its start command (start-stop-daemon --test), which must see it
// running by that pid file.
func TestSharedMariaDBLookup(t *testing.T) {
	m := SharedMariaDB(t)
	pid, err := m.PID()
	require.NoError(t, err)
	filePID, err := pidFromFile(m.PIDFile())
	require.NoError(t, err, "pid file %s", m.PIDFile())
	portPID, err := ListeningPID(m.port)
	require.NoError(t, err)
	require.Equal(t, pid, filePID)
	require.Equal(t, pid, portPID)
	t.Logf("%s: pid %d, pid file %s", m, pid, m.PIDFile())

	if _, err := exec.LookPath("start-stop-daemon"); err != nil {
		t.Log("no start-stop-daemon: start command not dry-run")
		return
	}
	out, err := exec.Command("start-stop-daemon", append([]string{"--test"}, sharedStartArgs(m.startPIDFile())...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "already running", "start-stop-daemon finds the running server by its pid file")
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends the
// goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestSharedControlsNeedFaultsTag: outside a -tags faults build, the
// disruptive controls refuse to touch the shared services (this test builds
// the controls by hand; it does not need the services).
func TestSharedControlsNeedFaultsTag(t *testing.T) {
	if faultsBuild {
		t.Skip("built with -tags faults")
	}
	m := &MariaDB{desc: "shared MariaDB 127.0.0.1:3306", shared: true}
	r := &RabbitMQ{desc: "shared RabbitMQ 127.0.0.1:5672"}
	for name, call := range map[string]func(testing.TB){
		"Kill": m.Kill, "Freeze": m.Freeze,
		"SetReadOnly": func(t testing.TB) { m.SetReadOnly(t, true) },
		"Stop":        r.Stop, "Restart": r.Restart,
	} {
		t.Run(name, func(t *testing.T) {
			rec := &fatalRecorder{TB: t}
			done := make(chan struct{})
			go func() { defer close(done); call(rec) }()
			<-done
			require.Contains(t, rec.msg, "fault tests only")
			require.True(t, strings.HasPrefix(rec.msg, "testenv: "+name), rec.msg)
		})
	}
}

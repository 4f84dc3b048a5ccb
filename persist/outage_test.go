package persist

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/testenv"
)

// tcpProxy forwards local connections to a server, and can freeze (hold
// every byte, as a stopped server process would) or go down (close every
// connection and refuse new ones), so a test can stage an outage of a shared
// server without touching it.
type tcpProxy struct {
	ln       net.Listener
	upstream string
	frozen   atomic.Bool
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newTCPProxy(t *testing.T, upstream string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, upstream: upstream}
	p.wg.Go(p.accept)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) track(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.track(up)
		p.wg.Go(func() { p.pipe(up, c) })
		p.wg.Go(func() { p.pipe(c, up) })
	}
}

// pipe copies src to dst, holding what it read while the proxy is frozen.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.frozen.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = dst.Close()
			return
		}
	}
}

// freeze holds every byte from now on, as a SIGSTOPped server would: the
// connections stay open and nothing is answered.
func (p *tcpProxy) freeze() { p.frozen.Store(true) }

// down closes every connection and the listener: the port refuses
// connections from now on.
func (p *tcpProxy) down() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.frozen.Store(false)
	p.wg.Wait()
}

// proxiedMySQL returns a fresh test database reached through a proxy.
func proxiedMySQL(t *testing.T) (*tcpProxy, *mysql.Config) {
	t.Helper()
	mc, err := mysql.ParseDSN(testenv.MySQLDSN(t))
	require.NoError(t, err)
	p := newTCPProxy(t, mc.Addr)
	mc.Addr = p.addr()
	return p, mc
}

// TestOutageFrozen: a database that stops answering fails calls within the
// read timeout with ErrUnavailable (not retried: each attempt would wait as
// long again), a caller that gives up gets its context's error, and nothing
// is logged above Debug.
func TestOutageFrozen(t *testing.T) {
	t.Parallel()
	proxy, mc := proxiedMySQL(t)
	logs := &recordHandler{}
	s := openStore(t, Config{
		Provisioning: DBConfig{Driver: MySQL, DSN: mc.FormatDSN(),
			ReadTimeout: time.Second}, // the default, 30s, would make the test slow
		Logger: slog.New(logs),
	})
	ctx := context.Background()
	require.NoError(t, s.AddPoison(ctx, Parked{MessageUUID: "before", Topic: "t"}))
	logs.reset()

	proxy.freeze()
	start := time.Now()
	err := s.AddPoison(ctx, Parked{MessageUUID: "frozen", Topic: "t"})
	elapsed := time.Since(start)
	t.Logf("after %s: %v", elapsed.Round(time.Millisecond), err)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "invalid connection: lost after 1")
	require.Less(t, elapsed, 3*time.Second)

	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond) // a shutdown
	defer cancel()
	_, err = s.ListPoison(cctx, PoisonFilter{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, ErrUnavailable)

	require.Empty(t, logs.above(slog.LevelInfo), "the caller logs the error, once")
}

// TestOutageDown: a database whose server went away fails calls at once with
// ErrUnavailable, naming where no server answered, and logs nothing above
// Debug; a shutdown (canceled context) logs nothing either.
func TestOutageDown(t *testing.T) {
	t.Parallel()
	proxy, mc := proxiedMySQL(t)
	logs := &recordHandler{}
	s := openStore(t, Config{Provisioning: DBConfig{Driver: MySQL, DSN: mc.FormatDSN()}, Logger: slog.New(logs)})
	ctx := context.Background()
	require.NoError(t, s.AddPoison(ctx, Parked{MessageUUID: "before", Topic: "t"}))
	logs.reset()

	proxy.down()
	start := time.Now()
	err := s.AddPoison(ctx, Parked{MessageUUID: "down", Topic: "t"})
	t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "no MySQL server answered at "+proxy.addr())
	require.Less(t, time.Since(start), defaultMySQLConnectTimeout)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.ListPoison(cctx, PoisonFilter{})
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, logs.above(slog.LevelInfo))
}

// TestOutOfConnections: a server that refuses a connection because the user
// has used up its connections is ErrUnavailable.
func TestOutOfConnections(t *testing.T) {
	t.Parallel()
	dsn := testenv.MySQLDSN(t)
	mc, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	admin, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	user, password := "wrk_"+testenv.Suffix(), "pw-"+testenv.Suffix()
	_, err = admin.Exec("CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "' WITH MAX_USER_CONNECTIONS 1")
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	_, err = admin.Exec("GRANT SELECT, INSERT, UPDATE, DELETE ON `" + mc.DBName + "`.* TO '" + user + "'@'%'")
	require.NoError(t, err)
	require.NoError(t, Migrate(context.Background(), Config{Provisioning: DBConfig{Driver: MySQL, DSN: dsn}, Logger: testLogger(t)}))

	u := mc.Clone()
	u.User, u.Passwd = user, password
	s := openStore(t, Config{Provisioning: DBConfig{Driver: MySQL, DSN: u.FormatDSN()}})
	ctx := context.Background()
	held, err := s.prov.pools[0].Conn(ctx) // the user's one connection
	require.NoError(t, err)
	defer held.Close()
	_, err = s.ListPoison(ctx, PoisonFilter{})
	require.ErrorIs(t, err, ErrUnavailable)
	var me *mysql.MySQLError
	require.True(t, errors.As(err, &me))
	require.Contains(t, []uint16{1203, 1226}, me.Number, me.Message) // MySQL, MariaDB
}

// TestReadOnlyIsUnavailable: writing to a read-only database is
// ErrUnavailable, on the real drivers.
func TestReadOnlyIsUnavailable(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		db := b.db(t)
		s := openStore(t, Config{Provisioning: db})
		ctx := context.Background()
		var err error
		switch {
		case db.Driver == MySQL: // a read-only transaction; the server's read_only is not ours to set
			var raw *sql.DB
			raw, err = sql.Open("mysql", db.DSN)
			require.NoError(t, err)
			defer raw.Close()
			err = retry(ctx, func() error {
				tx, err := raw.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
				if err != nil {
					return err
				}
				defer func() { _ = tx.Rollback() }()
				_, err = tx.Exec("DELETE FROM " + tblPoison)
				return err
			})
		case db.DSN == MemoryDSN:
			t.Skip("one connection, which writes")
		default: // the read pool is query_only
			calls := 0
			err = retry(ctx, func() error { calls++; return s.prov.reader.Exec("DELETE FROM " + tblPoison).Error })
			require.Equal(t, 1, calls, "not retried")
		}
		t.Log(err)
		require.ErrorIs(t, err, ErrUnavailable)
	})
}

// TestFailedStatementLogsNothing: a statement that fails is returned, not
// logged (the caller logs it once).
func TestFailedStatementLogsNothing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		logs := &recordHandler{}
		s := openStore(t, Config{Provisioning: b.db(t), Logger: slog.New(logs)})
		require.NoError(t, s.DB().Exec("DROP TABLE "+tblPoison).Error)
		logs.reset()
		_, err := s.ListPoison(context.Background(), PoisonFilter{})
		require.Error(t, err)
		require.Empty(t, logs.above(slog.LevelDebug))
	})
}

package persist

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/go-sql-driver/mysql"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"
)

// Store is the GORM-backed persistence layer: current resource state, history,
// poison and deferred messages. It is safe for concurrent use by many
// goroutines and, through the database, by many processes.
type Store struct {
	log  *slog.Logger
	now  func() time.Time
	prov *database // provisioning
	ana  *database // analytics; == prov when they are the same database

	sweepBatch int    // ids per Sweep batch; 0 means defaultSweepBatch (tests lower it)
	afterRead  func() // tests: runs after Save's read, before its transaction
	purgeBatch int    // rows per PurgeSentEvents and PurgeInbox batch; 0 means defaultPurgeBatch

	saves groupCommit // concurrent Saves' writes, coalesced
}

// database is one opened database: a writer handle and a reader handle, which
// are the same *gorm.DB except for a SQLite file.
type database struct {
	driver Driver
	desc   string // human description, no secrets
	writer *gorm.DB
	reader *gorm.DB
	pools  []*sql.DB // closed by Close; [0] writes, the last one reads (one pool but for a SQLite file)
	// maxRow is the most bytes of values one row may hold: what the server
	// accepts in one statement (MySQL's max_allowed_packet), less headroom.
	maxRow int64
	mysql  *mysql.Config // MySQL only: to open the migration connection
	// anchor keeps an in-memory SQLite database alive (MemoryDSN only): one
	// connection that is never used, closed after the pools.
	anchor *sql.DB
}

func (d *database) close() error {
	var errs []error
	for _, p := range d.pools {
		errs = append(errs, p.Close())
	}
	if d.anchor != nil {
		errs = append(errs, d.anchor.Close())
	}
	return errors.Join(errs...)
}

// Open connects to the configured databases (pinging them under ctx),
// brings their schema up to date (or, with [MigrateVerify], checks that it
// is) and returns a ready store. It fails with an error that names the
// database (never its password): [ErrUnavailable] when a database cannot be
// reached or does not answer within its connect timeout, [ErrSchemaTooNew]
// when a newer binary has migrated it, [ErrSchemaTooOld] when it lacks
// migrations in verify mode, and [ErrInvalid] for a bad cfg.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	s, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Migrations == MigrateVerify {
		err = s.verifySchema(ctx)
	} else {
		err = s.migrate(ctx)
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	s.log.Info("persist: store open", "db", s.Describe())
	return s, nil
}

// connect validates cfg and opens its databases, leaving the schema alone.
func connect(ctx context.Context, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{log: cfg.Logger, now: cfg.Now}
	gcfg := func() *gorm.Config {
		return &gorm.Config{
			SkipDefaultTransaction: true, // every multi-statement write has its own transaction
			DisableAutomaticPing:   true, // we ping with the caller's context
			NowFunc:                func() time.Time { return dbTime(s.now()) },
			Logger:                 newGormLogger(cfg.Logger),
		}
	}

	prov, err := openDatabase(ctx, cfg.Provisioning, gcfg(), cfg.Logger)
	if err != nil {
		return nil, err
	}
	s.prov, s.ana = prov, prov
	if !cfg.Analytics.isZero() && !sameDatabase(cfg.Provisioning, cfg.Analytics) {
		if s.ana, err = openDatabase(ctx, cfg.Analytics, gcfg(), cfg.Logger); err != nil {
			_ = prov.close()
			return nil, err
		}
	}
	return s, nil
}

// Close closes every connection pool of the store.
func (s *Store) Close() error {
	err := s.prov.close()
	if s.ana != s.prov {
		err = errors.Join(err, s.ana.close())
	}
	return err
}

// Describe returns a one-line summary of the databases without secrets, e.g.
// "sqlite /srv/worker.db" or "mysql app@10.0.0.5:3306/worker (analytics: mysql
// app@10.0.0.6:3306/history)".
func (s *Store) Describe() string {
	if s.ana == s.prov {
		return s.prov.desc
	}
	return s.prov.desc + " (analytics: " + s.ana.desc + ")"
}

// DB returns the GORM handle that writes to the provisioning database. It
// is for a host that opened the store itself (standalone, or to pass it to
// a worker as worker.Config.Storage) and keeps tables of its own beside the
// worker's: to create them, say. Writes that must happen once per action go
// through the worker's HandleTx, which hands the handler a transaction on
// this database; the worker_* tables are the store's, written only through
// its methods. For SQLite it has exactly one connection: holding a
// transaction on it blocks every other write of the store.
func (s *Store) DB() *gorm.DB { return s.prov.writer }

// sameDatabase reports whether two (defaulted, valid) configurations point at
// the same database, in which case one handle serves both.
func sameDatabase(a, b DBConfig) bool {
	if a.Driver != b.Driver {
		return false
	}
	switch a.Driver {
	case SQLite:
		if a.DSN == MemoryDSN || b.DSN == MemoryDSN {
			return a.DSN == b.DSN
		}
		pa, errA := filepath.Abs(a.DSN)
		pb, errB := filepath.Abs(b.DSN)
		return errA == nil && errB == nil && pa == pb
	case MySQL:
		ma, errA := mysql.ParseDSN(a.DSN)
		mb, errB := mysql.ParseDSN(b.DSN)
		return errA == nil && errB == nil && ma.Net == mb.Net && ma.Addr == mb.Addr && ma.DBName == mb.DBName
	}
	return false
}

func openDatabase(ctx context.Context, c DBConfig, gcfg *gorm.Config, log *slog.Logger) (*database, error) {
	if c.Driver == MySQL {
		return openMySQL(ctx, c, gcfg, log)
	}
	return openSQLite(ctx, c, gcfg)
}

// sqliteMaxRow bounds the values of one SQLite row: SQLite refuses a string
// or blob longer than SQLITE_MAX_LENGTH (10^9 bytes unless compiled
// otherwise).
const sqliteMaxRow = 1_000_000_000 - mysqlRowHeadroom

// sqliteDSN builds a go-sqlite DSN. Pragmas run on every new connection, in
// order: the busy timeout first so that switching to WAL waits for a lock held
// by another process instead of failing.
func sqliteDSN(path string, writer bool) string {
	return path + "?" + sqliteParams(writer)
}

// sqliteParams is the query of a go-sqlite DSN: the pragmas and, for the
// writer, the transaction lock.
func sqliteParams(writer bool) string {
	params := []string{
		"_pragma=busy_timeout(10000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=foreign_keys(1)",
	}
	if writer {
		// BEGIN IMMEDIATE: a write transaction takes the write lock up front, so
		// two processes queue on busy_timeout instead of deadlocking on upgrade.
		params = append(params, "_txlock=immediate")
	} else {
		params = append(params, "_pragma=query_only(1)")
	}
	return strings.Join(params, "&")
}

func openSQLite(ctx context.Context, c DBConfig, gcfg *gorm.Config) (*database, error) {
	if c.DSN == MemoryDSN {
		return openSQLiteMemory(ctx, gcfg)
	}

	path, err := filepath.Abs(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("persist: sqlite database %q: %w", c.DSN, err)
	}
	d := &database{driver: SQLite, desc: "sqlite " + path, maxRow: sqliteMaxRow}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, fmt.Errorf("persist: sqlite database %s: directory %s: %w", path, dir, err)
	}

	wpool, err := openSQLitePool(ctx, sqliteDSN(path, true), d.desc)
	if err != nil {
		return nil, err
	}
	d.pools = append(d.pools, wpool)
	wpool.SetMaxOpenConns(1) // exactly one writer
	wpool.SetMaxIdleConns(1)
	wpool.SetConnMaxLifetime(0)

	rpool, err := openSQLitePool(ctx, sqliteDSN(path, false), d.desc)
	if err != nil {
		_ = d.close()
		return nil, err
	}
	d.pools = append(d.pools, rpool)
	rpool.SetMaxOpenConns(c.MaxOpenConns)
	rpool.SetMaxIdleConns(min(c.MaxIdleConns, c.MaxOpenConns))
	rpool.SetConnMaxLifetime(0)

	if d.writer, err = gorm.Open(&sqlite.Dialector{Conn: wpool}, gcfg); err == nil {
		d.reader, err = gorm.Open(&sqlite.Dialector{Conn: rpool}, gcfg)
	}
	if err != nil {
		_ = d.close()
		return nil, fmt.Errorf("persist: open %s: %w", d.desc, err)
	}
	return d, nil
}

// openSQLiteMemory opens a private in-memory database. It is a named
// shared-cache database ("file:worker-<random>?mode=memory&cache=shared"),
// not a plain ":memory:" connection, because database/sql closes a
// connection whose transaction's context is cancelled before it ends (the
// driver cannot reset a session), and a plain ":memory:" database dies with
// its only connection: one cancelled transaction would empty the store. A
// second pool holds one idle connection to the same database for as long as
// the store is open, so the database outlives any connection of the pool
// the store uses. That pool has exactly one connection, so the shared
// cache's table locks never meet.
func openSQLiteMemory(ctx context.Context, gcfg *gorm.Config) (*database, error) {
	d := &database{driver: SQLite, desc: "sqlite " + MemoryDSN, maxRow: sqliteMaxRow}
	var name [12]byte
	if _, err := rand.Read(name[:]); err != nil {
		return nil, fmt.Errorf("persist: open %s: naming the database: %w", d.desc, err)
	}
	uri := "file:worker-" + hex.EncodeToString(name[:]) + "?mode=memory&cache=shared"
	anchor, err := openSQLitePool(ctx, uri, d.desc)
	if err != nil {
		return nil, err
	}
	anchor.SetMaxOpenConns(1)
	anchor.SetMaxIdleConns(1)
	anchor.SetConnMaxLifetime(0)
	anchor.SetConnMaxIdleTime(0)
	d.anchor = anchor // its pinged connection stays idle in the pool
	pool, err := openSQLitePool(ctx, uri+"&"+sqliteParams(true), d.desc)
	if err != nil {
		_ = d.close()
		return nil, err
	}
	pool.SetMaxOpenConns(1)
	pool.SetMaxIdleConns(1)
	pool.SetConnMaxLifetime(0)
	pool.SetConnMaxIdleTime(0)
	d.pools = []*sql.DB{pool}
	if d.writer, err = gorm.Open(&sqlite.Dialector{Conn: pool}, gcfg); err != nil {
		_ = d.close()
		return nil, fmt.Errorf("persist: open %s: %w", d.desc, err)
	}
	d.reader = d.writer
	return d, nil
}

func openSQLitePool(ctx context.Context, dsn, desc string) (*sql.DB, error) {
	pool, err := sql.Open(sqlite.DriverName, dsn)
	if err == nil {
		// Connections switch a new file to WAL as they open. When several
		// processes do that at once, SQLite may answer SQLITE_BUSY at once
		// rather than wait (deadlock avoidance), so a busy ping is retried.
		err = retry(ctx, func() error { return pool.PingContext(ctx) })
		if err != nil {
			_ = pool.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("persist: open %s: %w", desc, err)
	}
	return pool, nil
}

// mysqlLogger routes the MySQL driver's own messages to slog at Debug,
// instead of the driver's default of stderr. They repeat what the failed
// call returns (a connection lost, a bad packet), and the caller logs that.
type mysqlLogger struct{ log *slog.Logger }

func (l mysqlLogger) Print(v ...any) { l.log.Debug("persist: mysql driver: " + fmt.Sprint(v...)) }

// handshakeConnector bounds opening a MySQL connection, greeting and
// authentication included, by the connect timeout: the driver's own timeout
// covers only the dial, so a server that accepts and never answers would hold
// the caller forever. The server's own refusals (access denied, unknown
// database, too many connections) are returned as they are; any other
// failure becomes an [ErrUnavailable] error that says no MySQL server
// answered at host:port within the timeout. It never matches
// driver.ErrBadConn, so database/sql does not try twice more.
type handshakeConnector struct {
	driver.Connector
	addr    string
	timeout time.Duration
	secret  string // the password, kept out of messages
}

func (c handshakeConnector) Connect(ctx context.Context) (driver.Conn, error) {
	hctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.Connector.Connect(hctx)
	if err == nil {
		return conn, nil
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		// The caller gave up: say so, whatever the driver made of it (a
		// dial cut short reads "i/o timeout").
		return nil, fmt.Errorf("%w (%s)", ctx.Err(), redact(err, c.secret))
	}
	var me *mysql.MySQLError
	if ctx.Err() != nil || errors.As(err, &me) {
		// The caller gave up, or the server answered (access denied, unknown
		// database, too many connections): its own error says it best.
		return nil, redact(err, c.secret)
	}
	why, cause := err.Error(), err
	switch {
	case hctx.Err() != nil:
		why, cause = "no complete MySQL handshake in time", nil
	case lostConnection(err):
		why, cause = "the connection was closed before the MySQL handshake completed", nil
	case errors.Is(err, mysql.ErrPktSync), errors.Is(err, mysql.ErrPktSyncMul), errors.Is(err, mysql.ErrMalformPkt),
		errors.Is(err, mysql.ErrOldProtocol):
		why, cause = "its answer is not a MySQL handshake ("+err.Error()+")", nil
	}
	return nil, &unavailableError{
		msg:   redact(fmt.Errorf("no MySQL server answered at %s within the %s connect timeout: %s", c.addr, c.timeout, why), c.secret).Error(),
		cause: cause,
	}
}

// unavailableError is a failure to reach the database that matches
// [ErrUnavailable] and, unlike the driver's errors it replaces, not
// driver.ErrBadConn.
type unavailableError struct {
	msg   string
	cause error // nil when only the message is worth keeping
}

func (e *unavailableError) Error() string        { return e.msg }
func (e *unavailableError) Unwrap() error        { return e.cause }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// newMySQLPool opens a connection pool for mc (not connecting yet) whose
// connections are bounded by mc.Timeout from dial to authentication.
func newMySQLPool(mc *mysql.Config) (*sql.DB, error) {
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, redact(err, mc.Passwd)
	}
	return sql.OpenDB(handshakeConnector{Connector: connector, addr: mc.Addr, timeout: mc.Timeout, secret: mc.Passwd}), nil
}

// Headroom left in a MySQL packet for everything of a row but its largest
// values, when checking that a row fits.
const mysqlRowHeadroom = 64 << 10

func openMySQL(ctx context.Context, c DBConfig, gcfg *gorm.Config, log *slog.Logger) (*database, error) {
	mc, err := c.mysqlConfig(log)
	if err != nil {
		return nil, err
	}
	d := &database{driver: MySQL, desc: "mysql " + describeMySQL(mc), mysql: mc}
	secret := mc.Passwd

	pool, err := newMySQLPool(mc)
	if err != nil {
		return nil, fmt.Errorf("persist: connect to %s: %w", d.desc, err)
	}
	pool.SetMaxOpenConns(c.MaxOpenConns)
	pool.SetMaxIdleConns(c.MaxIdleConns)
	pool.SetConnMaxLifetime(c.ConnMaxLifetime)
	d.pools = []*sql.DB{pool}
	if err := pool.PingContext(ctx); err != nil {
		_ = d.close()
		if lostConnection(err) {
			err = fmt.Errorf("%w (the server at %s did not answer within the %s read timeout, or closed the connection)", err, mc.Addr, mc.ReadTimeout)
		}
		return nil, fmt.Errorf("persist: connect to %s: %w", d.desc, classify(redact(err, secret)))
	}
	d.writer, err = gorm.Open(gormmysql.New(gormmysql.Config{Conn: pool}), gcfg)
	if err != nil {
		_ = d.close()
		return nil, fmt.Errorf("persist: open %s: %w", d.desc, classify(redact(err, secret)))
	}
	d.reader = d.writer
	// The largest statement the server accepts, which bounds a row.
	var serverPacket int64
	if err := d.writer.WithContext(ctx).Raw("SELECT @@max_allowed_packet").Scan(&serverPacket).Error; err != nil {
		_ = d.close()
		return nil, fmt.Errorf("persist: open %s: read max_allowed_packet: %w", d.desc, classify(redact(err, secret)))
	}
	if mc.MaxAllowedPacket > 0 && int64(mc.MaxAllowedPacket) < serverPacket {
		serverPacket = int64(mc.MaxAllowedPacket) // the driver refuses larger packets itself
	}
	d.maxRow = serverPacket - mysqlRowHeadroom
	if int64(mc.MaxAllowedPacket) > serverPacket {
		// The driver interpolates arguments only into a statement that
		// fits what it believes the packet limit is (its default, 64 MiB):
		// give it the server's, so that a larger one is prepared instead
		// of refused by the server. The pool is opened again with it.
		mc = mc.Clone()
		mc.MaxAllowedPacket = int(serverPacket)
		d.mysql = mc
		again, err := newMySQLPool(mc)
		if err != nil {
			_ = d.close()
			return nil, fmt.Errorf("persist: connect to %s: %w", d.desc, err)
		}
		again.SetMaxOpenConns(c.MaxOpenConns)
		again.SetMaxIdleConns(c.MaxIdleConns)
		again.SetConnMaxLifetime(c.ConnMaxLifetime)
		_ = pool.Close()
		d.pools = []*sql.DB{again}
		if d.writer, err = gorm.Open(gormmysql.New(gormmysql.Config{Conn: again}), gcfg); err != nil {
			_ = d.close()
			return nil, fmt.Errorf("persist: open %s: %w", d.desc, classify(redact(err, secret)))
		}
		d.reader = d.writer
	}
	return d, nil
}

// dbTime is how every time is stored: UTC, microsecond precision (MySQL
// DATETIME(6)), so both dialects store and compare the same values.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

package persist

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Driver names a database engine.
type Driver string

// The supported drivers.
const (
	// SQLite is the embedded default: a pure-Go SQLite (no cgo) in a local file
	// or in memory.
	SQLite Driver = "sqlite"
	// MySQL is MySQL (5.7 or later) or MariaDB (10.3 or later) through
	// go-sql-driver/mysql.
	MySQL Driver = "mysql"
)

// MemoryDSN is the SQLite DSN for a private in-memory database that lives as
// long as the [Store].
const MemoryDSN = ":memory:"

// DefaultSQLiteDSN is the SQLite file a DBConfig with an empty DSN uses,
// relative to the working directory.
const DefaultSQLiteDSN = defaultSQLiteDSN

// Defaults applied for fields left at their zero value.
const (
	defaultSQLiteDSN         = "worker.db"     // relative to the working directory
	defaultSQLiteReaders     = 4               // read connections to a SQLite file
	defaultMySQLMaxOpenConns = 20              // per pool
	defaultConnMaxLifetime   = 3 * time.Minute // MySQL only; below a typical wait_timeout
	// A MySQL handshake (dial, greeting, TLS, authentication) takes
	// milliseconds on a LAN and well under a second across regions or on a
	// loaded server: 5s tells "not there" from "slow" without holding a
	// start-up or a caller long.
	defaultMySQLConnectTimeout = 5 * time.Second
	// Our statements are batched and take milliseconds to a few seconds; 30s
	// leaves ample room for a loaded server while a frozen one fails a caller
	// in bounded time.
	defaultMySQLReadTimeout = 30 * time.Second
	// A write blocks only when the server stops reading (frozen, or its
	// network is gone): the same bound as reads.
	defaultMySQLWriteTimeout = 30 * time.Second
	// migrationReadTimeout is the least read timeout of the connection that
	// runs migrations: DDL on a large table may take minutes.
	migrationReadTimeout = 10 * time.Minute
)

// DBConfig says how to reach one database.
type DBConfig struct {
	// Driver is SQLite or MySQL. Default SQLite.
	Driver Driver
	// DSN for SQLite is a file path (default "worker.db", relative to the
	// working directory) or ":memory:"; query parameters are not accepted, the
	// store sets its own (WAL, busy timeout, foreign keys).
	// For MySQL it is a go-sql-driver DSN such as
	// "user:pass@tcp(host:3306)/db"; it must name a database. parseTime is
	// always enabled and clientFoundRows always disabled. The DSN's timeout,
	// readTimeout and writeTimeout parameters stand for ConnectTimeout,
	// ReadTimeout and WriteTimeout below. Every formatter of a DBConfig
	// (String, GoString, fmt verbs, JSON, slog) shows the DSN with its
	// password replaced by "xxxxx".
	DSN string
	// MaxOpenConns caps the connection pool. MySQL default 20. For SQLite it
	// sizes the read pool (default 4); writes always go through exactly one
	// connection, and ":memory:" uses one connection for everything.
	MaxOpenConns int
	// MaxIdleConns caps idle connections kept open. Default MaxOpenConns
	// (MySQL and SQLite alike): a connection closed when a burst ends is
	// dialled again at the next one, and the handshake (milliseconds) lands
	// in the latency of the request that waits for it.
	MaxIdleConns int
	// ConnMaxLifetime recycles MySQL connections older than this so the server's
	// wait_timeout never closes one under us. Default 3 minutes. Ignored for
	// SQLite, whose connections are never recycled.
	ConnMaxLifetime time.Duration
	// ConnectTimeout bounds opening one MySQL connection: dialling, the
	// server's greeting and authentication together. Default 5s. A server
	// that does not complete the handshake in time (down, frozen, or not a
	// MySQL server) fails with [ErrUnavailable], naming host:port. The DSN
	// may set it instead (timeout=5s); setting both to different values is
	// an error. Ignored for SQLite.
	ConnectTimeout time.Duration
	// ReadTimeout bounds each wait for the MySQL server's answer, so a frozen
	// server fails callers in bounded time instead of holding them until
	// their context ends. Default 30s. A statement that waits longer (also
	// for a row lock) fails with [ErrUnavailable] and its connection is
	// dropped. Migrations use at least 10 minutes, as DDL on a large table
	// may take that long. The DSN may set it instead (readTimeout=30s);
	// setting both to different values is an error. Ignored for SQLite.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the MySQL server. Default 30s. The
	// DSN may set it instead (writeTimeout=30s); setting both to different
	// values is an error. Ignored for SQLite.
	WriteTimeout time.Duration
}

func (c DBConfig) isZero() bool { return c == DBConfig{} }

func (c *DBConfig) setDefaults() {
	if c.Driver == "" {
		c.Driver = SQLite
	}
	switch c.Driver {
	case SQLite:
		if c.DSN == "" {
			c.DSN = defaultSQLiteDSN
		}
		if c.MaxOpenConns == 0 {
			c.MaxOpenConns = defaultSQLiteReaders
		}
		if c.MaxIdleConns == 0 {
			c.MaxIdleConns = c.MaxOpenConns
		}
	case MySQL:
		if c.MaxOpenConns == 0 {
			c.MaxOpenConns = defaultMySQLMaxOpenConns
		}
		if c.MaxIdleConns == 0 {
			c.MaxIdleConns = c.MaxOpenConns
		}
		if c.ConnMaxLifetime == 0 {
			c.ConnMaxLifetime = defaultConnMaxLifetime
		}
	}
}

func (c DBConfig) validate(field string) error {
	switch c.Driver {
	case SQLite:
		if c.DSN == "" {
			return invalidf("persist: %s.DSN is empty (want a file path or %q)", field, MemoryDSN)
		}
		if strings.ContainsAny(c.DSN, "?") || strings.HasPrefix(c.DSN, "file:") {
			return invalidf("persist: %s.DSN %q: a sqlite DSN is a plain file path or %q (URIs and query parameters are not supported)", field, c.DSN, MemoryDSN)
		}
	case MySQL:
		if c.DSN == "" {
			return invalidf("persist: %s.DSN is empty (want user:pass@tcp(host:3306)/db)", field)
		}
		mc, err := mysql.ParseDSN(c.DSN)
		if err != nil {
			// The DSN is shown without its password; the parser's messages
			// never quote the DSN.
			return invalidf("persist: %s.DSN is not a valid mysql DSN: %v (DSN %q)", field, redact(err, mysqlPassword(c.DSN)), redactMySQLDSN(c.DSN))
		}
		if mc.DBName == "" {
			return invalidf("persist: %s.DSN (%s) names no database (want user:pass@tcp(host:3306)/db)", field, describeMySQL(mc))
		}
		for _, t := range []struct {
			name, param string
			field, dsn  time.Duration
		}{
			{"ConnectTimeout", "timeout", c.ConnectTimeout, mc.Timeout},
			{"ReadTimeout", "readTimeout", c.ReadTimeout, mc.ReadTimeout},
			{"WriteTimeout", "writeTimeout", c.WriteTimeout, mc.WriteTimeout},
		} {
			if t.field > 0 && t.dsn > 0 && t.field != t.dsn {
				return invalidf("persist: %s.%s is %s but its DSN sets %s=%s (set one of them)", field, t.name, t.field, t.param, t.dsn)
			}
			if t.dsn < 0 {
				return invalidf("persist: %s.DSN sets %s=%s (want > 0)", field, t.param, t.dsn)
			}
		}
	default:
		return invalidf("persist: %s.Driver %q is not supported (want %q or %q)", field, c.Driver, SQLite, MySQL)
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"MaxOpenConns", c.MaxOpenConns}, {"MaxIdleConns", c.MaxIdleConns}} {
		if n.v < 0 {
			return invalidf("persist: %s.%s is %d (want >= 0; 0 means the default)", field, n.name, n.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ConnMaxLifetime", c.ConnMaxLifetime}, {"ConnectTimeout", c.ConnectTimeout},
		{"ReadTimeout", c.ReadTimeout}, {"WriteTimeout", c.WriteTimeout},
	} {
		if d.v < 0 {
			return invalidf("persist: %s.%s is %s (want >= 0; 0 means the default)", field, d.name, d.v)
		}
	}
	return nil
}

// mysqlConfig returns the driver configuration of a valid MySQL DBConfig:
// its DSN with the store's settings and the effective timeouts (the DSN's,
// else the field's, else the default).
func (c DBConfig) mysqlConfig(log *slog.Logger) (*mysql.Config, error) {
	mc, err := mysql.ParseDSN(c.DSN)
	if err != nil { // Validate has already checked it; keep the DSN out of the message anyway
		return nil, invalidf("persist: mysql DSN %q: %v", redactMySQLDSN(c.DSN), redact(err, mysqlPassword(c.DSN)))
	}
	mc.ParseTime = true
	// Affected-row counts are rows changed, not rows matched: the
	// conditional upsert of Save detects conflicts from them.
	mc.ClientFoundRows = false
	// Arguments are interpolated into the statement by the driver (with
	// the server's escaping rules) instead of a prepare, execute and close
	// per statement: one round trip instead of three, and no statement
	// cache on the server. A statement too large for max_allowed_packet
	// once interpolated goes the prepared way, as before (openMySQL tells
	// the driver the server's max_allowed_packet).
	mc.InterpolateParams = true
	pick := func(dsn, field, def time.Duration) time.Duration {
		switch {
		case dsn > 0:
			return dsn
		case field > 0:
			return field
		}
		return def
	}
	mc.Timeout = pick(mc.Timeout, c.ConnectTimeout, defaultMySQLConnectTimeout)
	mc.ReadTimeout = pick(mc.ReadTimeout, c.ReadTimeout, defaultMySQLReadTimeout)
	mc.WriteTimeout = pick(mc.WriteTimeout, c.WriteTimeout, defaultMySQLWriteTimeout)
	mc.Logger = mysqlLogger{log: log}
	return mc, nil
}

// Config configures a [Store].
type Config struct {
	// Provisioning is the database for current state, poison and deferred
	// messages, and the history outbox. Default: SQLite file "worker.db".
	Provisioning DBConfig
	// Analytics is the database for resource history. The zero value means the
	// Provisioning database. When it is a different database, Save writes
	// history to an outbox in the provisioning database (in the same
	// transaction as the state) and [Store.FlushHistory] moves it here.
	Analytics DBConfig
	// Logger receives migration messages (Info), slow statements and GORM's
	// own warnings (Warn) and the MySQL driver's messages (Debug). A failed
	// statement is not logged: its error is returned. Default
	// slog.Default(). Passwords and query parameters are never logged.
	Logger *slog.Logger
	// Now is the clock used for "now" (observations without ObservedAt,
	// updated_at, failed_at...). Default time.Now.
	Now func() time.Time
	// Migrations says what [Open] does about the schema. Default
	// [MigrateAuto]: apply missing migrations. [MigrateVerify] only checks
	// that the schema is current, for a runtime database user without DDL
	// privileges, with the migrations run beforehand by [Migrate].
	Migrations MigrationMode
}

// MigrationMode says what [Open] does about the schema.
type MigrationMode string

// The migration modes.
const (
	// MigrateAuto (the default) applies missing migrations at [Open]. A
	// schema already current costs reads only: no lock, no DDL, so a user
	// with only SELECT, INSERT, UPDATE and DELETE privileges can open it.
	MigrateAuto MigrationMode = "auto"
	// MigrateVerify never changes the schema: [Open] fails with
	// [ErrSchemaTooOld] when migrations are missing (run [Migrate] first)
	// and with [ErrSchemaTooNew] when a newer binary migrated it.
	MigrateVerify MigrationMode = "verify"
)

func (c *Config) setDefaults() {
	if c.Migrations == "" {
		c.Migrations = MigrateAuto
	}
	c.Provisioning.setDefaults()
	if !c.Analytics.isZero() {
		c.Analytics.setDefaults()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports the first problem with c, naming the field. Zero values are
// valid: they stand for the defaults.
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return invalidConfig{err}
	}
	return nil
}

func (c Config) validate() error {
	c.setDefaults()
	if err := c.Provisioning.validate("Provisioning"); err != nil {
		return err
	}
	if !c.Analytics.isZero() {
		if err := c.Analytics.validate("Analytics"); err != nil {
			return err
		}
	}
	switch c.Migrations {
	case MigrateAuto, MigrateVerify:
	default:
		return invalidf("persist: Migrations %q is not supported (want %q or %q; empty means %q)", c.Migrations, MigrateAuto, MigrateVerify, MigrateAuto)
	}
	return nil
}

// describeMySQL renders a parsed MySQL DSN without its password:
// "user@host:port/db", or "user@unix(/path)/db" for other networks.
func describeMySQL(mc *mysql.Config) string {
	addr := mc.Addr
	if mc.Net != "" && mc.Net != "tcp" {
		addr = mc.Net + "(" + mc.Addr + ")"
	}
	return fmt.Sprintf("%s@%s/%s", mc.User, addr, mc.DBName)
}

// ErrInvalidConfig is matched (errors.Is) by every error of Validate: the
// message names the field and the value.
var ErrInvalidConfig = errors.New("persist: invalid config")

// invalidConfig is a Validate error: its own text, matching ErrInvalidConfig
// and what it wraps.
type invalidConfig struct{ err error }

func (e invalidConfig) Error() string   { return e.err.Error() }
func (e invalidConfig) Unwrap() []error { return []error{ErrInvalidConfig, e.err} }

package persist

import (
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

// Defaults applied for fields left at their zero value.
const (
	defaultSQLiteDSN         = "worker.db"     // relative to the working directory
	defaultSQLiteReaders     = 4               // read connections to a SQLite file
	defaultMySQLMaxOpenConns = 20              // per pool
	defaultMySQLMaxIdleConns = 10              // per pool
	defaultConnMaxLifetime   = 3 * time.Minute // MySQL only; below a typical wait_timeout
	defaultMySQLDialTimeout  = 5 * time.Second // when the DSN sets no timeout
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
	// always enabled, clientFoundRows always disabled, and a 5s connect
	// timeout is added when the DSN sets none.
	DSN string
	// MaxOpenConns caps the connection pool. MySQL default 20. For SQLite it
	// sizes the read pool (default 4); writes always go through exactly one
	// connection, and ":memory:" uses one connection for everything.
	MaxOpenConns int
	// MaxIdleConns caps idle connections kept open. MySQL default 10; SQLite
	// default: the read pool size.
	MaxIdleConns int
	// ConnMaxLifetime recycles MySQL connections older than this so the server's
	// wait_timeout never closes one under us. Default 3 minutes. Ignored for
	// SQLite, whose connections are never recycled.
	ConnMaxLifetime time.Duration
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
			c.MaxIdleConns = defaultMySQLMaxIdleConns
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
			// The DSN itself is never echoed: it may hold a password.
			return invalidf("persist: %s.DSN is not a valid mysql DSN: %v", field, err)
		}
		if mc.DBName == "" {
			return invalidf("persist: %s.DSN (%s) names no database (want user:pass@tcp(host:3306)/db)", field, describeMySQL(mc))
		}
	default:
		return invalidf("persist: %s.Driver %q is not supported (want %q or %q)", field, c.Driver, SQLite, MySQL)
	}
	if c.MaxOpenConns < 0 {
		return invalidf("persist: %s.MaxOpenConns is %d (want >= 0; 0 means the default)", field, c.MaxOpenConns)
	}
	if c.MaxIdleConns < 0 {
		return invalidf("persist: %s.MaxIdleConns is %d (want >= 0; 0 means the default)", field, c.MaxIdleConns)
	}
	if c.ConnMaxLifetime < 0 {
		return invalidf("persist: %s.ConnMaxLifetime is %s (want >= 0; 0 means the default)", field, c.ConnMaxLifetime)
	}
	return nil
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
	// Logger receives connection, migration and slow-query messages. Default
	// slog.Default(). Passwords and query parameters are never logged.
	Logger *slog.Logger
	// Now is the clock used for "now" (observations without ObservedAt,
	// updated_at, failed_at...). Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
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
	c.setDefaults()
	if err := c.Provisioning.validate("Provisioning"); err != nil {
		return err
	}
	if !c.Analytics.isZero() {
		if err := c.Analytics.validate("Analytics"); err != nil {
			return err
		}
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

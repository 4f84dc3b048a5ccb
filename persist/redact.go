package persist

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
)

// redactedPassword replaces a DSN's password wherever a configuration is shown.
const redactedPassword = "xxxxx"

// mysqlCredentials returns where the password of a go-sql-driver DSN
// ([user[:password]@][net[(addr)]]/dbname[?params]) starts and ends, found as
// the driver finds it: the userinfo ends at the last '@' before the last '/',
// and the password starts after the first ':' of it. ok is false when the DSN
// has no password.
func mysqlCredentials(dsn string) (start, end int, ok bool) {
	slash := strings.LastIndexByte(dsn, '/')
	if slash < 0 {
		slash = len(dsn)
	}
	at := strings.LastIndexByte(dsn[:slash], '@')
	if at < 0 {
		return 0, 0, false
	}
	colon := strings.IndexByte(dsn[:at], ':')
	if colon < 0 {
		return 0, 0, false
	}
	return colon + 1, at, true
}

// mysqlPassword returns the password of a go-sql-driver DSN, or "".
func mysqlPassword(dsn string) string {
	if start, end, ok := mysqlCredentials(dsn); ok {
		return dsn[start:end]
	}
	return ""
}

// redactMySQLDSN returns dsn with its password, if any, replaced by "xxxxx";
// everything else (user, address, database, parameters) is kept. It works on
// DSNs the driver cannot parse too.
func redactMySQLDSN(dsn string) string {
	start, end, ok := mysqlCredentials(dsn)
	if !ok {
		return dsn
	}
	return dsn[:start] + redactedPassword + dsn[end:]
}

// redacted returns c with the password of its DSN replaced.
func (c DBConfig) redacted() DBConfig {
	if c.Driver != SQLite { // "" may be defaulted to SQLite, but a path holds no password either way
		c.DSN = redactMySQLDSN(c.DSN)
	}
	return c
}

// dbConfigFields and configFields have the fields of DBConfig and Config and
// no methods: what fmt and encoding/json print for them, once redacted.
type (
	dbConfigFields DBConfig
	configFields   Config
)

// String returns c as fmt's %+v would, with the DSN's password replaced by
// "xxxxx".
func (c DBConfig) String() string { return fmt.Sprintf("%+v", dbConfigFields(c.redacted())) }

// GoString returns c as Go syntax (%#v), with the DSN's password replaced by
// "xxxxx".
func (c DBConfig) GoString() string {
	return "persist.DBConfig" + strings.TrimPrefix(fmt.Sprintf("%#v", dbConfigFields(c.redacted())), "persist.dbConfigFields")
}

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, %q,
// ...) prints c with the DSN's password replaced by "xxxxx".
func (c DBConfig) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, c.String, c.GoString, dbConfigFields(c.redacted()))
}

// LogValue implements slog.LogValuer: c as a group of its fields, with the
// DSN's password replaced by "xxxxx".
func (c DBConfig) LogValue() slog.Value {
	r := c.redacted()
	return slog.GroupValue(
		slog.String("Driver", string(r.Driver)),
		slog.String("DSN", r.DSN),
		slog.Int("MaxOpenConns", r.MaxOpenConns),
		slog.Int("MaxIdleConns", r.MaxIdleConns),
		slog.Duration("ConnMaxLifetime", r.ConnMaxLifetime),
		slog.Duration("ConnectTimeout", r.ConnectTimeout),
		slog.Duration("ReadTimeout", r.ReadTimeout),
		slog.Duration("WriteTimeout", r.WriteTimeout),
	)
}

// MarshalJSON encodes c as encoding/json would, with the DSN's password
// replaced by "xxxxx". It is meant for showing a configuration: the result
// does not decode to a usable DSN.
func (c DBConfig) MarshalJSON() ([]byte, error) { return json.Marshal(dbConfigFields(c.redacted())) }

// String returns c as fmt's %+v would, with the DSNs' passwords replaced by
// "xxxxx".
func (c Config) String() string { return fmt.Sprintf("%+v", configFields(c)) }

// GoString returns c as Go syntax (%#v), with the DSNs' passwords replaced by
// "xxxxx".
func (c Config) GoString() string {
	return "persist.Config" + strings.TrimPrefix(fmt.Sprintf("%#v", configFields(c)), "persist.configFields")
}

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, %q,
// ...) prints c with the DSNs' passwords replaced by "xxxxx".
func (c Config) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, c.String, c.GoString, configFields(c)) // the DBConfig fields redact themselves
}

// LogValue implements slog.LogValuer: the databases and the migration mode,
// with the DSNs' passwords replaced by "xxxxx".
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("Provisioning", c.Provisioning),
		slog.Any("Analytics", c.Analytics),
		slog.String("Migrations", string(c.Migrations)),
	)
}

// MarshalJSON encodes the databases and the migration mode (the Logger and
// Now functions have no JSON form), with the DSNs' passwords replaced by
// "xxxxx". It is meant for showing a configuration.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Provisioning DBConfig
		Analytics    DBConfig
		Migrations   MigrationMode
	}{c.Provisioning, c.Analytics, c.Migrations})
}

// formatRedacted prints fields (a redacted, method-less copy) for verb, with
// %s and %q as the String form and %#v as the GoString form.
func formatRedacted(f fmt.State, verb rune, str, gostr func() string, fields any) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, gostr())
	case verb == 's':
		_, _ = io.WriteString(f, str())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(str()))
	default:
		_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), fields)
	}
}

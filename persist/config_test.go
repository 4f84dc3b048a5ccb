package persist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{name: "ZeroIsValid", cfg: Config{}},
		{name: "Memory", cfg: Config{Provisioning: DBConfig{DSN: MemoryDSN}}},
		{name: "MySQL", cfg: Config{Provisioning: DBConfig{Driver: MySQL, DSN: "u:p@tcp(db:3306)/worker"}}},
		{name: "BadDriver", cfg: Config{Provisioning: DBConfig{Driver: "postgres"}},
			want: `persist: Provisioning.Driver "postgres" is not supported (want "sqlite" or "mysql")`},
		{name: "MySQLEmptyDSN", cfg: Config{Provisioning: DBConfig{Driver: MySQL}},
			want: "Provisioning.DSN is empty"},
		{name: "MySQLBadDSN", cfg: Config{Provisioning: DBConfig{Driver: MySQL, DSN: "u:p@tcp(db:3306"}},
			want: "Provisioning.DSN is not a valid mysql DSN"},
		{name: "MySQLNoDatabase", cfg: Config{Provisioning: DBConfig{Driver: MySQL, DSN: "u:secret@tcp(db:3306)/"}},
			want: "Provisioning.DSN (u@db:3306/) names no database"},
		{name: "SQLiteQueryParams", cfg: Config{Provisioning: DBConfig{DSN: "w.db?_pragma=foo"}},
			want: "Provisioning.DSN \"w.db?_pragma=foo\""},
		{name: "NegativeMaxOpenConns", cfg: Config{Provisioning: DBConfig{MaxOpenConns: -1}},
			want: "Provisioning.MaxOpenConns is -1"},
		{name: "NegativeMaxIdleConns", cfg: Config{Provisioning: DBConfig{Driver: MySQL, DSN: "u@tcp(h)/d", MaxIdleConns: -2}},
			want: "Provisioning.MaxIdleConns is -2"},
		{name: "NegativeConnMaxLifetime", cfg: Config{Provisioning: DBConfig{Driver: MySQL, DSN: "u@tcp(h)/d", ConnMaxLifetime: -time.Second}},
			want: "Provisioning.ConnMaxLifetime is -1s"},
		{name: "AnalyticsBadDriver", cfg: Config{Analytics: DBConfig{Driver: "oracle", DSN: "x"}},
			want: `Analytics.Driver "oracle" is not supported`},
		{name: "AnalyticsMySQLEmptyDSN", cfg: Config{Analytics: DBConfig{Driver: MySQL}},
			want: "Analytics.DSN is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.ErrorIs(t, err, ErrInvalid)
			require.NotContains(t, err.Error(), "secret")
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	var c Config
	c.setDefaults()
	require.Equal(t, DBConfig{Driver: SQLite, DSN: "worker.db", MaxOpenConns: 4, MaxIdleConns: 4}, c.Provisioning)
	require.Equal(t, DBConfig{}, c.Analytics, "zero Analytics stays zero: same database")
	require.NotNil(t, c.Logger)
	require.NotNil(t, c.Now)

	m := DBConfig{Driver: MySQL, DSN: "u@tcp(h)/d"}
	m.setDefaults()
	require.Equal(t, DBConfig{Driver: MySQL, DSN: "u@tcp(h)/d", MaxOpenConns: 20, MaxIdleConns: 20, ConnMaxLifetime: 3 * time.Minute}, m)
}

func TestRedact(t *testing.T) {
	t.Parallel()
	base := errors.New("dial failed for app:hunter2@host")
	err := redact(fmt.Errorf("wrapped: %w", base), "hunter2")
	require.Equal(t, "wrapped: dial failed for app:xxxxx@host", err.Error())
	require.ErrorIs(t, err, base)
	require.Same(t, base, redact(base, "absent"))
	require.Same(t, base, redact(base, ""))
	require.NoError(t, redact(nil, "x"))
}

// TestConfigValidateMore covers the timeouts and the migration mode: zero
// values are the defaults; a bad value is named with its field.
func TestConfigValidateMore(t *testing.T) {
	t.Parallel()
	mysqlDB := func(dsn string, mod func(*DBConfig)) Config {
		c := DBConfig{Driver: MySQL, DSN: dsn}
		if mod != nil {
			mod(&c)
		}
		return Config{Provisioning: c}
	}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{name: "ZeroTimeouts", cfg: mysqlDB("u:secret@tcp(h)/d", nil)},
		{name: "Timeouts", cfg: mysqlDB("u:secret@tcp(h)/d", func(c *DBConfig) {
			c.ConnectTimeout, c.ReadTimeout, c.WriteTimeout = time.Second, time.Minute, time.Minute
		})},
		{name: "TimeoutsInDSN", cfg: mysqlDB("u:secret@tcp(h)/d?timeout=1s&readTimeout=2s&writeTimeout=3s", nil)},
		{name: "MigrateAuto", cfg: Config{Migrations: MigrateAuto}},
		{name: "MigrateVerify", cfg: Config{Migrations: MigrateVerify}},
		{name: "SQLiteIgnoresTimeouts", cfg: Config{Provisioning: DBConfig{ReadTimeout: time.Second}}},
		{name: "NegativeConnectTimeout", cfg: mysqlDB("u:secret@tcp(h)/d", func(c *DBConfig) { c.ConnectTimeout = -time.Second }),
			want: "persist: Provisioning.ConnectTimeout is -1s (want >= 0; 0 means the default)"},
		{name: "NegativeReadTimeout", cfg: mysqlDB("u:secret@tcp(h)/d", func(c *DBConfig) { c.ReadTimeout = -2 * time.Second }),
			want: "Provisioning.ReadTimeout is -2s"},
		{name: "NegativeWriteTimeout", cfg: Config{Analytics: DBConfig{DSN: "a.db", WriteTimeout: -time.Millisecond}},
			want: "Analytics.WriteTimeout is -1ms"},
		{name: "ConflictingConnectTimeout", cfg: mysqlDB("u:secret@tcp(h)/d?timeout=10s", func(c *DBConfig) { c.ConnectTimeout = 3 * time.Second }),
			want: "persist: Provisioning.ConnectTimeout is 3s but its DSN sets timeout=10s (set one of them)"},
		{name: "ConflictingReadTimeout", cfg: mysqlDB("u:secret@tcp(h)/d?readTimeout=10s", func(c *DBConfig) { c.ReadTimeout = time.Second }),
			want: "Provisioning.ReadTimeout is 1s but its DSN sets readTimeout=10s"},
		{name: "NegativeTimeoutInDSN", cfg: mysqlDB("u:secret@tcp(h)/d?writeTimeout=-1s", nil),
			want: "Provisioning.DSN sets writeTimeout=-1s (want > 0)"},
		{name: "BadDSNIsShownRedacted", cfg: mysqlDB("u:secret@tcp(db:3306", nil),
			want: `(DSN "u:xxxxx@tcp(db:3306")`},
		{name: "BadMigrations", cfg: Config{Migrations: "never"},
			want: `persist: Migrations "never" is not supported (want "auto" or "verify"; empty means "auto")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.ErrorIs(t, err, ErrInvalid)
			require.NotContains(t, err.Error(), "secret")
		})
	}
}

func TestRedactMySQLDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ dsn, want string }{
		{"app:pw@tcp(db:3306)/worker", "app:xxxxx@tcp(db:3306)/worker"},
		{"app:pw@tcp(db:3306)/worker?readTimeout=5s", "app:xxxxx@tcp(db:3306)/worker?readTimeout=5s"},
		{"app:p@ss:w/rd@tcp(db)/w", "app:xxxxx@tcp(db)/w"}, // '@', ':' and '/' in the password
		{"app:@tcp(db)/w", "app:xxxxx@tcp(db)/w"},
		{"app@tcp(db)/w", "app@tcp(db)/w"},
		{"/w", "/w"},
		{"app:pw@tcp(db:3306", "app:xxxxx@tcp(db:3306"}, // unparsable: no slash
		{"app:pw@unix(/run/mysqld.sock)/w", "app:xxxxx@unix(/run/mysqld.sock)/w"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, redactMySQLDSN(tt.dsn), tt.dsn)
		if mc, err := mysql.ParseDSN(tt.dsn); err == nil {
			require.Equal(t, mc.Passwd, mysqlPassword(tt.dsn), "found where the driver finds it: %s", tt.dsn)
		}
	}
}

// TestConfigRedacted is the canary: a unique password in both DSNs, through
// every formatter, alone and nested, never shows, while the redacted DSN
// still tells user, host and database.
func TestConfigRedacted(t *testing.T) {
	t.Parallel()
	const canary = "Canary-pw-5e1d9c"
	cfg := Config{
		Provisioning: DBConfig{Driver: MySQL, DSN: "app:" + canary + "@tcp(db.example:3306)/worker?readTimeout=10s", MaxOpenConns: 7},
		Analytics:    DBConfig{Driver: MySQL, DSN: "ana:" + canary + "@tcp(ana.example:3306)/history"},
		Logger:       slog.New(slog.DiscardHandler),
		Migrations:   MigrateVerify,
	}
	type outer struct {
		Name  string
		Store Config
		DB    DBConfig
		Ptr   *Config
	}
	nested := outer{Name: "svc", Store: cfg, DB: cfg.Provisioning, Ptr: &cfg}
	const shown = "app:xxxxx@tcp(db.example:3306)/worker?readTimeout=10s"

	var outputs []string
	add := func(s string) { outputs = append(outputs, s) }
	for _, v := range []any{cfg, &cfg, cfg.Provisioning, &cfg.Provisioning, nested, &nested} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3v"} {
			add(fmt.Sprintf(verb, v))
		}
		add(fmt.Sprint(v))
		add(fmt.Sprintln(v))
		b, err := json.Marshal(v)
		require.NoError(t, err)
		add(string(b))
		for _, h := range []func(io.Writer) slog.Handler{
			func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
			func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
		} {
			var buf bytes.Buffer
			slog.New(h(&buf)).Info("config", "cfg", v, slog.Group("g", "cfg", v))
			add(buf.String())
		}
	}
	add(cfg.String())
	add(cfg.GoString())
	add(cfg.Provisioning.String())
	add(cfg.Provisioning.GoString())
	for _, out := range outputs {
		require.Zero(t, strings.Count(out, canary), out)
	}
	for _, out := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s", cfg),
		cfg.Provisioning.String(), fmt.Sprintf("%v", nested)} {
		require.Contains(t, out, shown)
	}
	require.True(t, strings.HasPrefix(cfg.GoString(), "persist.Config{Provisioning:persist.DBConfig{Driver:\"mysql\", DSN:\""+shown+"\""), cfg.GoString())
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.Contains(t, string(b), `"Provisioning":{"Driver":"mysql","DSN":"`+shown+`","MaxOpenConns":7`)
	require.Contains(t, string(b), `"Migrations":"verify"`)

	// What persist says about a DSN never holds its password either.
	for _, c := range []Config{
		{Provisioning: DBConfig{Driver: MySQL, DSN: "app:" + canary + "@tcp(db:3306"}},                             // unparsable
		{Provisioning: DBConfig{Driver: MySQL, DSN: "app:" + canary + "@tcp(db:3306)/"}},                           // no database
		{Provisioning: DBConfig{Driver: MySQL, DSN: "app:" + canary + "@tcp(db)/w?timeout=2s", ConnectTimeout: 1}}, // conflict
		{Provisioning: DBConfig{Driver: MySQL, DSN: "app:" + canary + "@tcp(db)/w?readTimeout=x"}},                 // bad parameter
	} {
		err := c.Validate()
		require.Error(t, err)
		require.Zero(t, strings.Count(err.Error(), canary), err.Error())
		_, err = Open(context.Background(), c)
		require.Error(t, err)
		require.Zero(t, strings.Count(err.Error(), canary), err.Error())
		require.Zero(t, strings.Count(fmt.Sprintf("%+v %#v", err, err), canary))
	}
	for _, dsn := range []string{
		"app:" + canary + "@tcp(127.0.0.1:1)/x",
		"app:" + canary + "@tcp(" + fakeServer(t, silent) + ")/x?timeout=100ms", // not the default 5s: the message is what counts
	} {
		err := Migrate(context.Background(), Config{Provisioning: DBConfig{Driver: MySQL, DSN: dsn}, Logger: testLogger(t)})
		require.ErrorIs(t, err, ErrUnavailable)
		require.Zero(t, strings.Count(err.Error(), canary), err.Error())
	}
}

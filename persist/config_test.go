package persist

import (
	"errors"
	"fmt"
	"testing"
	"time"

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
	require.Equal(t, DBConfig{Driver: MySQL, DSN: "u@tcp(h)/d", MaxOpenConns: 20, MaxIdleConns: 10, ConnMaxLifetime: 3 * time.Minute}, m)
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

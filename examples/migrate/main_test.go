package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/persist"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	var out bytes.Buffer
	require.NoError(t, run(ctx, nil, env(map[string]string{"WORKER_DB_DSN": path}), &out, io.Discard))
	require.Contains(t, out.String(), `msg="persist: applied migration" db="sqlite `+path+`" table=worker_schema_migrations version=1`)
	require.Contains(t, out.String(), `msg="persist: schema up to date"`)
	require.True(t, strings.HasSuffix(out.String(), "migrate: done\n"), out.String())

	out.Reset()
	require.NoError(t, run(ctx, nil, env(map[string]string{"WORKER_DB_DSN": path}), &out, io.Discard))
	require.NotContains(t, out.String(), "applied migration")
	require.Contains(t, out.String(), "applied=0")

	s, err := persist.Open(ctx, persist.Config{Provisioning: persist.DBConfig{DSN: path}, Migrations: persist.MigrateVerify})
	require.NoError(t, err, "the schema is current")
	require.NoError(t, s.Close())
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "NoDSN", args: []string{"-driver", "mysql"}, want: "WORKER_DB_DSN is empty"},
		{name: "DSNOnCommandLine", args: []string{"app:pw@tcp(db)/w"}, want: "DSNs are read from the environment"},
		{name: "NoAnalyticsDSN", args: []string{"-analytics-driver", "sqlite"}, env: map[string]string{"WORKER_DB_DSN": ":memory:"},
			want: "WORKER_ANALYTICS_DSN is empty"},
		{name: "Unreachable", args: []string{"-driver", "mysql"}, env: map[string]string{"WORKER_DB_DSN": "app:Canary-pw-31@tcp(127.0.0.1:1)/w"},
			want: "no MySQL server answered at 127.0.0.1:1"},
		{name: "BadDriver", args: []string{"-driver", "oracle"}, want: `Provisioning.Driver "oracle" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(ctx, tt.args, env(tt.env), io.Discard, io.Discard)
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "Canary-pw-31")
		})
	}
}

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/persist"
)

// TestCtlCommands: the operations subcommands against a migrated SQLite
// store named by a config file: accounts put/list/pause/resume/delete
// (refusing a provider type the service does not have and bad settings,
// naming the field), jobs, poison list and status -json.
func TestCtlCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "worker.db")
	s, err := persist.Open(context.Background(), persist.Config{Provisioning: persist.DBConfig{Driver: persist.SQLite, DSN: dbFile}})
	require.NoError(t, err) // migrates: the commands only verify
	require.NoError(t, s.Close())
	cfg := filepath.Join(dir, "worker.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("provisioning_db:\n  driver: sqlite\n  dsn: "+dbFile+"\n"), 0o600))
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, code := runWith(append(args[:1:1], append([]string{"-config", cfg}, args[1:]...)...), nil)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		_, errOut, code := runWith(append(args[:1:1], append([]string{"-config", cfg}, args[1:]...)...), nil)
		require.NotEqual(t, 0, code, "%v", args)
		require.Contains(t, errOut, want)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line: %q", errOut)
	}

	require.Contains(t, ok("accounts", "put", write("a.json", `{"id":"acme-sim","customer":"acme","provider":"sim","settings":{"servers":2}}`)),
		"put acme-sim (revision 1)")
	fails(`provider "aws" is not a provider type of the service (known: sim, vsphere)`,
		"accounts", "put", write("b.json", `{"id":"acme-aws","customer":"acme","provider":"aws"}`))
	fails("settings.servers", "accounts", "put", write("c.json", `{"id":"x","customer":"acme","provider":"sim","settings":{"servers":-1}}`))
	fails(`settings.password`, "accounts", "put", write("d.json", `{"id":"x","customer":"acme","provider":"vsphere","settings":{"password":"hunter2"}}`))

	require.Contains(t, ok("accounts", "pause", "acme-sim", "maintenance"), "paused acme-sim")
	list := ok("accounts", "list", "-json")
	var as []struct {
		ID           string `json:"id"`
		Paused       bool   `json:"paused"`
		PausedReason string `json:"paused_reason"`
		Revision     int64  `json:"revision"`
	}
	require.NoError(t, json.Unmarshal([]byte(list), &as), list)
	require.Len(t, as, 1)
	require.True(t, as[0].Paused)
	require.Equal(t, "maintenance", as[0].PausedReason)
	require.Equal(t, int64(2), as[0].Revision)

	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(ok("status", "-json")), &st))
	require.Contains(t, ok("status"), "acme-sim")

	require.Contains(t, ok("accounts", "resume", "acme-sim"), "resumed acme-sim")
	require.Contains(t, ok("jobs"), "JOB")
	require.Contains(t, ok("poison", "list"), "REASON")
	require.Contains(t, ok("accounts", "delete", "acme-sim"), "deleted acme-sim")
	require.NotContains(t, ok("accounts", "list"), "acme-sim")
	fails("not found", "accounts", "delete", "acme-sim")
}

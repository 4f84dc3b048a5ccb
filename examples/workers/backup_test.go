package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
)

// TestBackupRestoreCommands: `workers backup` of a SQLite deployment and
// `workers restore` of the archive into MariaDB (the move from embedded to
// production), then back into a fresh SQLite file: the registry comes
// through both; a restore into a database that is not empty is refused and
// a backup never overwrites a file.
func TestBackupRestoreCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	newConfig := func(name, dbSection string) string {
		p := filepath.Join(dir, name, "worker.yaml")
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte(dbSection), 0o600))
		return p
	}
	sqliteDB := func(name string) string {
		return fmt.Sprintf("provisioning_db:\n  driver: sqlite\n  dsn: %s\n", filepath.Join(dir, name, "worker.db"))
	}
	src := newConfig("src", sqliteDB("src"))
	s, err := persist.Open(context.Background(), persist.Config{Provisioning: persist.DBConfig{Driver: persist.SQLite, DSN: filepath.Join(dir, "src", "worker.db")}})
	require.NoError(t, err) // a migrated database, as a worker leaves it
	require.NoError(t, s.Close())
	run := func(args ...string) (string, int) {
		_, errOut, code := runWith(args, nil)
		return errOut, code
	}
	acct := filepath.Join(dir, "a.json")
	require.NoError(t, os.WriteFile(acct, []byte(`{"id":"acme-sim","customer":"acme","provider":"sim"}`), 0o600))
	out, code := run("accounts", "put", acct, "-config", src)
	require.Equal(t, 0, code, out)

	// A durable queue file beside the config, and the archive written there
	// too: neither goes into the archive.
	db, err := os.ReadFile(filepath.Join(dir, "src", "worker.db"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "src", "queue.db"), db, 0o600))
	archive := filepath.Join(dir, "src", "b.tgz")
	out, code = run("backup", "-config", src, "-out", archive)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "backup:")
	require.Contains(t, out, "queue.db is a SQLite database file and is not in the backup")
	require.Equal(t, []string{"config/worker.yaml", "manifest.json", "store.jsonl.gz"}, archiveNames(t, archive))
	out, code = run("backup", "-config", src, "-out", archive)
	require.NotEqual(t, 0, code, "an existing archive is not overwritten")

	mysql := newConfig("mysql", fmt.Sprintf("allow_inline_secrets: true\nprovisioning_db:\n  driver: mysql\n  dsn: %q\n", testenv.MySQLDSN(t)))
	out, code = run("restore", "-config", mysql, "-in", archive)
	require.Equal(t, 0, code, out)
	out, code = run("restore", "-config", mysql, "-in", archive)
	require.NotEqual(t, 0, code, "the target is not empty any more: %s", out)
	require.Contains(t, out, "empty")

	list, errOut, code := runWith([]string{"accounts", "list", "-config", mysql}, nil)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, list, "acme-sim")

	archive2 := filepath.Join(dir, "c.tgz")
	out, code = run("backup", "-config", mysql, "-out", archive2)
	require.Equal(t, 0, code, out)
	back := newConfig("back", sqliteDB("back"))
	out, code = run("restore", "-config", back, "-in", archive2, "-config-dir", filepath.Join(dir, "restored-config"))
	require.Equal(t, 0, code, out)
	list, errOut, code = runWith([]string{"accounts", "list", "-config", back}, nil)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, list, "acme-sim")
	_, err = os.Stat(filepath.Join(dir, "restored-config", "worker.yaml"))
	require.NoError(t, err, "the configuration came back too")
}

func archiveNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, h.Name)
	}
	slices.Sort(names)
	return names
}

package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/service"
	"github.com/stratusworks/worker/state"
)

// TestBackupRestore: the service archive holds the configuration directory
// without logs, the SQLite files and the key file (named in a warning),
// plus the databases; it restores into MariaDB and a new directory, and a
// damaged archive is refused before anything is written.
func TestBackupRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "worker.yaml"), "process:\n  role: all\n", 0o644)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "extra"), 0o755))
	writeFile(t, filepath.Join(dir, "extra", "notes.txt"), "hello", 0o640)
	keys := keyFile(t, dir)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "logs"), 0o755))
	writeFile(t, filepath.Join(dir, "logs", "worker.log"), "a log line", 0o644)
	dbPath := filepath.Join(dir, "worker.db")

	src, err := persist.Open(ctx, persist.Config{Provisioning: persist.DBConfig{DSN: dbPath}})
	require.NoError(t, err)
	_, err = src.Save(ctx, state.Target{Account: "a", Customer: "c", Kind: "server"}, state.Snapshot{Observations: []state.Observation{
		{ID: "vm-1", Attributes: json.RawMessage(`{"x":1}`), ObservedAt: time.Now()},
	}})
	require.NoError(t, err)

	cfg := &service.Config{
		ProvisioningDB: service.DBSection{Driver: "sqlite", DSN: dbPath},
		Provisioning:   service.ProvisioningSection{EncryptionKeyFile: keys},
		Logging:        service.LoggingSection{Dir: filepath.Join(dir, "logs")},
	}
	var archive bytes.Buffer
	m, err := service.Backup(ctx, &archive, cfg, service.BackupOptions{ConfigPath: filepath.Join(dir, "worker.yaml")})
	require.NoError(t, err)
	require.NoError(t, src.Close())
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	require.ElementsMatch(t, []string{"config/worker.yaml", "config/extra/notes.txt"}, paths)
	require.Equal(t, []string{keys}, m.LeftOut)
	require.NotEmpty(t, m.Warnings)
	require.Contains(t, m.Warnings[0], keys)
	require.Equal(t, "worker.yaml", m.ConfigFile)

	// Truncated: refused, nothing written.
	bad := archive.Bytes()[:archive.Len()*2/3]
	badDir := filepath.Join(t.TempDir(), "conf")
	_, err = service.Restore(ctx, bytes.NewReader(bad), &service.Config{ProvisioningDB: service.DBSection{DSN: filepath.Join(t.TempDir(), "w.db")}},
		service.RestoreOptions{ConfigDir: badDir})
	require.ErrorIs(t, err, service.ErrBadBackup)
	require.NoDirExists(t, badDir)

	// Into MariaDB and a new directory.
	target := &service.Config{ProvisioningDB: service.DBSection{Driver: "mysql", DSN: testenv.MySQLDSN(t)}}
	newDir := filepath.Join(t.TempDir(), "conf")
	_, err = service.Restore(ctx, bytes.NewReader(archive.Bytes()), target, service.RestoreOptions{ConfigDir: newDir})
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(newDir, "extra", "notes.txt"))
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
	fi, err := os.Stat(filepath.Join(newDir, "extra", "notes.txt"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm())
	require.NoFileExists(t, filepath.Join(newDir, "km.keys"))
	require.NoFileExists(t, filepath.Join(newDir, "worker.db"))
	require.NoDirExists(t, filepath.Join(newDir, "logs"))

	dst, err := persist.Open(ctx, persist.Config{Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: target.ProvisioningDB.DSN}})
	require.NoError(t, err)
	defer dst.Close()
	r, err := dst.Resource(ctx, "a", "server", "vm-1")
	require.NoError(t, err)
	require.JSONEq(t, `{"x":1}`, string(r.Attributes))
}

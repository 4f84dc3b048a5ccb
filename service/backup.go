package service

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/stratusworks/worker/persist"
)

// The service archive: a gzip'd tar of
//
//	manifest.json           what is in it (BackupManifest)
//	config/<relative path>  the configuration directory, minus logs, key and secret files and the SQLite files
//	store.jsonl.gz          persist's export of the databases (see persist, "Backups")
const (
	manifestName   = "manifest.json"
	storeName      = "store.jsonl.gz"
	configPrefix   = "config/"
	ManifestFormat = "stratusworks-worker-service-backup"
)

// ErrBadBackup means a service archive is incomplete, altered or not one.
var ErrBadBackup = errors.New("service: not a complete, intact service backup")

// BackupOptions tunes [Backup].
type BackupOptions struct {
	// ConfigPath is the configuration file the service runs with; its
	// directory is archived. Empty: no configuration files.
	ConfigPath string
	// Progress, if set, reports the database export (persist.TerminalProgress
	// draws it on a terminal).
	Progress func(table string, rows, total int64)
	// Logger receives the store's logs. Default slog.Default().
	Logger *slog.Logger
	// Skip lists files of the configuration directory to leave out (the
	// archive itself, when it is written there).
	Skip []string
}

// BackupManifest describes a service archive.
type BackupManifest struct {
	Format     string       `json:"format"`
	Version    int          `json:"version"`
	CreatedAt  time.Time    `json:"created_at"`
	ConfigFile string       `json:"config_file,omitempty"` // relative to config/
	Files      []BackupFile `json:"files"`
	// Store is persist's export; Rows and SHA256 are its totals.
	Store     BackupFile `json:"store"`
	StoreRows int64      `json:"store_rows"`
	// Left out: files that hold secrets, which a restore needs but a backup
	// must not carry, by the path they had.
	LeftOut  []string `json:"left_out,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// BackupFile is one file of the archive.
type BackupFile struct {
	Path   string      `json:"path"`
	Size   int64       `json:"size"`
	Mode   fs.FileMode `json:"mode"`
	SHA256 string      `json:"sha256"`
}

// Backup writes the service archive of cfg to w: the configuration
// directory (without the log directory, the SQLite database files, and the
// files that hold secrets — master key files, TLS keys, password files —
// each named in a warning) and a consistent export of the databases
// (persist.Store.Export). The databases must be at this binary's schema.
func Backup(ctx context.Context, w io.Writer, cfg *Config, opts BackupOptions) (BackupManifest, error) {
	m := BackupManifest{Format: ManifestFormat, Version: 1, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)

	pc := cfg.StoreConfig()
	pc.Migrations, pc.Logger = persist.MigrateVerify, opts.Logger
	store, err := persist.Open(ctx, pc)
	if err != nil {
		return m, fmt.Errorf("service: backup: %w", err)
	}
	defer store.Close()
	// The export is spooled so that the tar header can carry its size.
	tmp, err := os.CreateTemp("", "worker-backup-*.jsonl.gz")
	if err != nil {
		return m, fmt.Errorf("service: backup: %w", err)
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	h := sha256.New()
	st, err := store.Export(ctx, io.MultiWriter(tmp, h), persist.ExportOptions{Progress: opts.Progress})
	if err != nil {
		return m, fmt.Errorf("service: backup: %w", err)
	}
	storeWarnings := st.Warnings
	m.Store = BackupFile{Path: storeName, Size: st.Bytes, Mode: 0o600, SHA256: hex.EncodeToString(h.Sum(nil))}
	m.StoreRows = st.Rows
	// The databases first: a failure there writes nothing to w.
	if opts.ConfigPath != "" {
		if err := addConfigDir(tw, cfg, opts.ConfigPath, opts.Skip, &m); err != nil {
			return m, err
		}
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return m, fmt.Errorf("service: backup: %w", err)
	}
	if err := writeEntry(tw, storeName, 0o600, st.Bytes, tmp); err != nil {
		return m, err
	}
	m.Warnings = append(m.Warnings, storeWarnings...)
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := writeEntry(tw, manifestName, 0o644, int64(len(manifest)), bytes.NewReader(manifest)); err != nil {
		return m, err
	}
	if err := tw.Close(); err != nil {
		return m, fmt.Errorf("service: backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return m, fmt.Errorf("service: backup: %w", err)
	}
	return m, nil
}

func writeEntry(tw *tar.Writer, name string, mode fs.FileMode, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(mode.Perm()), Size: size, ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("service: backup: %s: %w", name, err)
	}
	if _, err := io.Copy(tw, r); err != nil {
		return fmt.Errorf("service: backup: %s: %w", name, err)
	}
	return nil
}

// secretFiles are the files of cfg that hold secrets.
func secretFiles(cfg *Config) []string {
	var out []string
	for _, p := range []string{cfg.Provisioning.EncryptionKeyFile, cfg.KM.KeyFile, cfg.MQ.PasswordFile,
		cfg.ProvisioningDB.PasswordFile, cfg.AnalyticsDB.PasswordFile} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// sameFile reports whether a and b name one file.
func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

func addConfigDir(tw *tar.Writer, cfg *Config, configPath string, skip []string, m *BackupManifest) error {
	dir := filepath.Dir(configPath)
	m.ConfigFile = filepath.ToSlash(filepath.Base(configPath))
	var skipDirs []string
	if cfg.Logging.Dir != "" {
		skipDirs = append(skipDirs, cfg.Logging.Dir)
	}
	skipFiles := append([]string(nil), skip...) // and the SQLite files: the export has their contents
	for _, d := range []DBSection{cfg.ProvisioningDB, cfg.AnalyticsDB} {
		if (d.Driver == "" || d.Driver == "sqlite") && d.DSN != persist.MemoryDSN {
			dsn := d.DSN
			if dsn == "" {
				dsn = persist.DefaultSQLiteDSN
			}
			skipFiles = append(skipFiles, dsn, dsn+"-wal", dsn+"-shm", dsn+"-journal")
		}
	}
	secrets := secretFiles(cfg)
	for _, s := range secrets {
		m.LeftOut = append(m.LeftOut, s)
		m.Warnings = append(m.Warnings, fmt.Sprintf("%s holds secrets and is not in the backup: keep it separately, a restore needs it", s))
	}
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("service: backup: config directory: %w", err)
		}
		if e.IsDir() {
			for _, s := range skipDirs {
				if sameFile(p, s) {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		for _, s := range skipFiles {
			if sameFile(p, s) {
				return nil
			}
		}
		for _, s := range secrets {
			if sameFile(p, s) {
				return nil
			}
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("service: backup: %w", err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("service: backup: %w", err)
		}
		if isSQLiteFile(p, data) {
			// Another SQLite database (the durable queue of mq.url
			// "sqlite", say) or its journal: a copy of a live file is not
			// a consistent one, and the store's export carries the state.
			m.Warnings = append(m.Warnings, fmt.Sprintf("%s is a SQLite database file and is not in the backup", rel))
			return nil
		}
		sum := sha256.Sum256(data)
		name := configPrefix + filepath.ToSlash(rel)
		m.Files = append(m.Files, BackupFile{Path: name, Size: int64(len(data)), Mode: info.Mode().Perm(), SHA256: hex.EncodeToString(sum[:])})
		return writeEntry(tw, name, info.Mode(), int64(len(data)), bytes.NewReader(data))
	})
}

// RestoreOptions tunes [Restore].
type RestoreOptions struct {
	// ConfigDir receives the archived configuration files; it must not
	// hold any of them already. Empty: the files are not restored.
	ConfigDir string
	// Progress, if set, reports the database import.
	Progress func(table string, rows, total int64)
	// Logger receives the store's logs (migrations, the import). Default
	// slog.Default().
	Logger *slog.Logger
}

// Restore reads a service archive written by [Backup]: it checks every
// file against the manifest (refusing a truncated or altered archive with
// [ErrBadBackup] before writing anything), imports the databases into the
// ones cfg names, which must be new (persist.Import: SQLite or MySQL,
// whatever the source was), and writes the configuration files into
// opts.ConfigDir. The files the manifest lists as left out (key and
// password files) must be put back by hand.
func Restore(ctx context.Context, r io.Reader, cfg *Config, opts RestoreOptions) (BackupManifest, error) {
	var m BackupManifest
	zr, err := gzip.NewReader(r)
	if err != nil {
		return m, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	tmp, err := os.CreateTemp("", "worker-restore-*.jsonl.gz")
	if err != nil {
		return m, fmt.Errorf("service: restore: %w", err)
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	storeHash, storeSize := sha256.New(), int64(0)
	var haveManifest bool
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("%w: %v", ErrBadBackup, err)
		}
		switch {
		case hdr.Name == storeName:
			if storeSize, err = io.Copy(io.MultiWriter(tmp, storeHash), tr); err != nil {
				return m, fmt.Errorf("%w: %v", ErrBadBackup, err)
			}
		case hdr.Name == manifestName:
			b, err := io.ReadAll(tr)
			if err != nil {
				return m, fmt.Errorf("%w: %v", ErrBadBackup, err)
			}
			if err := json.Unmarshal(b, &m); err != nil || m.Format != ManifestFormat {
				return m, fmt.Errorf("%w: unreadable manifest", ErrBadBackup)
			}
			haveManifest = true
		case strings.HasPrefix(hdr.Name, configPrefix):
			b, err := io.ReadAll(tr)
			if err != nil {
				return m, fmt.Errorf("%w: %v", ErrBadBackup, err)
			}
			files[hdr.Name] = b
		}
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return m, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	if !haveManifest {
		return m, fmt.Errorf("%w: no manifest", ErrBadBackup)
	}
	if m.Version != 1 {
		return m, fmt.Errorf("%w: manifest version %d, this binary reads 1", ErrBadBackup, m.Version)
	}
	if storeSize != m.Store.Size || hex.EncodeToString(storeHash.Sum(nil)) != m.Store.SHA256 {
		return m, fmt.Errorf("%w: %s does not match the manifest", ErrBadBackup, storeName)
	}
	if len(files) != len(m.Files) {
		return m, fmt.Errorf("%w: %d configuration files, the manifest lists %d", ErrBadBackup, len(files), len(m.Files))
	}
	for _, f := range m.Files {
		b, ok := files[f.Path]
		sum := sha256.Sum256(b)
		if !ok || hex.EncodeToString(sum[:]) != f.SHA256 || !strings.HasPrefix(path.Clean(f.Path), configPrefix) {
			return m, fmt.Errorf("%w: %s does not match the manifest", ErrBadBackup, f.Path)
		}
	}
	if opts.ConfigDir != "" {
		for _, f := range m.Files {
			dst := filepath.Join(opts.ConfigDir, filepath.FromSlash(strings.TrimPrefix(path.Clean(f.Path), configPrefix)))
			if _, err := os.Lstat(dst); err == nil {
				return m, fmt.Errorf("service: restore: %s exists; restore into a new directory", dst)
			}
		}
	}

	pc := cfg.StoreConfig()
	pc.Migrations, pc.Logger = "", opts.Logger // the new databases are migrated
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return m, fmt.Errorf("service: restore: %w", err)
	}
	if _, err := persist.Import(ctx, tmp, pc, persist.ImportOptions{Progress: opts.Progress}); err != nil {
		return m, fmt.Errorf("service: restore: %w", err)
	}

	if opts.ConfigDir != "" {
		for _, f := range m.Files {
			dst := filepath.Join(opts.ConfigDir, filepath.FromSlash(strings.TrimPrefix(path.Clean(f.Path), configPrefix)))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return m, fmt.Errorf("service: restore: %w", err)
			}
			if err := os.WriteFile(dst, files[f.Path], f.Mode.Perm()); err != nil {
				return m, fmt.Errorf("service: restore: %w", err)
			}
		}
	}
	return m, nil
}

// sqliteMagic starts every SQLite 3 database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// isSQLiteFile reports a SQLite database file, or the write-ahead log,
// shared-memory or rollback journal of one.
func isSQLiteFile(p string, data []byte) bool {
	if bytes.HasPrefix(data, sqliteMagic) {
		return true
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if base, ok := strings.CutSuffix(p, suffix); ok {
			if b, err := os.ReadFile(base); err == nil && bytes.HasPrefix(b, sqliteMagic) {
				return true
			}
		}
	}
	return false
}

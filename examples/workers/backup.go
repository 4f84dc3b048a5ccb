package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/service"
)

// The backup commands: one consistent archive of the configuration
// directory and the databases (service.Backup), and its restore into the
// databases of another configuration, of either engine (service.Restore).
var backupCommands = []command{
	{"backup", "-out FILE: archive the configuration directory and the databases (consistent while the workers run)", runBackup},
	{"restore", "-in FILE [-config-dir DIR]: load an archive into the (empty) databases of -config", runRestore},
}

func runBackup(ctx context.Context, e *env, args []string) error {
	var out *string
	path, rest, err := ctlFlags("backup", e, args, func(fs *flagSet) {
		out = fs.String("out", "", "the archive to write (- for standard output); it must not exist")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 || *out == "" {
		return fmt.Errorf("%w: backup -out FILE", errUsage)
	}
	cfg, err := loadToolConfig(path, e)
	if err != nil {
		return err
	}
	var w io.Writer = e.stdout
	var f *os.File
	if *out != "-" {
		if f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return err
		}
		w = f
	}
	opts := service.BackupOptions{ConfigPath: path, Progress: progress(e), Logger: toolLogger(e)}
	if f != nil {
		opts.Skip = []string{*out} // the archive, if it is written inside the configuration directory
	}
	m, err := service.Backup(ctx, w, cfg, opts)
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(*out) // never leave a partial archive behind
		}
	}
	if err != nil {
		return err
	}
	for _, warn := range m.Warnings {
		fmt.Fprintln(e.stderr, "warning:", warn)
	}
	fmt.Fprintf(e.stderr, "backup: %d files, %d rows, store sha256 %s\n", len(m.Files), m.StoreRows, m.Store.SHA256)
	return nil
}

func runRestore(ctx context.Context, e *env, args []string) error {
	var in, configDir *string
	path, rest, err := ctlFlags("restore", e, args, func(fs *flagSet) {
		in = fs.String("in", "", "the archive to read (- for standard input)")
		configDir = fs.String("config-dir", "", "where to write the archived configuration files (default: not written)")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 || *in == "" {
		return fmt.Errorf("%w: restore -in FILE [-config-dir DIR]", errUsage)
	}
	cfg, err := loadToolConfig(path, e)
	if err != nil {
		return err
	}
	r := io.Reader(os.Stdin)
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	m, err := service.Restore(ctx, r, cfg, service.RestoreOptions{ConfigDir: *configDir, Progress: progress(e), Logger: toolLogger(e)})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "restore: %d rows into the databases of %s", m.StoreRows, path)
	if *configDir != "" {
		fmt.Fprintf(e.stderr, ", %d configuration files into %s", len(m.Files), *configDir)
	}
	fmt.Fprintln(e.stderr)
	for _, f := range m.LeftOut {
		fmt.Fprintln(e.stderr, "not in the archive (copy it yourself):", f)
	}
	return nil
}

// progress draws the export or import on stderr when it is a terminal.
func progress(e *env) func(table string, rows, total int64) {
	f, ok := e.stderr.(*os.File)
	if !ok {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return persist.TerminalProgress(f)
}

// toolLogger logs warnings and errors to stderr.
func toolLogger(e *env) *slog.Logger {
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

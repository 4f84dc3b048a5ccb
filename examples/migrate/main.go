// Command migrate applies the persist schema migrations to a worker's
// databases and exits. It is the deployment step that lets the worker itself
// run as a database user without CREATE, ALTER or DROP privileges, with
// persist.Config.Migrations set to persist.MigrateVerify.
//
// The DSNs come from environment variables, not the command line, so that a
// password does not show in ps:
//
//	WORKER_DB_DSN='admin:secret@tcp(db:3306)/worker' go run ./examples/migrate -driver mysql
//
// With a separate analytics database, also set -analytics-driver and its DSN
// (WORKER_ANALYTICS_DSN). The command prints each migration it applies and
// the version each database is at, and exits 0; on failure it prints the
// error on one line to stderr and exits 1. Running it again on a current
// schema changes nothing, and several copies may run at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stratusworks/worker/persist"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", strings.ReplaceAll(err.Error(), "\n", "; "))
		stop()
		os.Exit(1)
	}
}

// run parses args, reads the DSNs with getenv, migrates, and reports to
// stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	driver := fs.String("driver", string(persist.SQLite), "driver of the provisioning database: sqlite or mysql")
	dsnEnv := fs.String("dsn-env", "WORKER_DB_DSN", "environment variable that holds the provisioning database's DSN (for sqlite, a file path; empty: worker.db)")
	anaDriver := fs.String("analytics-driver", "", "driver of a separate analytics database; empty: history is in the provisioning database")
	anaDSNEnv := fs.String("analytics-dsn-env", "WORKER_ANALYTICS_DSN", "environment variable that holds the analytics database's DSN")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: DSNs are read from the environment (-dsn-env), never from the command line", fs.Args())
	}

	cfg := persist.Config{
		Provisioning: persist.DBConfig{Driver: persist.Driver(*driver), DSN: getenv(*dsnEnv)},
		Logger: slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
					return slog.Attr{} // one line per step, nothing else
				}
				return a
			},
		})),
	}
	if cfg.Provisioning.Driver == persist.MySQL && cfg.Provisioning.DSN == "" {
		return fmt.Errorf("%s is empty: set it to the provisioning database's DSN, such as user:password@tcp(host:3306)/worker", *dsnEnv)
	}
	if *anaDriver != "" {
		cfg.Analytics = persist.DBConfig{Driver: persist.Driver(*anaDriver), DSN: getenv(*anaDSNEnv)}
		if cfg.Analytics.DSN == "" {
			return fmt.Errorf("-analytics-driver is set but %s is empty", *anaDSNEnv)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := persist.Migrate(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrate: done")
	return nil
}

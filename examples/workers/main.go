// Command workers is the classic service's worker as one binary with
// subcommands, configured by one YAML file (package service):
//
//	workers publisher  -config /etc/worker/worker.yaml   # schedules every account's polls
//	workers subscriber -config /etc/worker/worker.yaml   # handles the actions (polls, launches, accounts)
//	workers pinger     -config /etc/worker/worker.yaml   # heartbeats and probes of the clouds (run several)
//	workers all        -config /etc/worker/worker.yaml   # publisher and subscriber in one process
//	workers check  -config /etc/worker/worker.yaml       # print the effective configuration, secrets redacted
//	workers import -dir /services/worker/classes         # convert the classic files to YAML
//
// The configuration file is -config, else $WORKER_CONFIG, else worker.yaml;
// WORKER_<SECTION>_<KEY> variables override its keys. A bad configuration
// exits 1 with the error on one line on stderr, naming the file, the key and
// the value; a bad command line exits 2.
//
// # Processes
//
// Each role is its own OS process from the same file; the processes share
// the transport (mq.url: RabbitMQ, or sqlite:<path> on one machine — the
// in-memory transport cannot cross processes) and the provisioning
// database. A process subcommand builds the worker ([service.Config.Worker])
// in its role, registers the standard server pollers
// (cloud.ServerPoller, cloud.ServerStatusPoller on the worker's cloud) with
// schedule.intervals server and server-status (defaults 1m and 20s), puts
// the accounts of the accounts list into the registry when missing
// ([service.Bootstrap]) and runs until a signal:
//
//   - SIGTERM or SIGINT: stop taking actions, let the handlers in flight
//     finish within process.shutdown_timeout (default 30s), mark the
//     heartbeat stopped, exit 0 (1 if the shutdown failed or timed out).
//   - A second SIGTERM or SIGINT: exit 1 at once.
//   - SIGHUP: reopen the log files (the process log and the customer logs)
//     at their paths, for logrotate's postrotate.
//
// Under systemd (Type=notify, $NOTIFY_SOCKET set) a process sends READY=1
// once it consumes, WATCHDOG=1 every half WatchdogSec ($WATCHDOG_USEC) and
// STOPPING=1 when it shuts down, through github.com/coreos/go-systemd's
// daemon package; without $NOTIFY_SOCKET it sends nothing. A process opens
// no listening socket: it only connects to the broker and the databases.
//
// # Logs
//
// With logging.dir set, the process log is logging.dir/logging.process_log
// (give each process its own file with WORKER_LOGGING_PROCESS_LOG, as the
// units and the init script do) and, with logging.customer_logs: true,
// each customer's records go to logging.dir/<customer>/worker.log too; all
// are rotated by size and retained per logging.max_size_mb, max_backups,
// max_age_days and compress.
//
// systemd/ holds the units (stratus-worker-publisher.service,
// stratus-worker-subscriber.service, stratus-worker-pinger@.service) and
// init.d/stratus-worker a classic start|stop|status|restart script with
// pid files; README.md beside this file is the operator's walkthrough.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/service"
)

// command is one subcommand: its name, a line of help, and what it runs.
type command struct {
	name, summary string
	run           func(ctx context.Context, e *env, args []string) error
}

// env is what a command may use of the process.
type env struct {
	stdout, stderr io.Writer
	environ        []string
	// sighup delivers SIGHUP to the process commands (reopen the logs);
	// nil in tests that run commands in-process.
	sighup <-chan os.Signal
	// notifier is the service manager's; nil: systemd's ($NOTIFY_SOCKET).
	notifier notifier
}

func (e *env) getenv(name string) string {
	for _, kv := range e.environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// commands is the table of subcommands.
var commands = []command{
	{"check", "load the configuration and print it with defaults filled in and secrets redacted", runCheck},
	{"import", "convert the classic .cfg/.properties files into the YAML configuration", runImport},
	processCommand(worker.RolePublisher, "run the publisher: schedules the polls of every account and publishes them"),
	processCommand(worker.RoleSubscriber, "run the subscriber: handles the actions (polls, launches, account changes)"),
	processCommand(worker.RolePinger, "run a pinger: heartbeats and probes of the accounts' clouds"),
	processCommand(worker.RoleAll, "run publisher and subscriber in one process"),
	ctlCommands[0], ctlCommands[1], ctlCommands[2], ctlCommands[3], // ctl.go: status, accounts, poison, jobs
	backupCommands[0], backupCommands[1], // backup.go
}

// errUsage marks command-line errors (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	term := make(chan os.Signal, 2)
	signal.Notify(term, termSignals...)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go signals{term: term, cancel: cancel, exit: os.Exit, stderr: os.Stderr}.watch(done)

	err := run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ(), sighup: hup})
	close(done)
	cancel()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on one line and returns the exit status.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "workers:", oneLine(err))
		return 2
	}
	fmt.Fprintln(stderr, "workers:", oneLine(err))
	return 1
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: workers <command> [flags]")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}

// run dispatches to the subcommand named by args[0].
func run(ctx context.Context, args []string, e *env) error {
	if len(args) == 0 {
		usage(e.stderr)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout)
		return nil
	}
	usage(e.stderr)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func flags(name string, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet("workers "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	return nil
}

// configPath is -config, else $WORKER_CONFIG, else worker.yaml.
func configFlag(fs *flag.FlagSet, e *env) *string {
	def := e.getenv(service.EnvConfig)
	if def == "" {
		def = "worker.yaml"
	}
	return fs.String("config", def, "the configuration file (default $"+service.EnvConfig+", else worker.yaml)")
}

// loadConfig loads the file with the process's WORKER_* overrides: what
// every process subcommand starts with.
// loadToolConfig is loadConfig for the short-lived operator commands
// (status, accounts, poison, jobs, backup, restore): they log warnings
// only, to stderr, never into the service's process log.
func loadToolConfig(path string, e *env) (*service.Config, error) {
	cfg, err := loadConfig(path, e)
	if err != nil {
		return nil, err
	}
	cfg.Logging.ProcessLog, cfg.Logging.Level = "stderr", "warn"
	return cfg, nil
}

func loadConfig(path string, e *env) (*service.Config, error) {
	return service.Load(path, e.environ)
}

func runCheck(_ context.Context, e *env, args []string) error {
	fs := flags("check", e)
	path := configFlag(fs, e)
	open := fs.Bool("open", false, "also open what the configuration names (key files, TLS files, log files) as the worker would")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, e)
	if err != nil {
		return err
	}
	if *open {
		_, closer, err := cfg.Worker()
		if err != nil {
			return err
		}
		if err := closer.Close(); err != nil {
			return err
		}
	}
	return service.Check(e.stdout, cfg)
}

func runImport(_ context.Context, e *env, args []string) error {
	fs := flags("import", e)
	dir := fs.String("dir", "", "the directory holding the classic files ("+strings.Join(service.LegacyFiles, ", ")+")")
	secrets := fs.String("secrets-dir", service.DefaultSecretsDir, "where the converted configuration references its secret files")
	write := fs.Bool("write-secrets", false, "write the classic files' secrets into -secrets-dir (mode 0600; never overwrites)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: -dir is required", errUsage)
	}
	im, err := service.ImportLegacyDir(*dir, service.ImportOptions{SecretsDir: *secrets, WriteSecrets: *write})
	if err != nil {
		return err
	}
	y, err := im.YAML()
	if err != nil {
		return err
	}
	if _, err := e.stdout.Write(y); err != nil {
		return err
	}
	for _, u := range im.Unmapped {
		fmt.Fprintf(e.stderr, "unmapped: %s\n", u)
	}
	for _, s := range im.Secrets {
		verb := "put the value of " + s.File + " " + s.Key + " into"
		if s.Written {
			verb = "wrote " + s.File + " " + s.Key + " to"
		}
		fmt.Fprintf(e.stderr, "secret: %s: %s %s (mode 0600)\n", s.Target, verb, s.Path)
	}
	fmt.Fprintf(e.stderr, "import: %d keys unmapped, %d secrets referenced\n", len(im.Unmapped), len(im.Secrets))
	return nil
}

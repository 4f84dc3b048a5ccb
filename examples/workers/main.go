// Command workers is the classic service's worker as one binary with
// subcommands, configured by one YAML file (package service):
//
//	workers check  -config /etc/worker/worker.yaml   # print the effective configuration, secrets redacted
//	workers import -dir /services/worker/classes     # convert the classic files to YAML
//
// The configuration file is -config, else $WORKER_CONFIG, else worker.yaml;
// WORKER_<SECTION>_<KEY> variables override its keys. A bad configuration
// exits 1 with the error on one line on stderr, naming the file, the key and
// the value; a bad command line exits 2.
//
// The process subcommands (publisher, subscriber, pinger, all) plug into the
// same table of commands.
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
	ctlCommands[0], ctlCommands[1], ctlCommands[2], ctlCommands[3], // ctl.go: status, accounts, poison, jobs
}

// errUsage marks command-line errors (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ()})
	stop()
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/service/status"
)

// The operator's commands: they read (and, for accounts and replay, write)
// the provisioning database named by the configuration, as short-lived
// processes beside the workers.
var ctlCommands = []command{
	{"status", "print instances, failing polls, accounts needing a look, jobs and poison counts (-json for scripts)", runStatus},
	{"accounts", "list | put FILE | pause ID REASON | resume ID | delete ID [-purge]: the account registry", runAccounts},
	{"poison", "list | show ID | replay ID: the poison queue", runPoison},
	{"jobs", "list the jobs in flight, or with -failed those failed in the last day", runJobs},
}

// openStore opens the provisioning database of the configuration, checking
// its schema without changing it.
func openStore(ctx context.Context, path string, e *env) (*persist.Store, error) {
	cfg, err := loadToolConfig(path, e)
	if err != nil {
		return nil, err
	}
	sc := cfg.StoreConfig()
	sc.Migrations = persist.MigrateVerify
	sc.Logger = toolLogger(e)
	return persist.Open(ctx, sc)
}

// ctlFlags parses the flags of a command with positional arguments.
func ctlFlags(name string, e *env, args []string, extra func(*flagSet)) (path string, rest []string, err error) {
	fs := flags(name, e)
	p := configFlag(fs, e)
	if extra != nil {
		extra(fs)
	}
	// Flags may come before or after the positional arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", nil, usageErr(err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return *p, pos, nil
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runStatus(ctx context.Context, e *env, args []string) error {
	var asJSON *bool
	path, rest, err := ctlFlags("status", e, args, func(fs *flagSet) { asJSON = fs.Bool("json", false, "print JSON") })
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, rest)
	}
	store, err := openStore(ctx, path, e)
	if err != nil {
		return err
	}
	defer store.Close()
	st, err := status.Gather(ctx, store, status.Options{})
	if err != nil {
		return err
	}
	if *asJSON {
		return status.RenderJSON(e.stdout, st)
	}
	return status.RenderTable(e.stdout, st)
}

func runAccounts(ctx context.Context, e *env, args []string) error {
	var asJSON, purge *bool
	path, rest, err := ctlFlags("accounts", e, args, func(fs *flagSet) {
		asJSON = fs.Bool("json", false, "print JSON")
		purge = fs.Bool("purge", false, "delete: also delete the account's stored state")
	})
	if err != nil {
		return err
	}
	need := func(n int, form string) error {
		if len(rest) != n {
			return fmt.Errorf("%w: want accounts %s", errUsage, form)
		}
		return nil
	}
	if len(rest) == 0 {
		return fmt.Errorf("%w: want accounts list|put|pause|resume|delete", errUsage)
	}
	store, err := openStore(ctx, path, e)
	if err != nil {
		return err
	}
	defer store.Close()
	reg, err := accounts.New(accounts.Config{Store: store, Check: checkBuiltinType})
	if err != nil {
		return err
	}
	switch rest[0] {
	case "list":
		if err := need(1, "list"); err != nil {
			return err
		}
		var all []accounts.Account
		for o := (accounts.ListOptions{}); ; {
			page, err := reg.List(ctx, o)
			if err != nil {
				return err
			}
			all = append(all, page.Accounts...)
			if page.Next == "" {
				break
			}
			o.After = page.Next
		}
		if *asJSON {
			return printJSON(e, all)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tCUSTOMER\tPROVIDER\tCREDENTIAL\tPAUSED\tREVISION\tUPDATED")
		for _, a := range all {
			paused := "-"
			if a.Paused {
				paused = "paused: " + a.PausedReason
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", a.ID, a.Customer, or(a.Provider), or(a.Credential), paused,
				a.Revision, a.UpdatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "put":
		if err := need(2, "put FILE (one account as JSON)"); err != nil {
			return err
		}
		b, err := os.ReadFile(rest[1])
		if err != nil {
			return err
		}
		var a accounts.Account
		if err := json.Unmarshal(b, &a); err != nil {
			return fmt.Errorf("%s: %w", rest[1], err)
		}
		got, err := reg.Put(ctx, a)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "put %s (revision %d)\n", got.ID, got.Revision)
		return nil
	case "pause":
		if err := need(3, "pause ID REASON"); err != nil {
			return err
		}
		if err := reg.Pause(ctx, rest[1], rest[2]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "paused %s\n", rest[1])
		return nil
	case "resume":
		if err := need(2, "resume ID"); err != nil {
			return err
		}
		if err := reg.Resume(ctx, rest[1]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "resumed %s\n", rest[1])
		return nil
	case "delete":
		if err := need(2, "delete ID [-purge]"); err != nil {
			return err
		}
		if err := reg.Delete(ctx, rest[1], accounts.DeleteOptions{PurgeState: *purge}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deleted %s\n", rest[1])
		return nil
	}
	return fmt.Errorf("%w: unknown accounts command %q", errUsage, rest[0])
}

func or(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runPoison(ctx context.Context, e *env, args []string) error {
	var asJSON, all *bool
	path, rest, err := ctlFlags("poison", e, args, func(fs *flagSet) {
		asJSON = fs.Bool("json", false, "print JSON")
		all = fs.Bool("all", false, "list: also the messages already replayed")
	})
	if err != nil {
		return err
	}
	if len(rest) == 0 || (rest[0] == "list") != (len(rest) == 1) {
		return fmt.Errorf("%w: want poison list|show ID|replay ID", errUsage)
	}
	var id int64
	if rest[0] != "list" {
		if id, err = strconv.ParseInt(rest[1], 10, 64); err != nil || len(rest) != 2 {
			return fmt.Errorf("%w: want poison %s ID (a number)", errUsage, rest[0])
		}
	}
	switch rest[0] {
	case "list", "show":
		store, err := openStore(ctx, path, e)
		if err != nil {
			return err
		}
		defer store.Close()
		if rest[0] == "show" {
			p, err := store.GetPoison(ctx, id)
			if err != nil {
				return err
			}
			return printJSON(e, poisonJSON(p, true))
		}
		ps, err := store.ListPoison(ctx, persist.PoisonFilter{Limit: 1000, IncludeReplayed: *all})
		if err != nil {
			return err
		}
		if *asJSON {
			out := make([]map[string]any, len(ps))
			for i, p := range ps {
				out[i] = poisonJSON(p, false)
			}
			return printJSON(e, out)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tFAILED\tACTION\tATTEMPTS\tREPLAYED\tREASON")
		for _, p := range ps {
			replayed := "-"
			if p.ReplayedAt != nil {
				replayed = p.ReplayedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", p.ID, p.FailedAt.Format(time.RFC3339), or(p.ActionType), p.Attempts,
				replayed, cutLine(p.Reason, 100))
		}
		return tw.Flush()
	case "replay":
		cfg, err := loadToolConfig(path, e)
		if err != nil {
			return err
		}
		wc, closer, err := cfg.Worker()
		if err != nil {
			return err
		}
		defer closer.Close()
		// A publisher-only worker that is never Run: it schedules, handles
		// and beats nothing; Replay needs only its store and publisher.
		wc.Role = worker.RolePublisher
		wc.Store.Migrations = persist.MigrateVerify
		w, err := worker.New(ctx, wc)
		if err != nil {
			return err
		}
		defer w.Close()
		if err := w.Replay(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "replayed %d\n", id)
		return nil
	}
	return fmt.Errorf("%w: unknown poison command %q", errUsage, rest[0])
}

func poisonJSON(p persist.Parked, payload bool) map[string]any {
	m := map[string]any{"id": p.ID, "message_uuid": p.MessageUUID, "topic": p.Topic, "action_type": p.ActionType,
		"reason": p.Reason, "attempts": p.Attempts, "failed_at": p.FailedAt, "replayed_at": p.ReplayedAt,
		"replayable": p.Replayable() == nil}
	if payload {
		m["metadata"] = p.Metadata
		if json.Valid(p.Payload) {
			m["payload"] = json.RawMessage(p.Payload)
		} else {
			m["payload"] = p.Payload
		}
	}
	return m
}

func cutLine(s string, n int) string {
	r := []rune(s)
	for i, c := range r {
		if c == '\n' {
			r[i] = ' '
		}
	}
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return string(r)
}

func runJobs(ctx context.Context, e *env, args []string) error {
	var asJSON, failed *bool
	path, rest, err := ctlFlags("jobs", e, args, func(fs *flagSet) {
		asJSON = fs.Bool("json", false, "print JSON")
		failed = fs.Bool("failed", false, "the jobs failed or timed out in the last day, newest first")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, rest)
	}
	store, err := openStore(ctx, path, e)
	if err != nil {
		return err
	}
	defer store.Close()
	var jobs []persist.Job
	if *failed {
		jobs, err = store.FinishedJobs(ctx, time.Now().Add(-24*time.Hour), 1000)
	} else {
		for after := ""; ; {
			page, err := store.RunningJobs(ctx, after, 500)
			if err != nil {
				return err
			}
			jobs = append(jobs, page...)
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if jobs == nil {
			jobs = []persist.Job{}
		}
		return printJSON(e, jobs)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tACCOUNT\tKIND\tSTATE\tOPERATION\tCREATED\tUPDATED\tERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Account, j.Kind, j.State, or(j.OperationID),
			j.CreatedAt.Format(time.RFC3339), j.UpdatedAt.Format(time.RFC3339), or(cutLine(j.Error, 80)))
	}
	return tw.Flush()
}

type flagSet = flag.FlagSet

func usageErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}

// checkBuiltinType refuses an account whose provider type the service's
// processes do not have, or whose settings that type refuses, as a
// worker's own registry does.
func checkBuiltinType(_ context.Context, a accounts.Account) error {
	if a.Provider == "" {
		return nil
	}
	types := worker.BuiltinProviderTypes()
	t, ok := types[a.Provider]
	if !ok {
		return &accounts.FieldError{Field: "provider", Value: a.Provider,
			Problem: fmt.Sprintf("is not a provider type of the service (known: %s)", strings.Join(slices.Sorted(maps.Keys(types)), ", "))}
	}
	if t.CheckSettings != nil {
		return t.CheckSettings(a.Settings)
	}
	return nil
}

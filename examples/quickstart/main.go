// Command quickstart runs a complete worker on embedded defaults: the in-memory
// transport and a SQLite file. It publishes actions, handles them, saves cloud
// state (and shows that re-saving unchanged state writes nothing), retries a
// flaky handler, poisons an action that cannot succeed, replays it once it can,
// and prints a summary. With -serve it keeps running until Ctrl-C.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
)

func main() {
	dbPath := flag.String("db", filepath.Join(os.TempDir(), "stratusworks-quickstart.db"), "SQLite file for state, history and poison actions")
	serve := flag.Bool("serve", false, "keep running after the scenario until Ctrl-C")
	verbose := flag.Bool("v", false, "log at info level (default: warnings only)")
	flag.Parse()

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *dbPath, *serve, logger); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// serverList is the payload of a "servers.observed" action: what a poller saw.
type serverList struct {
	Servers []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Size  string `json:"size"`
	} `json:"servers"`
}

func run(ctx context.Context, out io.Writer, dbPath string, serve bool, logger *slog.Logger) error {
	// A fresh file each run keeps the summary the same every time.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(dbPath + suffix)
	}
	// A simulated cloud: async launches, pagination, eventual consistency.
	simCloud, err := sim.New(sim.Config{LaunchDelay: 400 * time.Millisecond, TerminateDelay: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	for i := 1; i <= 3; i++ {
		if _, err := simCloud.AddServer("acct-42", cloud.Server{Name: fmt.Sprintf("db-%d", i), Image: "debian-12", State: cloud.StateRunning}); err != nil {
			return err
		}
	}
	fw, err := simCloud.AddFirewall("acct-42", cloud.Firewall{Name: "default"})
	if err != nil {
		return err
	}
	w, err := worker.New(ctx, worker.Config{
		Store:            persist.Config{Provisioning: persist.DBConfig{DSN: dbPath}},
		Retry:            worker.RetryPolicy{InitialInterval: 50 * time.Millisecond, MaxAttempts: 3},
		Logger:           logger,
		Cloud:            simCloud,
		Schedule:         poller.Config{InitialSpread: -1},
		DeletionGrace:    time.Second,
		JobCheckInterval: 200 * time.Millisecond,
		SourceCIDR:       netip.MustParsePrefix("10.20.0.0/24"),
	})
	if err != nil {
		return err
	}
	events, err := watchCloud(w, simCloud)
	if err != nil {
		return err
	}

	var handled, changes, flakyFailures atomic.Int64
	done := make(chan string, 16)

	// 1. State: save what a poller observed; only changes are written.
	must(w.HandleFunc("servers.observed", func(ctx context.Context, a worker.Action) error {
		var list serverList
		if err := a.Decode(&list); err != nil {
			return worker.Permanent(err)
		}
		snap := state.Snapshot{Complete: true}
		for _, s := range list.Servers {
			attrs, _ := json.Marshal(map[string]string{"state": s.State, "size": s.Size})
			snap.Observations = append(snap.Observations, state.Observation{ID: s.ID, Attributes: attrs, ObservedAt: a.CreatedAt})
		}
		cs, err := w.Sink().Save(ctx, state.Target{Account: a.Account, Customer: a.Customer, Kind: "server"}, snap)
		if err != nil {
			return err // transient: retried
		}
		for _, c := range cs {
			fmt.Fprintf(out, "  change: %-7s server %s v%d %v\n", c.Op, c.Target.Resource, c.Version, c.Fields)
		}
		changes.Add(int64(len(cs)))
		handled.Add(1)
		done <- a.ID
		return nil
	}))

	// 2. Retries: fails twice with a transient error, then succeeds.
	must(w.HandleFunc("firewall.authorize", func(ctx context.Context, a worker.Action) error {
		if flakyFailures.Add(1) <= 2 {
			return errors.New("cloud API: 503 service unavailable")
		}
		handled.Add(1)
		done <- a.ID
		return nil
	}))

	// 3. Poison: cannot succeed until the customer is enabled; then a replay works.
	var enabled atomic.Bool
	must(w.HandleFunc("report.generate", func(ctx context.Context, a worker.Action) error {
		if !enabled.Load() {
			return worker.Permanent(fmt.Errorf("customer %s has reports disabled", a.Customer))
		}
		handled.Add(1)
		done <- a.ID
		return nil
	}))

	runErr := make(chan error, 1)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { runErr <- w.Run(runCtx) }()
	<-w.Running()

	wait := func(n int) error {
		deadline := time.After(10 * time.Second)
		for i := 0; i < n; i++ {
			select {
			case <-done:
			case <-deadline:
				return fmt.Errorf("timed out waiting for %d handled action(s)", n-i)
			case err := <-runErr:
				return fmt.Errorf("worker stopped: %v", err)
			}
		}
		return nil
	}

	observed := func(states ...string) worker.Action {
		var l serverList
		for i, st := range states {
			l.Servers = append(l.Servers, struct {
				ID    string `json:"id"`
				State string `json:"state"`
				Size  string `json:"size"`
			}{fmt.Sprintf("i-%03d", i+1), st, "m1.small"})
		}
		a, err := worker.NewAction("servers.observed", l)
		must(err)
		a.Account, a.Customer = "acct-7", "acme"
		return a
	}

	fmt.Fprintln(out, "1. state: first poll sees 3 servers")
	must(w.Publish(ctx, observed("PENDING", "RUNNING", "RUNNING")))
	if err := wait(1); err != nil {
		return err
	}
	fmt.Fprintln(out, "   second poll: nothing changed (no writes)")
	must(w.Publish(ctx, observed("PENDING", "RUNNING", "RUNNING")))
	if err := wait(1); err != nil {
		return err
	}
	fmt.Fprintln(out, "   third poll: i-001 is now RUNNING")
	must(w.Publish(ctx, observed("RUNNING", "RUNNING", "RUNNING")))
	if err := wait(1); err != nil {
		return err
	}

	fmt.Fprintln(out, "2. retry: firewall.authorize fails twice, then succeeds")
	fwa, _ := worker.NewAction("firewall.authorize", map[string]any{"port": 22, "cidr": "10.0.0.0/8"})
	must(w.Publish(ctx, fwa))
	if err := wait(1); err != nil {
		return err
	}

	fmt.Fprintln(out, "3. poison: report.generate fails permanently")
	rep, _ := worker.NewAction("report.generate", map[string]any{"month": "2026-11"})
	rep.Customer = "acme"
	must(w.Publish(ctx, rep))
	var poisoned []worker.PoisonedAction
	for deadline := time.Now().Add(10 * time.Second); len(poisoned) == 0; {
		if time.Now().After(deadline) {
			return errors.New("timed out waiting for the poisoned action")
		}
		time.Sleep(20 * time.Millisecond)
		if poisoned, err = w.Poisoned(ctx, worker.PoisonQuery{}); err != nil {
			return err
		}
	}
	p := poisoned[0]
	fmt.Fprintf(out, "   poisoned: #%d %s after %d attempt(s): %s\n", p.ID, p.Action.Type, p.Attempts, p.Reason)
	fmt.Fprintln(out, "   enabling reports and replaying it")
	enabled.Store(true)
	must(w.Replay(ctx, p.ID))
	if err := wait(1); err != nil {
		return err
	}
	left, err := w.Poisoned(ctx, worker.PoisonQuery{})
	if err != nil {
		return err
	}

	cloudSummary, err := cloudScenario(ctx, out, w, simCloud, fw.ID, events)
	if err != nil {
		return err
	}

	fmt.Fprintln(out)
	fmt.Fprintln(out, "summary")
	fmt.Fprintf(out, "  actions handled:     %d\n", handled.Load())
	fmt.Fprintf(out, "  state changes saved: %d\n", changes.Load())
	fmt.Fprintf(out, "  transient failures:  %d (retried)\n", flakyFailures.Load()-1)
	fmt.Fprintf(out, "  poisoned, replayed:  1, 1 (%d still poisoned)\n", len(left))
	fmt.Fprintf(out, "  cloud:               %s\n", cloudSummary)
	fmt.Fprintf(out, "  store:               %s\n", w.Store().Describe())

	if serve {
		fmt.Fprintln(out, "\nserving; press Ctrl-C to stop")
		<-ctx.Done()
	}
	cancel()
	return <-runErr
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

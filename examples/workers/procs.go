package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/service"
)

// Default poll intervals of the standard pollers, when the configuration's
// schedule.intervals names none.
const (
	defaultServerInterval       = time.Minute
	defaultServerStatusInterval = 20 * time.Second
)

// processCommand is the subcommand that runs the worker in role.
func processCommand(role worker.Role, summary string) command {
	return command{string(role), summary, func(ctx context.Context, e *env, args []string) error {
		return runProcess(ctx, e, role, args)
	}}
}

// runProcess loads the configuration, builds the worker in role, registers
// the standard server pollers, seeds the accounts and runs until ctx ends
// (the first SIGTERM or SIGINT). SIGHUP (e.sighup) reopens the log files.
func runProcess(ctx context.Context, e *env, role worker.Role, args []string) error {
	fs := flags(string(role), e)
	path := configFlag(fs, e)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, e)
	if err != nil {
		return err
	}
	cfg.Process.Role = string(role)
	wc, closer, err := cfg.Worker()
	if err != nil {
		return err
	}
	defer closer.Close()
	log := wc.Logger
	var reg *prometheus.Registry
	if cfg.Metrics.Listen != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		wc.Metrics = reg
	}
	w, err := worker.New(ctx, wc)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	defer w.Close()
	// Every kind package cloud polls (or those of schedule.kinds), at the
	// configured interval or the kind's default; an account whose provider
	// lacks a kind is not polled for it.
	pollers, err := cloud.StandardPollers(w.Cloud())
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	polled := map[string]bool{}
	for _, p := range pollers {
		if !cfg.Polls(p.Poller.Kind()) {
			continue // not in schedule.kinds
		}
		polled[p.Poller.Kind()] = true
		every := p.Interval
		switch p.Poller.Kind() {
		case "server":
			every = defaultServerInterval
		case "server-status":
			every = defaultServerStatusInterval
		}
		every = cfg.Interval(p.Poller.Kind(), every)
		if a, ok := p.Poller.(cloud.ServerAnalyticsPoller); ok {
			// Each poll reads twice its interval back, so that one late
			// or missed poll loses no samples (duplicates are dropped).
			a.Window = 2 * every
			p.Poller = a
		}
		if err := w.Register(p.Poller, every); err != nil {
			return err
		}
	}
	for i, kind := range cfg.Schedule.Kinds {
		if !polled[kind] {
			return fmt.Errorf("%s: schedule.kinds[%d]: %q is not a kind package cloud polls", *path, i, kind)
		}
	}
	if reg != nil {
		stop, err := serveMetrics(cfg.Metrics.Listen, reg, log)
		if err != nil {
			return fmt.Errorf("%s: metrics.listen: %w", *path, err)
		}
		defer stop()
	}
	created, err := service.Bootstrap(ctx, w, cfg)
	if err != nil {
		return err
	}
	if len(created) > 0 {
		log.Info("accounts created from the configuration", "accounts", created)
	}

	if r, ok := closer.(service.Reopener); ok && e.sighup != nil {
		go reopenOnHUP(ctx, e.sighup, r, log)
	}
	n := e.notifier
	if n == nil {
		n = systemdNotifier{}
	}
	go notifyRunning(ctx, w, n, log)
	err = w.Run(ctx)
	_ = n.notify(daemon.SdNotifyStopping)
	return err
}

// reopenOnHUP reopens the log files at every SIGHUP (logrotate's
// postrotate), then writes a line so the process log exists again at once.
func reopenOnHUP(ctx context.Context, hup <-chan os.Signal, r service.Reopener, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := r.Reopen(); err != nil {
				log.Error("reopening the log files", "err", err)
				continue
			}
			log.Info("log files reopened (SIGHUP)")
		}
	}
}

// notifier tells the service manager about the process (sd_notify).
type notifier interface {
	notify(state string) error
	// watchdog is the service's watchdog interval; 0 when off.
	watchdog() time.Duration
}

// systemdNotifier uses $NOTIFY_SOCKET and $WATCHDOG_USEC: without
// NOTIFY_SOCKET every notification is a no-op.
type systemdNotifier struct{}

func (systemdNotifier) notify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

func (systemdNotifier) watchdog() time.Duration {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

// notifyRunning sends READY=1 once the worker runs, then WATCHDOG=1 at half
// the watchdog interval until ctx ends.
func notifyRunning(ctx context.Context, w *worker.Worker, n notifier, log *slog.Logger) {
	select {
	case <-ctx.Done():
		return
	case <-w.Running():
	}
	if err := n.notify(daemon.SdNotifyReady); err != nil {
		log.Warn("telling systemd the service is ready", "err", err)
	}
	every := n.watchdog() / 2
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.notify(daemon.SdNotifyWatchdog); err != nil {
				log.Warn("sending the systemd watchdog keep-alive", "err", err)
			}
		}
	}
}

// signals is how main reacts to the process's signals: the first
// SIGTERM or SIGINT cancels the command's context (the worker drains
// within process.shutdown_timeout, then the command returns); a second
// one exits with status 1 at once, without waiting for the drain.
type signals struct {
	term   <-chan os.Signal
	cancel context.CancelFunc
	exit   func(code int)
	stderr io.Writer
}

func (s signals) watch(done <-chan struct{}) {
	select {
	case <-done:
		return
	case sig := <-s.term:
		fmt.Fprintf(s.stderr, "workers: %v: shutting down (send it again to exit at once)\n", sig)
		s.cancel()
	}
	select {
	case <-done:
	case sig := <-s.term:
		fmt.Fprintf(s.stderr, "workers: %v again: exiting without waiting for the shutdown\n", sig)
		s.exit(1)
	}
}

var termSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// serveMetrics serves reg on addr at /metrics (and nothing else) until stop
// is called; it returns once the address is bound, so a port in use is an
// error at start.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

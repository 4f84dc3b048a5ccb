package service

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"gopkg.in/natefinch/lumberjack.v2"

	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud/guest"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/logging"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
)

// Worker builds the SDK's worker.Config from c: the transport (with the
// password spliced into the URL), both databases (passwords spliced into
// the DSNs), the embedded key manager (km.LoadKeyFile of
// provisioning.encryption_key_file) or the remote key service's client
// (km.NewClient), the loggers (process log and customer logs with their
// rotation), the schedule, the retry policy and guest-log collection. The
// returned Closer closes what Worker opened (log files, keyring, km
// client): call it after worker.Run returns. It is also a [Reopener]:
// call its Reopen on SIGHUP. The pinger section sets worker.Config's
// Heartbeat (interval, dead_after) and Pinger (probe_interval). The worker.Config is
// validated; its errors name the SDK's fields.
func (c *Config) Worker() (worker.Config, io.Closer, error) {
	if err := c.Validate(); err != nil {
		return worker.Config{}, nil, err
	}
	cl := &closers{}
	wc, err := c.build(cl)
	if err == nil {
		err = wc.Validate()
	}
	if err != nil {
		_ = cl.Close()
		return worker.Config{}, nil, fmt.Errorf("service: %s: %w", c.fileName(), err)
	}
	return wc, cl, nil
}

func (c *Config) fileName() string {
	if c.meta != nil {
		return c.meta.file
	}
	return "config"
}

// Reopener is the Closer that [Config.Worker] returns: Reopen closes the
// log files it opened (the process log, the customer logs) so that the
// next record of each opens the file at its path again — what a service
// does on SIGHUP after logrotate moved the files away. Rotation by size
// and retention go on as configured.
type Reopener interface {
	io.Closer
	Reopen() error
}

var _ Reopener = (*closers)(nil)

type closers struct {
	mu      sync.Mutex
	fns     []func() error
	reopens []func() error
}

func (c *closers) add(f func() error) { c.fns = append(c.fns, f) }

// Reopen reopens the log files.
func (c *closers) Reopen() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, f := range c.reopens {
		errs = append(errs, f())
	}
	return errors.Join(errs...)
}

// Close closes in reverse order of opening.
func (c *closers) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reopens = nil
	var errs []error
	for i := len(c.fns) - 1; i >= 0; i-- {
		errs = append(errs, c.fns[i]())
	}
	c.fns = nil
	return errors.Join(errs...)
}

func (c *Config) build(cl *closers) (worker.Config, error) {
	wc := worker.Config{
		Role:            worker.Role(c.Process.Role),
		Concurrency:     c.Process.Concurrency,
		HandlerTimeout:  c.Process.HandlerTimeout.D(),
		ShutdownTimeout: c.Process.ShutdownTimeout.D(),
		MaxPayloadBytes: c.Process.MaxPayloadBytes,
		MQ: worker.MQConfig{
			URL:            c.mqURL(),
			Consumers:      c.MQ.Consumers,
			Prefetch:       c.MQ.Prefetch,
			PublishTimeout: c.MQ.PublishTimeout.D(),
			PackActions:    c.MQ.PackActions,
			PackBytes:      c.MQ.PackBytes,
		},
		Topology:                worker.Topology{Prefix: c.MQ.Prefix},
		Store:                   c.StoreConfig(),
		DeletionGrace:           c.StateStore.DeletionGrace.D(),
		LaunchConsistencyWindow: c.StateStore.LaunchConsistencyWindow.D(),
		AllowAnySource:          c.Provisioning.AllowAnySource,
		ManagementPort:          c.Provisioning.ManagementPort,
		JobCheckInterval:        c.Provisioning.JobCheckInterval.D(),
		JobTimeout:              c.Provisioning.JobTimeout.D(),
		CredentialCacheTTL:      c.KM.CredentialCacheTTL.D(),
		AccountSyncInterval:     c.Schedule.AccountSyncInterval.D(),
		Scale: worker.ScaleConfig{Mode: worker.ScaleMode(c.Schedule.Sharing), LeasePeriod: c.Schedule.LeasePeriod.D(),
			Shards: c.Schedule.Shards},
		Heartbeat: worker.HeartbeatConfig{
			Interval:  cmp.Or(c.Pinger.Interval.D(), DefaultPingerInterval),
			DeadAfter: cmp.Or(c.Pinger.DeadAfter, DefaultPingerDeadAfter),
		},
		Pinger: worker.PingerConfig{ProbeInterval: cmp.Or(c.Pinger.ProbeInterval.D(), DefaultPingerProbeInterval)},
		Analytics: worker.AnalyticsConfig{
			Retention:       c.Analytics.SampleRetention.D(),
			RollupRetention: c.Analytics.RollupRetention.D(),
		},
		Schedule: poller.Config{
			Jitter:          c.Schedule.Jitter,
			InitialSpread:   c.Schedule.InitialSpread.D(),
			InFlightTimeout: c.Schedule.InFlightTimeout.D(),
			BatchSize:       c.Schedule.BatchSize,
			Budget:          poller.Limit{PerSecond: c.Schedule.Budget.PerSecond, Burst: c.Schedule.Budget.Burst},
			Backoff: poller.Backoff{
				InitialInterval: c.Schedule.Backoff.InitialInterval.D(),
				MaxInterval:     c.Schedule.Backoff.MaxInterval.D(),
				Multiplier:      c.Schedule.Backoff.Multiplier,
			},
		},
		Retry: worker.RetryPolicy{
			Budget:          c.Retry.Budget.D(),
			MaxAttempts:     c.Retry.MaxAttempts,
			InitialInterval: c.Retry.InitialInterval.D(),
			MaxInterval:     c.Retry.MaxInterval.D(),
			Multiplier:      c.Retry.Multiplier,
			Jitter:          c.Retry.Jitter,
			InlineMax:       c.Retry.InlineMax.D(),
		},
	}
	if p, _ := c.sourceCIDR(); p.IsValid() {
		wc.SourceCIDR = p
	}
	logger, customers, err := c.loggers(cl)
	if err != nil {
		return wc, err
	}
	wc.Logger = logger
	wc.Store.Logger = logger
	if f := c.Provisioning.EncryptionKeyFile; f != "" {
		kr, err := km.LoadKeyFile(f)
		if err != nil {
			return wc, fmt.Errorf("provisioning.encryption_key_file: %w", err)
		}
		cl.add(kr.Close)
		wc.Keyring = kr
	}
	if c.KM.URL != "" {
		client, err := km.NewClient(km.ClientConfig{
			BaseURL:    c.KM.URL,
			ServerName: c.KM.ServerName,
			TLS:        km.TLSConfig{CAFile: c.KM.CAFile, CertFile: c.KM.CertFile, KeyFile: c.KM.KeyFile},
			Timeout:    c.KM.Timeout.D(),
			Logger:     logger,
		})
		if err != nil {
			return wc, fmt.Errorf("km: %w", err)
		}
		cl.add(client.Close)
		wc.Credentials = client
	}
	if g := c.GuestLogs; g.Interval > 0 {
		wc.GuestLogs = worker.GuestLogsConfig{
			Interval:   g.Interval.D(),
			ServerKind: g.ServerKind,
			Collector: guest.CollectorConfig{
				Files:        g.Files,
				Timeout:      g.Timeout.D(),
				Concurrency:  g.Concurrency,
				Port:         g.Port,
				MaxReadBytes: g.MaxReadBytes,
				LogDir:       c.Logging.Dir,
			},
		}
		if customers != nil {
			wc.GuestLogs.Collector.OutputDir = customers.CustomerDir
		}
		if g.KnownHostsFile != "" {
			hk, err := guest.KnownHostsFile(g.KnownHostsFile)
			if err != nil {
				return wc, fmt.Errorf("guest_logs.known_hosts_file: %w", err)
			}
			wc.GuestLogs.Collector.HostKeys = hk
		}
		if c.KM.URL != "" {
			wc.GuestLogs.Collector.Credentials = km.SSHLogins{Store: wc.Credentials}
		}
	}
	return wc, nil
}

// mqURL is mq.url with the resolved password in it.
func (c *Config) mqURL() string {
	pw := c.secrets["mq.password"]
	if pw == "" || c.MQ.URL == "" || c.MQ.URL == "memory" {
		return c.MQ.URL
	}
	u, err := url.Parse(c.MQ.URL)
	if err != nil || u.User == nil {
		return c.MQ.URL
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

// StoreConfig is the persist.Config of the configuration's databases (the
// provisioning one, the analytics one when set, passwords spliced in, the
// state store's migration mode). It opens nothing: the operator commands
// and backups use it where a whole worker.Config would open key files,
// the key service and log files for nothing.
func (c *Config) StoreConfig() persist.Config {
	pc := persist.Config{
		Provisioning: c.dbConfig("provisioning_db", c.ProvisioningDB),
		Migrations:   persist.MigrationMode(c.StateStore.Migrations),
	}
	if c.AnalyticsDB != (DBSection{}) {
		pc.Analytics = c.dbConfig("analytics_db", c.AnalyticsDB)
	}
	return pc
}

func (c *Config) dbConfig(section string, d DBSection) persist.DBConfig {
	dsn := d.DSN
	if pw := c.secrets[section+".password"]; pw != "" && d.Driver == "mysql" {
		if mc, err := mysql.ParseDSN(dsn); err == nil {
			mc.Passwd = pw
			dsn = mc.FormatDSN()
		}
	}
	return persist.DBConfig{
		Driver:          persist.Driver(d.Driver),
		DSN:             dsn,
		MaxOpenConns:    d.MaxOpenConns,
		MaxIdleConns:    d.MaxIdleConns,
		ConnMaxLifetime: d.ConnMaxLifetime.D(),
		ConnectTimeout:  d.ConnectTimeout.D(),
		ReadTimeout:     d.ReadTimeout.D(),
		WriteTimeout:    d.WriteTimeout.D(),
	}
}

func (c *Config) level() slog.Level {
	switch c.Logging.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// loggers builds the process logger and, with customer_logs, the customer
// handler in front of it.
func (c *Config) loggers(cl *closers) (*slog.Logger, *logging.CustomerHandler, error) {
	l := c.Logging
	var out io.Writer = os.Stderr
	if l.ProcessLog != "" && l.ProcessLog != "stderr" {
		if err := os.MkdirAll(l.Dir, logging.DirPerm); err != nil {
			return nil, nil, fmt.Errorf("logging.dir: %w", err)
		}
		lj := &lumberjack.Logger{
			Filename:   filepath.Join(l.Dir, l.ProcessLog),
			MaxSize:    orDefault(l.MaxSizeMB, logging.DefaultMaxSizeMB),
			MaxBackups: max(orDefault(l.MaxBackups, logging.DefaultMaxBackups), 0),
			MaxAge:     max(orDefault(l.MaxAgeDays, logging.DefaultMaxAgeDays), 0),
			Compress:   l.Compress,
		}
		cl.add(lj.Close)
		cl.reopens = append(cl.reopens, lj.Close) // lumberjack opens the file again at the next write
		out = lj
	}
	opts := &slog.HandlerOptions{Level: c.level()}
	var h slog.Handler = slog.NewTextHandler(out, opts)
	if l.Format == "json" {
		h = slog.NewJSONHandler(out, opts)
	}
	if !l.CustomerLogs {
		return slog.New(h), nil, nil
	}
	ch, err := logging.NewCustomerHandler(h, logging.Config{
		Dir:        l.Dir,
		FileName:   l.CustomerFileName,
		MaxSizeMB:  l.MaxSizeMB,
		MaxBackups: l.MaxBackups,
		MaxAgeDays: l.MaxAgeDays,
		Compress:   l.Compress,
		Level:      c.level(),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("logging: %w", err)
	}
	cl.add(ch.Close)
	cl.reopens = append(cl.reopens, ch.Reopen)
	return slog.New(ch), ch, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// account is the entry as an accounts.Account.
func (e AccountEntry) account() (accounts.Account, error) {
	a := accounts.Account{
		ID: e.ID, Customer: e.Customer, Provider: e.Provider, Credential: e.Credential,
		Paused: e.Paused, PausedReason: e.PausedReason, Labels: e.Labels,
	}
	if len(e.Settings) > 0 {
		b, err := json.Marshal(e.Settings)
		if err != nil {
			return a, err
		}
		a.Settings = b
	}
	if len(e.Intervals) > 0 {
		a.Intervals = make(map[string]time.Duration, len(e.Intervals))
		for k, d := range e.Intervals {
			a.Intervals[k] = d.D()
		}
	}
	return a, nil
}

// Bootstrap puts the accounts of cfg's accounts list into w's account
// registry when they are not there yet. An account already in the
// registry is left as it is: the list seeds a new installation, and
// later changes (a pause, new settings) made through the registry win.
// An account deleted through the registry counts as missing: remove it
// from the list too, or the next start creates it again.
// It returns the ids of the accounts it created.
func Bootstrap(ctx context.Context, w *worker.Worker, cfg *Config) ([]string, error) {
	reg := w.Accounts()
	var created []string
	for i, e := range cfg.Accounts {
		a, err := e.account()
		if err != nil {
			return created, fmt.Errorf("service: accounts[%d]: %w", i, err)
		}
		if _, err := reg.Get(ctx, a.ID); err == nil {
			continue
		} else if !errors.Is(err, accounts.ErrNotFound) {
			return created, fmt.Errorf("service: accounts[%d] (%s): %w", i, a.ID, err)
		}
		if _, err := reg.Put(ctx, a); err != nil {
			return created, fmt.Errorf("service: accounts[%d] (%s): %w", i, a.ID, err)
		}
		created = append(created, a.ID)
	}
	return created, nil
}

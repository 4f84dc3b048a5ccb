package service

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"time"

	"go.yaml.in/yaml/v3"

	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/cloud/guest"
	"github.com/stratusworks/worker/km"
	"github.com/stratusworks/worker/logging"
	"github.com/stratusworks/worker/poller"
)

// Check writes the effective configuration of cfg to w as YAML: every
// default filled in, and every secret redacted — inline passwords, and
// passwords inside mq.url and the DSNs, show as "<redacted>" or "xxxxx";
// references (password_file, password_env, "${NAME}") show as written,
// since they are not secrets.
func Check(w io.Writer, cfg *Config) error {
	eff := cfg.Effective()
	eff.redact()
	out, err := marshal(&eff)
	if err != nil {
		return fmt.Errorf("service: check: %w", err)
	}
	if _, err := fmt.Fprintf(w, "# effective configuration of %s (defaults filled in, secrets redacted)\n", cfg.fileName()); err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// Marshal writes cfg as YAML with its secrets redacted, defaults left out:
// what [ImportLegacy]'s result is printed with.
func Marshal(cfg *Config) ([]byte, error) {
	c := cfg.clone()
	c.redact()
	return marshal(&c)
}

// marshal is YAML indented by two spaces.
func marshal(c *Config) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (c *Config) clone() Config {
	out := *c
	out.meta, out.secrets = nil, nil
	return out
}

func (c *Config) redact() {
	for _, r := range c.secretRefs() {
		if *r.inline != "" {
			if _, ok := envRef(*r.inline); !ok {
				*r.inline = Redacted
			}
		}
	}
	if c.MQ.URL != "" && c.MQ.URL != "memory" {
		if u, err := url.Parse(c.MQ.URL); err == nil {
			c.MQ.URL = u.Redacted()
		} else {
			c.MQ.URL = Redacted
		}
	}
	for _, d := range []*DBSection{&c.ProvisioningDB, &c.AnalyticsDB} {
		if d.Driver == "mysql" && d.DSN != "" {
			d.DSN = redactDSN(d.DSN)
		}
	}
}

// Effective is a copy of c with every default filled in, as the worker
// will run with it (the SDK's documented defaults).
func (c *Config) Effective() Config {
	e := c.clone()
	def := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	defFloat := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	p := &e.Process
	defStr(&p.Role, string(worker.RoleAll))
	defInt(&p.Concurrency, 64)
	def(&p.HandlerTimeout, time.Minute)
	def(&p.ShutdownTimeout, 30*time.Second)
	defInt(&p.MaxPayloadBytes, 1<<20)

	m := &e.MQ
	defStr(&m.URL, "memory")
	defStr(&m.Prefix, "worker")
	defInt(&m.Consumers, 1)
	defInt(&m.Prefetch, min(2*p.Concurrency, 65535))
	def(&m.PublishTimeout, 30*time.Second)

	for _, d := range []*DBSection{&e.ProvisioningDB, &e.AnalyticsDB} {
		if d == &e.AnalyticsDB && *d == (DBSection{}) {
			continue // the provisioning database
		}
		defStr(&d.Driver, "sqlite")
		if d.Driver == "sqlite" {
			defStr(&d.DSN, "worker.db")
			defInt(&d.MaxOpenConns, 4)
			defInt(&d.MaxIdleConns, d.MaxOpenConns)
			continue
		}
		defInt(&d.MaxOpenConns, 20)
		defInt(&d.MaxIdleConns, d.MaxOpenConns)
		def(&d.ConnMaxLifetime, 3*time.Minute)
		def(&d.ConnectTimeout, 5*time.Second)
		def(&d.ReadTimeout, 30*time.Second)
		def(&d.WriteTimeout, 30*time.Second)
	}

	s := &e.StateStore
	defStr(&s.Migrations, "auto")
	def(&s.DeletionGrace, 5*time.Minute)
	def(&s.LaunchConsistencyWindow, 2*time.Minute)

	if e.KM.URL != "" {
		def(&e.KM.Timeout, km.DefaultClientTimeout)
		if e.KM.ServerName == "" {
			if u, err := url.Parse(e.KM.URL); err == nil {
				e.KM.ServerName = u.Hostname()
			}
		}
	}
	def(&e.KM.CredentialCacheTTL, 5*time.Minute)

	pr := &e.Provisioning
	defInt(&pr.ManagementPort, 22)
	def(&pr.JobCheckInterval, 10*time.Second)
	def(&pr.JobTimeout, time.Hour)

	l := &e.Logging
	defStr(&l.ProcessLog, "stderr")
	defStr(&l.Level, "info")
	defStr(&l.Format, "text")
	defStr(&l.CustomerFileName, logging.DefaultFileName)
	defInt(&l.MaxSizeMB, logging.DefaultMaxSizeMB)
	defInt(&l.MaxBackups, logging.DefaultMaxBackups)
	defInt(&l.MaxAgeDays, logging.DefaultMaxAgeDays)

	pi := &e.Pinger
	def(&pi.Interval, DefaultPingerInterval)
	def(&pi.ProbeInterval, DefaultPingerProbeInterval)
	defInt(&pi.DeadAfter, DefaultPingerDeadAfter)

	sc := &e.Schedule
	defFloat(&sc.Jitter, poller.DefaultJitter)
	def(&sc.InFlightTimeout, poller.DefaultInFlightTimeout)
	defInt(&sc.BatchSize, poller.DefaultBatchSize)
	defFloat(&sc.Budget.PerSecond, poller.DefaultBudget.PerSecond)
	defInt(&sc.Budget.Burst, poller.DefaultBudget.Burst)
	def(&sc.Backoff.InitialInterval, poller.DefaultBackoffInitial)
	def(&sc.Backoff.MaxInterval, poller.DefaultBackoffMax)
	defFloat(&sc.Backoff.Multiplier, poller.DefaultBackoffFactor)
	def(&sc.AccountSyncInterval, worker.DefaultAccountSyncInterval)
	def(&sc.LeasePeriod, worker.DefaultLeasePeriod)
	defInt(&sc.Shards, worker.DefaultShards)

	r := &e.Retry
	def(&r.Budget, worker.DefaultRetryBudget)
	def(&r.InitialInterval, 100*time.Millisecond)
	def(&r.MaxInterval, max(time.Hour, r.InitialInterval.D()))
	defFloat(&r.Multiplier, 2)
	defFloat(&r.Jitter, 0.2)
	def(&r.InlineMax, time.Second)

	if g := &e.GuestLogs; g.Interval > 0 {
		defStr(&g.ServerKind, "server")
		if len(g.Files) == 0 {
			g.Files = append([]string(nil), guest.DefaultFiles...)
		}
		def(&g.Timeout, 30*time.Second)
		defInt(&g.Concurrency, 8)
		defInt(&g.Port, 22)
		if g.MaxReadBytes == 0 {
			g.MaxReadBytes = 4 << 20
		}
	}
	return e
}

// Defaults of the pinger section.
const (
	DefaultPingerInterval      = 30 * time.Second
	DefaultPingerProbeInterval = 10 * time.Second
	DefaultPingerDeadAfter     = 3
)

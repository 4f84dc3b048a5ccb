package service

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
)

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Validate reports the first bad key of c as a [*ConfigError]. It
// resolves the secrets' references (reading password files) when Load has
// not, and checks that the files c names exist.
func (c *Config) Validate() error {
	if c.secrets == nil {
		if err := c.resolveSecrets(); err != nil {
			return err
		}
	}
	for _, check := range []func() error{
		c.validateWorker, c.validateMQ, c.validateDBs, c.validateStateStore, c.validateKM,
		c.validateProvisioning, c.validateLogging, c.validatePinger, c.validateSchedule,
		c.validateRetry, c.validateGuestLogs, c.validateAccounts, c.validateMetrics, c.validateAnalytics,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) oneOf(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return c.fail(key, v, "is not one of %s", strings.Join(allowed[1:], ", ")) // allowed[0] is ""
}

type intRule struct {
	key      string
	v        int64
	min, max int64
}

func (c *Config) ints(rules ...intRule) error {
	for _, r := range rules {
		if r.v < r.min || r.v > r.max {
			v := strconv.FormatInt(r.v, 10)
			if r.max == maxInt {
				return c.fail(r.key, v, "is out of range (want >= %d; 0 means the default)", r.min)
			}
			return c.fail(r.key, v, "is out of range (want %d to %d; 0 means the default)", r.min, r.max)
		}
	}
	return nil
}

const maxInt = 1<<62 - 1

func (c *Config) fraction(key string, v float64) error {
	if v < 0 || v >= 1 {
		return c.fail(key, strconv.FormatFloat(v, 'g', -1, 64), "is out of range (want 0 <= jitter < 1)")
	}
	return nil
}

func (c *Config) multiplier(key string, v float64) error {
	if v != 0 && v < 1 {
		return c.fail(key, strconv.FormatFloat(v, 'g', -1, 64), "is below 1 (want a multiplier >= 1; 0 means the default)")
	}
	return nil
}

func (c *Config) existing(key, path string) error {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		if os.IsNotExist(err) {
			return c.fail(key, path, "does not exist")
		}
		return c.fail(key, path, "cannot be read: %v", errors.Unwrap(err))
	}
	return nil
}

func (c *Config) validateWorker() error {
	w := c.Process
	if err := c.oneOf("process.role", w.Role, "", "all", "publisher", "subscriber", "pinger"); err != nil {
		return err
	}
	return c.ints(intRule{"process.concurrency", int64(w.Concurrency), 0, 1 << 20},
		intRule{"process.max_payload_bytes", int64(w.MaxPayloadBytes), 0, 1 << 30})
}

func (c *Config) validateMQ() error {
	m := c.MQ
	if path, ok := strings.CutPrefix(m.URL, "sqlite:"); ok || m.URL == "sqlite" {
		// The durable SQLite queue (package sqlitemq), shared by the
		// processes of one machine; the SDK checks the rest.
		if ok && path == "" {
			return c.fail("mq.url", m.URL, "names no file (want sqlite:/var/lib/worker/queue.db, or sqlite for a file beside provisioning_db's)")
		}
		return nil
	}
	if m.URL != "" && m.URL != "memory" {
		u, err := url.Parse(m.URL)
		if err != nil {
			return c.fail("mq.url", "(unparsable URL)", "is not a URL (want \"memory\" or amqp://user@host:5672/vhost)")
		}
		shown := u.Redacted()
		if (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
			return c.fail("mq.url", shown, "is not an amqp:// or amqps:// URL with a host (want \"memory\" or amqp://user@host:5672/vhost)")
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return c.fail("mq.url", shown, "has port %q (want 1 to 65535)", p)
			}
		}
		if _, has := u.User.Password(); has {
			if !c.AllowInlineSecrets && !c.fromEnv("mq.url") {
				return c.fail("mq.url", shown, "holds a password: give it by reference (mq.password_file, mq.password_env or mq.password: \"${NAME}\"), or set allow_inline_secrets: true")
			}
			if c.secrets["mq.password"] != "" {
				return c.fail("mq.url", shown, "holds a password and mq.password* is set too: give one")
			}
		}
		if c.secrets["mq.password"] != "" && u.User == nil {
			return c.fail("mq.url", shown, "names no user for the password of mq.password* (want amqp://user@host:5672/vhost)")
		}
	} else if c.secrets["mq.password"] != "" {
		return c.fail("mq.url", m.URL, "is the embedded transport, which takes no password (mq.password*)")
	}
	if m.Prefix != "" && !namePattern.MatchString(m.Prefix) {
		return c.fail("mq.prefix", m.Prefix, "is not a name of a-z 0-9 . _ - (at most 64)")
	}
	return c.ints(intRule{"mq.consumers", int64(m.Consumers), 0, 1024},
		intRule{"mq.prefetch", int64(m.Prefetch), 0, 65535},
		intRule{"mq.pack_actions", int64(m.PackActions), 0, 10_000},
		intRule{"mq.pack_bytes", int64(m.PackBytes), 0, 64 << 20})
}

func (c *Config) validateDBs() error {
	if err := c.validateDB("provisioning_db", c.ProvisioningDB); err != nil {
		return err
	}
	if c.AnalyticsDB == (DBSection{}) {
		return nil
	}
	return c.validateDB("analytics_db", c.AnalyticsDB)
}

func (c *Config) validateDB(section string, d DBSection) error {
	if err := c.oneOf(section+".driver", d.Driver, "", "sqlite", "mysql"); err != nil {
		return err
	}
	pw := c.secrets[section+".password"]
	switch d.Driver {
	case "", "sqlite":
		if strings.Contains(d.DSN, "?") || strings.HasPrefix(d.DSN, "file:") || strings.Contains(d.DSN, "@tcp(") {
			return c.fail(section+".dsn", redactDSN(d.DSN), "is not a sqlite file path (want a path such as /var/lib/worker/worker.db or \":memory:\"; for MySQL set driver: mysql)")
		}
		if pw != "" {
			return c.fail(section+".driver", d.Driver, "is sqlite, which takes no password (%s.password*)", section)
		}
	case "mysql":
		if d.DSN == "" {
			return c.fail(section+".dsn", d.DSN, "is required with driver mysql (want user@tcp(host:3306)/db)")
		}
		mc, err := mysql.ParseDSN(d.DSN)
		if err != nil {
			return c.fail(section+".dsn", redactDSN(d.DSN), "is not a MySQL DSN (want user@tcp(host:3306)/db): %s", strings.ReplaceAll(err.Error(), d.DSN, "(the DSN)"))
		}
		if mc.DBName == "" {
			return c.fail(section+".dsn", redactDSN(d.DSN), "names no database (want user@tcp(host:3306)/db)")
		}
		if mc.Passwd != "" {
			if !c.AllowInlineSecrets && !c.fromEnv(section+".dsn") {
				return c.fail(section+".dsn", redactDSN(d.DSN), "holds a password: give it by reference (%[1]s.password_file, %[1]s.password_env or %[1]s.password: \"${NAME}\"), or set allow_inline_secrets: true", section)
			}
			if pw != "" {
				return c.fail(section+".dsn", redactDSN(d.DSN), "holds a password and %s.password* is set too: give one", section)
			}
		}
	}
	return c.ints(intRule{section + ".max_open_conns", int64(d.MaxOpenConns), 0, 10000},
		intRule{section + ".max_idle_conns", int64(d.MaxIdleConns), 0, 10000})
}

// redactDSN is a MySQL DSN with its password replaced.
func redactDSN(dsn string) string {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		// Cut the user info out, as the password may be in it.
		if i := strings.LastIndex(dsn, "@"); i >= 0 {
			return Redacted + dsn[i:]
		}
		return dsn
	}
	if mc.Passwd != "" {
		mc.Passwd = "xxxxx"
	}
	return mc.FormatDSN()
}

func (c *Config) validateStateStore() error {
	return c.oneOf("state_store.migrations", c.StateStore.Migrations, "", "auto", "verify")
}

func (c *Config) validateKM() error {
	k := c.KM
	if k.URL == "" {
		for _, f := range []struct{ key, v string }{{"km.ca_file", k.CAFile}, {"km.cert_file", k.CertFile}, {"km.key_file", k.KeyFile}, {"km.server_name", k.ServerName}} {
			if f.v != "" {
				return c.fail(f.key, f.v, "is set without km.url (the remote key service's https URL)")
			}
		}
		return nil
	}
	u, err := url.Parse(k.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		shown := "(unparsable URL)"
		if err == nil {
			shown = u.Redacted()
		}
		return c.fail("km.url", shown, "is not an https:// URL with a host (want https://km.internal:8443)")
	}
	if u.User != nil {
		return c.fail("km.url", u.Redacted(), "holds user information (the key service is reached with the client certificate)")
	}
	if c.Provisioning.EncryptionKeyFile != "" {
		return c.fail("km.url", k.URL, "is set together with provisioning.encryption_key_file: choose the remote key service or the embedded key manager")
	}
	for _, f := range []struct{ key, v string }{{"km.ca_file", k.CAFile}, {"km.cert_file", k.CertFile}, {"km.key_file", k.KeyFile}} {
		if f.v == "" {
			return c.fail(f.key, f.v, "is required with km.url (a PEM file)")
		}
		if err := c.existing(f.key, f.v); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateProvisioning() error {
	p := c.Provisioning
	if err := c.existing("provisioning.encryption_key_file", p.EncryptionKeyFile); err != nil {
		return err
	}
	if _, err := c.sourceCIDR(); err != nil {
		return err
	}
	return c.ints(intRule{"provisioning.management_port", int64(p.ManagementPort), 0, 65535})
}

func (c *Config) sourceCIDR() (netip.Prefix, error) {
	s := c.Provisioning.SourceCIDR
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			return p, c.fail("provisioning.source_cidr", s, "is an address, not a network (want a CIDR such as %s)", netip.PrefixFrom(a, a.BitLen()))
		}
		return p, c.fail("provisioning.source_cidr", s, "is not a CIDR (want a network such as 10.0.0.0/24)")
	}
	if p != p.Masked() {
		return p, c.fail("provisioning.source_cidr", s, "has host bits set (want the network %s, or %s for this one address)", p.Masked(), netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
	}
	if p.Bits() == 0 && !c.Provisioning.AllowAnySource {
		return p, c.fail("provisioning.source_cidr", s, "is the whole internet: every launched server's management port would be open to it (name the worker's network, or set provisioning.allow_any_source: true)")
	}
	return p, nil
}

func plainFileName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && filepath.Base(s) == s
}

func (c *Config) validateLogging() error {
	l := c.Logging
	if err := c.oneOf("logging.level", l.Level, "", "debug", "info", "warn", "error"); err != nil {
		return err
	}
	if err := c.oneOf("logging.format", l.Format, "", "text", "json"); err != nil {
		return err
	}
	if l.ProcessLog != "" && l.ProcessLog != "stderr" {
		if !plainFileName(l.ProcessLog) {
			return c.fail("logging.process_log", l.ProcessLog, "is not \"stderr\" or a plain file name (the file is put in logging.dir)")
		}
		if l.Dir == "" {
			return c.fail("logging.process_log", l.ProcessLog, "is a file, which needs logging.dir")
		}
	}
	if l.CustomerLogs && l.Dir == "" {
		return c.fail("logging.customer_logs", "true", "needs logging.dir (the customers' directories go there)")
	}
	if l.CustomerFileName != "" && !plainFileName(l.CustomerFileName) {
		return c.fail("logging.customer_file_name", l.CustomerFileName, "is not a plain file name")
	}
	if l.Dir != "" && !filepath.IsAbs(l.Dir) {
		return c.fail("logging.dir", l.Dir, "is not an absolute path")
	}
	return c.ints(intRule{"logging.max_size_mb", int64(l.MaxSizeMB), 0, 1 << 20},
		intRule{"logging.max_backups", int64(l.MaxBackups), -1, 1 << 20},
		intRule{"logging.max_age_days", int64(l.MaxAgeDays), -1, 1 << 20})
}

func (c *Config) validateMetrics() error {
	l := c.Metrics.Listen
	if l == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		return c.fail("metrics.listen", l, "is not host:port, such as \"127.0.0.1:9464\"")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return c.fail("metrics.listen", l, "has no port between 1 and 65535")
	}
	if host != "" && net.ParseIP(host) == nil && !namePattern.MatchString(strings.ToLower(host)) {
		return c.fail("metrics.listen", l, "has a host that is neither an IP address nor a host name")
	}
	return nil
}

func (c *Config) validateAnalytics() error {
	a := c.Analytics
	raw := cmp.Or(a.SampleRetention.D(), worker.DefaultSampleRetention)
	switch {
	case a.SampleRetention.D() < 0 || (a.SampleRetention.D() > 0 && a.SampleRetention.D() < time.Hour):
		return c.fail("analytics.sample_retention", a.SampleRetention.D().String(), "is below 1h (0 means the default, 168h)")
	case a.RollupRetention.D() < 0 || (a.RollupRetention.D() > 0 && a.RollupRetention.D() < raw):
		return c.fail("analytics.rollup_retention", a.RollupRetention.D().String(), "is below analytics.sample_retention (%s)", raw)
	case a.RollupRetention.D() == 0 && raw > worker.DefaultRollupRetention:
		return c.fail("analytics.sample_retention", raw.String(), "is above the default rollup_retention (%s): set analytics.rollup_retention too", worker.DefaultRollupRetention)
	}
	return nil
}

func (c *Config) validatePinger() error {
	return c.ints(intRule{"pinger.dead_after", int64(c.Pinger.DeadAfter), 0, 1000})
}

func (c *Config) validateSchedule() error {
	s := c.Schedule
	for kind, d := range s.Intervals {
		key := "schedule.intervals." + kind
		if !namePattern.MatchString(kind) {
			return c.fail(key, kind, "is not a resource kind of a-z 0-9 . _ -")
		}
		if d.D() < accounts.MinInterval {
			return c.fail(key, d.D().String(), "is below %s", accounts.MinInterval)
		}
	}
	seen := make(map[string]bool, len(s.Kinds))
	for i, kind := range s.Kinds {
		key := fmt.Sprintf("schedule.kinds[%d]", i)
		if !namePattern.MatchString(kind) {
			return c.fail(key, kind, "is not a resource kind of a-z 0-9 . _ -")
		}
		if seen[kind] {
			return c.fail(key, kind, "is listed twice")
		}
		seen[kind] = true
	}
	if err := c.fraction("schedule.jitter", s.Jitter); err != nil {
		return err
	}
	if err := c.multiplier("schedule.backoff.multiplier", s.Backoff.Multiplier); err != nil {
		return err
	}
	if s.Budget.PerSecond < 0 {
		return c.fail("schedule.budget.per_second", strconv.FormatFloat(s.Budget.PerSecond, 'g', -1, 64), "is negative (want polls per second > 0; 0 means the default)")
	}
	return c.ints(intRule{"schedule.batch_size", int64(s.BatchSize), 0, 1 << 20},
		intRule{"schedule.budget.burst", int64(s.Budget.Burst), 0, 1 << 20})
}

func (c *Config) validateRetry() error {
	r := c.Retry
	if err := c.fraction("retry.jitter", r.Jitter); err != nil {
		return err
	}
	if err := c.multiplier("retry.multiplier", r.Multiplier); err != nil {
		return err
	}
	return c.ints(intRule{"retry.max_attempts", int64(r.MaxAttempts), 0, 1 << 20})
}

func (c *Config) validateGuestLogs() error {
	g := c.GuestLogs
	if g.ServerKind != "" && !namePattern.MatchString(g.ServerKind) {
		return c.fail("guest_logs.server_kind", g.ServerKind, "is not a resource kind of a-z 0-9 . _ -")
	}
	for i, f := range g.Files {
		if !strings.HasPrefix(f, "/") {
			return c.fail(fmt.Sprintf("guest_logs.files[%d]", i), f, "is not an absolute path")
		}
	}
	if err := c.ints(intRule{"guest_logs.concurrency", int64(g.Concurrency), 0, 1024},
		intRule{"guest_logs.port", int64(g.Port), 0, 65535},
		intRule{"guest_logs.max_read_bytes", g.MaxReadBytes, 0, 1 << 30}); err != nil {
		return err
	}
	if err := c.existing("guest_logs.known_hosts_file", g.KnownHostsFile); err != nil {
		return err
	}
	if g.Interval == 0 || c.Process.Role == "publisher" {
		return nil
	}
	iv := g.Interval.D().String()
	switch {
	case g.KnownHostsFile == "":
		return c.fail("guest_logs.interval", iv, "turns collection on, which needs guest_logs.known_hosts_file (the guests' host keys)")
	case c.Provisioning.SourceCIDR == "":
		return c.fail("guest_logs.interval", iv, "turns collection on, which needs provisioning.source_cidr")
	case c.Provisioning.EncryptionKeyFile == "" && c.KM.URL == "":
		return c.fail("guest_logs.interval", iv, "turns collection on, which needs the SSH credentials: set provisioning.encryption_key_file or km.url")
	case c.Logging.Dir == "":
		return c.fail("guest_logs.interval", iv, "turns collection on, which needs logging.dir (the logs go to the customers' directories)")
	}
	return nil
}

func (c *Config) validateAccounts() error {
	seen := map[string]int{}
	for i, e := range c.Accounts {
		key := fmt.Sprintf("accounts[%d]", i)
		a, err := e.account()
		if err != nil {
			return c.fail(key+".settings", "(a mapping)", "cannot be written as JSON: %v", err)
		}
		if err := a.Validate(); err != nil {
			var fe *accounts.FieldError
			if errors.As(err, &fe) {
				return c.fail(key+"."+fe.Field, fe.Value, "%s", fe.Problem)
			}
			return c.fail(key, e.ID, "%v", err)
		}
		if j, dup := seen[e.ID]; dup {
			return c.fail(key+".id", e.ID, "is also the id of accounts[%d]", j)
		}
		seen[e.ID] = i
	}
	return nil
}

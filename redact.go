package worker

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// The configurations hold secrets (the AMQP URL's password, the database
// DSNs' passwords). Every way of printing them redacts those: fmt with any
// verb (Format, so %v, %+v, %#v, %s and String/GoString alike), JSON
// (MarshalJSON) and log/slog (LogValue). The nested persist.Config redacts
// its DSNs the same way.

// redacted returns m with the URL's password replaced.
func (m MQConfig) redacted() MQConfig {
	if m.URL != "" && m.URL != "memory" {
		m.URL = redactedURL(m.URL)
	}
	return m
}

type mqConfigFields MQConfig // no methods: prints field by field

// Format prints the configuration with the URL's password redacted, for
// every verb.
func (m MQConfig) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, "worker.MQConfig", "worker.mqConfigFields", mqConfigFields(m.redacted()))
}

// String returns the configuration with the URL's password redacted.
func (m MQConfig) String() string { return fmt.Sprint(m) }

// GoString returns the configuration as Go syntax with the URL's password redacted.
func (m MQConfig) GoString() string { return fmt.Sprintf("%#v", m) }

// MarshalJSON encodes the configuration with the URL's password redacted.
func (m MQConfig) MarshalJSON() ([]byte, error) { return json.Marshal(mqConfigFields(m.redacted())) }

// LogValue logs the configuration with the URL's password redacted.
func (m MQConfig) LogValue() slog.Value {
	r := m.redacted()
	return slog.GroupValue(slog.String("url", r.URL), slog.Int("consumers", r.Consumers),
		slog.Int("prefetch", r.Prefetch), slog.Duration("publish_timeout", r.PublishTimeout))
}

type configFields Config // no methods: prints field by field

func (c Config) redacted() Config {
	c.MQ = c.MQ.redacted()
	return c
}

// Format prints the configuration with every password redacted, for every verb.
func (c Config) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, "worker.Config", "worker.configFields", configFields(c.redacted()))
}

// String returns the configuration with every password redacted.
func (c Config) String() string { return fmt.Sprint(c) }

// GoString returns the configuration as Go syntax with every password redacted.
func (c Config) GoString() string { return fmt.Sprintf("%#v", c) }

// configView is what the JSON and slog forms of a Config show: its settings,
// without the host's objects (logger, provider, keyring, clock, callbacks).
type configView struct {
	Role                    Role        `json:"role"`
	MQ                      MQConfig    `json:"mq"`
	Store                   any         `json:"store"`
	Topology                Topology    `json:"topology"`
	Concurrency             int         `json:"concurrency"`
	HandlerTimeout          string      `json:"handler_timeout"`
	Retry                   RetryPolicy `json:"retry"`
	MaxPayloadBytes         int         `json:"max_payload_bytes"`
	ShutdownTimeout         string      `json:"shutdown_timeout"`
	DeferredInterval        string      `json:"deferred_interval"`
	Cloud                   string      `json:"cloud,omitempty"`
	DeletionGrace           string      `json:"deletion_grace"`
	JobCheckInterval        string      `json:"job_check_interval"`
	JobTimeout              string      `json:"job_timeout"`
	LaunchConsistencyWindow string      `json:"launch_consistency_window"`
	SourceCIDR              string      `json:"source_cidr,omitempty"`
	AllowAnySource          bool        `json:"allow_any_source,omitempty"`
	ManagementPort          int         `json:"management_port"`
	Keyring                 bool        `json:"keyring"`
	CredentialCacheTTL      string      `json:"credential_cache_ttl"`
	GuestLogsInterval       string      `json:"guest_logs_interval,omitempty"`
}

func (c Config) view() configView {
	v := configView{
		Role: c.Role, MQ: c.MQ.redacted(), Store: c.Store, Topology: c.Topology, Concurrency: c.Concurrency,
		HandlerTimeout: c.HandlerTimeout.String(), Retry: c.Retry, MaxPayloadBytes: c.MaxPayloadBytes,
		ShutdownTimeout: c.ShutdownTimeout.String(), DeferredInterval: c.DeferredInterval.String(),
		DeletionGrace: c.DeletionGrace.String(), JobCheckInterval: c.JobCheckInterval.String(),
		JobTimeout: c.JobTimeout.String(), LaunchConsistencyWindow: c.LaunchConsistencyWindow.String(),
		AllowAnySource: c.AllowAnySource, ManagementPort: c.ManagementPort, Keyring: c.Keyring != nil,
		CredentialCacheTTL: c.CredentialCacheTTL.String(),
	}
	if c.Cloud != nil {
		v.Cloud = fmt.Sprintf("%T", c.Cloud)
	}
	if c.SourceCIDR.IsValid() {
		v.SourceCIDR = c.SourceCIDR.String()
	}
	if c.GuestLogs.enabled() {
		v.GuestLogsInterval = c.GuestLogs.Interval.String()
	}
	return v
}

// MarshalJSON encodes the configuration's settings with every password
// redacted; the host's objects (logger, provider, keyring, clock) are left
// out, a provider shown by its type.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.view()) }

// LogValue logs the main settings with every password redacted.
func (c Config) LogValue() slog.Value {
	v := c.view()
	return slog.GroupValue(
		slog.String("role", string(v.Role)), slog.Any("mq", v.MQ), slog.Any("store", c.Store),
		slog.String("prefix", c.Topology.Prefix), slog.Int("concurrency", v.Concurrency),
		slog.String("handler_timeout", v.HandlerTimeout), slog.String("shutdown_timeout", v.ShutdownTimeout),
		slog.String("source_cidr", v.SourceCIDR), slog.Bool("keyring", v.Keyring),
	)
}

// formatRedacted prints v (a method-less copy of a configuration, already
// redacted) with the verb and flags of f, naming the type as the public one.
func formatRedacted(f fmt.State, verb rune, public, plain string, v any) {
	s := fmt.Sprintf(fmt.FormatString(f, verb), v)
	if verb == 'v' && f.Flag('#') {
		s = strings.Replace(s, plain, public, 1)
	}
	_, _ = io.WriteString(f, s)
}

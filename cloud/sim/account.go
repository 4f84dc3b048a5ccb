package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/km"
)

// AccountSettings are the settings of an account of provider type "sim" in
// the account registry: a simulated cloud of its own, built when the
// account is first polled (and again when its entry or credential changes,
// which starts it afresh).
type AccountSettings struct {
	// Servers is how many RUNNING servers the account starts with
	// ("server-1", "server-2", …). Default 0.
	Servers int `json:"servers,omitempty"`
	// Resources is how many resources of each kind beyond servers,
	// firewalls and budgets the account starts with (Config.Resources).
	// Default 0.
	Resources int `json:"resources,omitempty"`
	// Seed, LaunchDelay, TerminateDelay and ConsistencyDelay are those of
	// Config; durations are strings such as "30s".
	Seed             int64  `json:"seed,omitempty"`
	LaunchDelay      string `json:"launch_delay,omitempty"`
	TerminateDelay   string `json:"terminate_delay,omitempty"`
	ConsistencyDelay string `json:"consistency_delay,omitempty"`
	// CredentialSHA256, when set, makes the account log in as a real cloud
	// does: its credential must have a km.FieldSecretKey whose SHA-256 is
	// this (hex), or building the provider fails with an error matching
	// cloud.ErrAuthentication.
	CredentialSHA256 string `json:"credential_sha256,omitempty"`
}

// maxAccountServers bounds AccountSettings.Servers, maxAccountResources
// AccountSettings.Resources.
const (
	maxAccountServers   = 100_000
	maxAccountResources = 10_000
)

// ParseAccountSettings decodes settings strictly: unknown fields, bad
// durations and out-of-range counts are errors naming the setting, matching
// accounts.ErrInvalid.
func ParseAccountSettings(raw json.RawMessage) (AccountSettings, Config, error) {
	var s AccountSettings
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return s, Config{}, fmt.Errorf("%w: sim settings: %w", accounts.ErrInvalid, err)
		}
	}
	cfg := Config{Seed: s.Seed, Resources: s.Resources}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"launch_delay", s.LaunchDelay, &cfg.LaunchDelay}, {"terminate_delay", s.TerminateDelay, &cfg.TerminateDelay},
		{"consistency_delay", s.ConsistencyDelay, &cfg.ConsistencyDelay}} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil || v < 0 {
			return s, Config{}, &accounts.FieldError{Field: "settings." + d.name, Value: d.in, Problem: "is not a duration such as \"30s\""}
		}
		*d.out = v
	}
	if s.Servers < 0 || s.Servers > maxAccountServers {
		return s, Config{}, &accounts.FieldError{Field: "settings.servers", Value: fmt.Sprint(s.Servers),
			Problem: fmt.Sprintf("must be between 0 and %d", maxAccountServers)}
	}
	if s.Resources < 0 || s.Resources > maxAccountResources {
		return s, Config{}, &accounts.FieldError{Field: "settings.resources", Value: fmt.Sprint(s.Resources),
			Problem: fmt.Sprintf("must be between 0 and %d", maxAccountResources)}
	}
	if h := s.CredentialSHA256; h != "" {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
			return s, Config{}, &accounts.FieldError{Field: "settings.credential_sha256", Value: h, Problem: "is not a hex SHA-256"}
		}
	}
	return s, cfg, cfg.Validate()
}

// CheckAccountSettings validates the settings of a "sim" account of the
// registry (see ParseAccountSettings).
func CheckAccountSettings(raw json.RawMessage) error {
	_, _, err := ParseAccountSettings(raw)
	return err
}

// NewAccountProvider builds the provider of an account of the built-in
// provider type "sim" of the account registry: a simulated cloud of its own
// (see AccountSettings), for demos and tests of the registry itself. The
// worker registers it as "sim".
func NewAccountProvider(_ context.Context, a accounts.Account, cred *km.Credential) (cloud.Provider, error) {
	s, cfg, err := ParseAccountSettings(a.Settings)
	if err != nil {
		return nil, err
	}
	if s.CredentialSHA256 != "" {
		if cred == nil {
			return nil, fmt.Errorf("%w: sim account %q needs a credential", cloud.ErrAuthentication, a.ID)
		}
		want, _ := hex.DecodeString(s.CredentialSHA256)
		var ok bool
		_ = cred.Field(km.FieldSecretKey).Use(func(b []byte) error {
			got := sha256.Sum256(b)
			ok = subtle.ConstantTimeCompare(got[:], want) == 1
			return nil
		})
		if !ok {
			return nil, fmt.Errorf("%w: sim account %q: the credential's %s was refused", cloud.ErrAuthentication, a.ID, km.FieldSecretKey)
		}
	}
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.AddAccount(a.ID); err != nil {
		return nil, err
	}
	for i := 1; i <= s.Servers; i++ {
		if _, err := c.AddServer(a.ID, cloud.Server{ID: fmt.Sprintf("server-%d", i), Name: fmt.Sprintf("server-%d", i),
			State: cloud.StateRunning}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

package vsphere

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func validConfig() Config {
	return Config{
		URL:      "https://vcenter.example.com/sdk",
		Username: "svc",
		Password: NewSecret(testPassword),
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" = valid
	}{
		{"Valid", func(*Config) {}, ""},
		{"ValidHostOnlyURL", func(c *Config) { c.URL = "https://vc.example.com" }, ""},
		{"ValidHTTPWhenInsecure", func(c *Config) { c.URL, c.Insecure = "http://127.0.0.1:8989/sdk", true }, ""},
		{"MissingURL", func(c *Config) { c.URL = "" }, "URL"},
		{"BadURL", func(c *Config) { c.URL = "https://[::1" }, "URL"},
		{"CredentialsInURL", func(c *Config) { c.URL = "https://admin:" + testPassword + "@vc.example.com/sdk" }, "URL"},
		{"PlainHTTP", func(c *Config) { c.URL = "http://vc.example.com/sdk" }, "URL"},
		{"BadScheme", func(c *Config) { c.URL = "ftp://vc.example.com/sdk" }, "URL"},
		{"NoHost", func(c *Config) { c.URL = "https:///sdk" }, "URL"},
		{"MissingUsername", func(c *Config) { c.Username = "" }, "Username"},
		{"MissingPassword", func(c *Config) { c.Password = Secret{} }, "Password"},
		{"NegativeTimeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout"},
		{"EmptyTemplate", func(c *Config) { c.Templates = map[string]string{"ubuntu": ""} }, `Templates["ubuntu"]`},
		{"EmptyImageName", func(c *Config) { c.Templates = map[string]string{"": "t"} }, "Templates"},
		{"ZeroCPUs", func(c *Config) { c.Sizes = map[string]Size{"s": {CPUs: 0, MemoryMB: 1024}} }, `Sizes["s"].CPUs`},
		{"OddMemory", func(c *Config) { c.Sizes = map[string]Size{"s": {CPUs: 1, MemoryMB: 1023}} }, `Sizes["s"].MemoryMB`},
		{"ValidDatacenters", func(c *Config) { c.Datacenters = []string{"DC0", "/Europe/FRA"} }, ""},
		{"DatacenterAndDatacenters", func(c *Config) { c.Datacenter, c.Datacenters = "DC0", []string{"DC1"} }, "Datacenter"},
		{"EmptyDatacentersEntry", func(c *Config) { c.Datacenters = []string{"DC0", ""} }, "Datacenters[1]"},
		{"DuplicateDatacenters", func(c *Config) { c.Datacenters = []string{"DC0", "DC0"} }, "Datacenters[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), tc.field+" ")
			require.NotContains(t, err.Error(), testPassword)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.URL = "https://vc.example.com:8443"
	d := c.withDefaults()
	require.Equal(t, DefaultTimeout, d.Timeout)
	require.Equal(t, "vc.example.com:8443", d.Account)
	u, err := d.parseURL()
	require.NoError(t, err)
	require.Equal(t, "/sdk", u.Path)
	require.NotNil(t, d.Logger)
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	c := validConfig()
	s := c.Password
	require.Equal(t, testPassword, s.Reveal())

	for _, v := range []any{s, &s, c, &c} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3s"} {
			out := fmt.Sprintf(verb, v)
			require.NotContains(t, out, testPassword, "verb %s on %T", verb, v)
			require.NotContains(t, out, fmt.Sprintf("%x", testPassword), "verb %s on %T", verb, v)
		}
	}
	b, err := json.Marshal(c)
	require.NoError(t, err)
	require.NotContains(t, string(b), testPassword)
	require.Contains(t, string(b), `"Password":"[REDACTED]"`)

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "password", s, "config", c)
	require.NotContains(t, buf.String(), testPassword)

	t.Run("DecodesFromText", func(t *testing.T) {
		var got struct{ Password Secret }
		require.NoError(t, json.Unmarshal([]byte(`{"Password":"from-file"}`), &got))
		require.Equal(t, "from-file", got.Password.Reveal())
		require.Error(t, json.Unmarshal(b, &got), "the redacted form is refused, not taken as the password")
	})
	require.True(t, Secret{}.IsZero())
	require.True(t, NewSecret("").IsZero())
}

// diffT is a require.TestingT that keeps the failure message.
type diffT struct{ msg strings.Builder }

func (d *diffT) Errorf(format string, args ...any) { fmt.Fprintf(&d.msg, format, args...) }
func (d *diffT) FailNow()                          {}

// TestSecretDiffShowsNoText: a testify failure diff of two configs, which
// walks every field by reflection, shows no byte of either password.
func TestSecretDiffShowsNoText(t *testing.T) {
	t.Parallel()
	a, b := validConfig(), validConfig()
	b.Password = NewSecret(testPassword + "-other")
	b.Username = "someone-else"
	var d diffT
	require.Equal(&d, a, b)
	require.Contains(t, d.msg.String(), "someone-else", "testify printed its diff")
	require.NotContains(t, d.msg.String(), testPassword)
	d = diffT{}
	require.Equal(&d, struct{ p Secret }{a.Password}, struct{ p Secret }{b.Password})
	require.NotContains(t, d.msg.String(), testPassword)
	require.NotContains(t, fmt.Sprintf("%#v", struct{ p Secret }{a.Password}), testPassword)
}

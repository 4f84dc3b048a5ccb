package vsphere

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseSettings(t *testing.T) {
	t.Parallel()
	const full = `{
		"url": "https://vc.example.com/sdk", "insecure": true, "ca_file": "/etc/ca.pem", "timeout": "30s",
		"datacenters": ["DC0", "/Europe/FRA"], "launch_datacenter": "DC0",
		"folder": "/DC0/vm/workers", "resource_pool": "/DC0/host/C1/Resources", "datastore": "ds1",
		"templates": {"debian-13": "/DC0/vm/tmpl/debian-13"},
		"sizes": {"small": {"cpus": 2, "memory_mb": 2048}}
	}`
	want := Settings{
		URL: "https://vc.example.com/sdk", Insecure: true, CAFile: "/etc/ca.pem", Timeout: Duration(30 * time.Second),
		Datacenters: []string{"DC0", "/Europe/FRA"}, LaunchDatacenter: "DC0",
		Folder: "/DC0/vm/workers", ResourcePool: "/DC0/host/C1/Resources", Datastore: "ds1",
		Templates: map[string]string{"debian-13": "/DC0/vm/tmpl/debian-13"},
		Sizes:     map[string]Size{"small": {CPUs: 2, MemoryMB: 2048}},
	}
	got, err := ParseSettings(json.RawMessage(full))
	require.NoError(t, err)
	require.Equal(t, want, got)

	t.Run("RoundTrip", func(t *testing.T) {
		b, err := json.Marshal(got)
		require.NoError(t, err)
		require.Contains(t, string(b), `"timeout":"30s"`)
		again, err := ParseSettings(b)
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
	t.Run("Minimal", func(t *testing.T) {
		s, err := ParseSettings(json.RawMessage(` {"url": "https://vc.example.com"} `))
		require.NoError(t, err)
		require.Equal(t, Settings{URL: "https://vc.example.com"}, s)
	})

	for _, tc := range []struct {
		name string
		raw  string
		want string // in the error
		hide string // never in the error
	}{
		{"Empty", ``, "empty", ""},
		{"Null", `null`, "empty", ""},
		{"NotAnObject", `["https://vc"]`, "want a JSON object", ""},
		{"TrailingData", `{"url":"https://vc"} {}`, "trailing data", ""},
		{"DuplicateField", `{"url":"https://a","url":"https://b"}`, `field "url" is given twice`, ""},
		{"DuplicateNestedField", `{"url":"https://a","sizes":{"s":{"cpus":1,"cpus":2}}}`, `field "sizes.s.cpus" is given twice`, ""},
		{"DuplicateInArray", `{"url":"https://a","datacenters":[{"a":1,"a":2}]}`, `field "datacenters.a" is given twice`, ""},
		{"UnknownField", `{"url":"https://vc","datacentre":"DC0"}`, `unknown field "datacentre" (known: ca_file, datacenter,`, ""},
		{"Password", `{"url":"https://vc","password":"hunter2-x"}`, `field "password" looks like a credential: credentials come from km`, "hunter2-x"},
		{"PasswordCase", `{"url":"https://vc","Password":"hunter2-x"}`, `credentials come from km`, "hunter2-x"},
		{"PrefixedPassword", `{"url":"https://vc","vcenter_password":"hunter2-x"}`, `credentials come from km`, "hunter2-x"},
		{"Secret", `{"url":"https://vc","client-secret":{"v":"hunter2-x"}}`, `credentials come from km`, "hunter2-x"},
		{"Token", `{"url":"https://vc","api_token":"hunter2-x"}`, `credentials come from km`, "hunter2-x"},
		{"Credentials", `{"url":"https://vc","credentials":["hunter2-x"]}`, `credentials come from km`, "hunter2-x"},
		{"Username", `{"url":"https://vc","username":"admin"}`, `field "username" looks like a credential`, ""},
		{"User", `{"url":"https://vc","user":"admin"}`, `field "user" looks like a credential`, ""},
		{"Pwd", `{"url":"https://vc","pwd":"hunter2-x"}`, `credentials come from km`, "hunter2-x"},
		{"MissingURL", `{"insecure":true}`, `field url is required`, ""},
		{"URLWithCredentials", `{"url":"https://admin:hunter2-x@vc/sdk"}`, `field url must not contain credentials`, "hunter2-x"},
		{"URLNotAString", `{"url":{"password":"hunter2-x"}}`, `field "url": want a string, got a JSON object`, "hunter2-x"},
		{"InsecureNotBool", `{"url":"https://vc","insecure":"yes"}`, `field "insecure" value "yes": want true or false, got a JSON string`, ""},
		{"TimeoutNotADuration", `{"url":"https://vc","timeout":"5 minutes"}`, `field "timeout" value "5 minutes": "5 minutes" is not a duration`, ""},
		{"TimeoutNumber", `{"url":"https://vc","timeout":30}`, `field "timeout" value 30: want a duration string`, ""},
		{"TimeoutNegative", `{"url":"https://vc","timeout":"-1s"}`, `field timeout must not be negative, got -1s`, ""},
		{"DatacentersNotArray", `{"url":"https://vc","datacenters":"DC0"}`, `field "datacenters" value "DC0": want an array, got a JSON string`, ""},
		{"DatacentersEmptyEntry", `{"url":"https://vc","datacenters":["DC0",""]}`, `field datacenters[1] is empty`, ""},
		{"DatacenterAndDatacenters", `{"url":"https://vc","datacenter":"DC0","datacenters":["DC1"]}`, `field datacenter "DC0" and Datacenters ["DC1"] are both set`, ""},
		{"SizeUnknownField", `{"url":"https://vc","sizes":{"s":{"cpu":2}}}`, `field "sizes": json: unknown field "cpu"`, ""},
		{"SizeCPUsNotInteger", `{"url":"https://vc","sizes":{"s":{"cpus":"two"}}}`, `field "sizes": want an integer`, ""},
		{"SizeZeroCPUs", `{"url":"https://vc","sizes":{"Sizes":{"cpus":0,"memory_mb":512}}}`, `field sizes["Sizes"].cpus must be at least 1, got 0`, ""},
		{"SizeOddMemory", `{"url":"https://vc","sizes":{"s":{"cpus":1,"memory_mb":3}}}`, `field sizes["s"].memory_mb must be a positive multiple of 4`, ""},
		{"TemplateEmpty", `{"url":"https://vc","templates":{"debian":""}}`, `field templates["debian"] is empty`, ""},
		{"LongValueShortened", `{"url":"https://vc","insecure":"` + strings.Repeat("a", 100) + `"}`, `value "` + strings.Repeat("a", 63) + `…: want true or false`, strings.Repeat("a", 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSettings(json.RawMessage(tc.raw))
			require.ErrorIs(t, err, ErrInvalidSettings)
			require.ErrorContains(t, err, tc.want)
			if tc.hide != "" {
				require.NotContains(t, err.Error(), tc.hide)
			}
		})
	}
}

func TestSettingsConfig(t *testing.T) {
	t.Parallel()
	s := Settings{
		URL: "https://vc.example.com/sdk", Timeout: Duration(time.Minute), Datacenters: []string{"DC1"},
		Templates: map[string]string{"a": "b"}, Sizes: map[string]Size{"s": {CPUs: 1, MemoryMB: 4}},
	}
	cfg := s.Config("acct-1", "svc@vsphere.local", NewSecret(testPassword))
	require.NoError(t, cfg.Validate())
	require.Equal(t, "acct-1", cfg.Account)
	require.Equal(t, "svc@vsphere.local", cfg.Username)
	require.Equal(t, testPassword, cfg.Password.Reveal())
	require.Equal(t, time.Minute, cfg.Timeout)
	require.Equal(t, []string{"DC1"}, cfg.Datacenters)
	cfg.Templates["a"], cfg.Sizes["t"], cfg.Datacenters[0] = "changed", Size{}, "DC9"
	require.Equal(t, "b", s.Templates["a"], "the Config has its own maps and slices")
	require.NotContains(t, s.Sizes, "t")
	require.Equal(t, "DC1", s.Datacenters[0])

	t.Run("NoSecretInSettingsJSON", func(t *testing.T) {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		require.NotContains(t, string(b), testPassword)
		require.NotContains(t, string(b), "svc@")
	})
}

func TestSettingsField(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"URL":                   "url",
		"Timeout":               "timeout",
		`Sizes["URL"].MemoryMB`: `sizes["URL"].memory_mb`,
		`Templates["a]b"]`:      `templates["a]b"]`,
		"Datacenters[3]":        "datacenters[3]",
		"LaunchDatacenter":      "launch_datacenter",
		"Datacenter":            "datacenter",
	} {
		require.Equal(t, want, settingsField(in), in)
	}
}

package vsphere

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalidSettings is wrapped by every error of [ParseSettings]; the
// message names the JSON field and, for scalars other than the URL, quotes
// the value.
var ErrInvalidSettings = errors.New("vsphere: invalid settings")

// Settings is the part of a [Config] an account registry stores: everything
// but the credentials (which come from km), the account id (the registry's
// key) and the logger (the host's). It marshals to and from JSON; read it
// with [ParseSettings], which is strict, and turn it into a Config with
// [Settings.Config]. Field meanings and defaults are those of Config.
//
//	{"url": "https://vcenter.example.com/sdk", "timeout": "30s",
//	 "datacenters": ["DC0", "DC1"], "launch_datacenter": "DC1",
//	 "templates": {"debian-13": "tmpl-debian-13"},
//	 "sizes": {"small": {"cpus": 2, "memory_mb": 2048}}}
type Settings struct {
	URL              string            `json:"url"`
	Insecure         bool              `json:"insecure,omitempty"`
	CAFile           string            `json:"ca_file,omitempty"`
	Timeout          Duration          `json:"timeout,omitempty"`
	Datacenter       string            `json:"datacenter,omitempty"`
	Datacenters      []string          `json:"datacenters,omitempty"`
	LaunchDatacenter string            `json:"launch_datacenter,omitempty"`
	Folder           string            `json:"folder,omitempty"`
	ResourcePool     string            `json:"resource_pool,omitempty"`
	Datastore        string            `json:"datastore,omitempty"`
	Templates        map[string]string `json:"templates,omitempty"`
	Sizes            map[string]Size   `json:"sizes,omitempty"`
}

// Duration is a time.Duration that is a string in JSON ("30s", "2m").
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a string that time.ParseDuration accepts.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a duration string such as "30s" or "2m"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`%q is not a duration (want e.g. "30s" or "2m")`, s)
	}
	*d = Duration(v)
	return nil
}

// Config returns the Config of these settings for account, logging in as
// username with password (both from km). The maps are copies.
func (s Settings) Config(account, username string, password Secret) Config {
	return Config{
		URL:              s.URL,
		Username:         username,
		Password:         password,
		Insecure:         s.Insecure,
		CAFile:           s.CAFile,
		Timeout:          time.Duration(s.Timeout),
		Datacenter:       s.Datacenter,
		Datacenters:      slices.Clone(s.Datacenters),
		LaunchDatacenter: s.LaunchDatacenter,
		Folder:           s.Folder,
		ResourcePool:     s.ResourcePool,
		Datastore:        s.Datastore,
		Templates:        maps.Clone(s.Templates),
		Sizes:            maps.Clone(s.Sizes),
		Account:          account,
	}
}

// settingsFields are the JSON fields of Settings, for the per-field decoding
// of ParseSettings.
var settingsFields = func() map[string]func(*Settings) any {
	return map[string]func(*Settings) any{
		"url":               func(s *Settings) any { return &s.URL },
		"insecure":          func(s *Settings) any { return &s.Insecure },
		"ca_file":           func(s *Settings) any { return &s.CAFile },
		"timeout":           func(s *Settings) any { return &s.Timeout },
		"datacenter":        func(s *Settings) any { return &s.Datacenter },
		"datacenters":       func(s *Settings) any { return &s.Datacenters },
		"launch_datacenter": func(s *Settings) any { return &s.LaunchDatacenter },
		"folder":            func(s *Settings) any { return &s.Folder },
		"resource_pool":     func(s *Settings) any { return &s.ResourcePool },
		"datastore":         func(s *Settings) any { return &s.Datastore },
		"templates":         func(s *Settings) any { return &s.Templates },
		"sizes":             func(s *Settings) any { return &s.Sizes },
	}
}()

// credentialWords mark a JSON key as a credential: settings never hold one.
var credentialWords = []string{
	"password", "passwd", "passphrase", "secret", "token", "credential",
	"apikey", "privatekey", "accesskey", "auth", "username",
}

// isCredentialKey reports whether a JSON key looks like a credential's.
func isCredentialKey(key string) bool {
	k := strings.ToLower(strings.NewReplacer("_", "", "-", "", ".", "", " ", "").Replace(key))
	switch k {
	case "pwd", "pass", "user", "login":
		return true
	}
	return slices.ContainsFunc(credentialWords, func(w string) bool { return strings.Contains(k, w) })
}

// ParseSettings decodes the settings of an account from JSON, strictly:
// unknown fields, values of the wrong type, duplicate fields and trailing
// data are refused, naming the field (and the value, for scalars). A key that
// looks like a credential (password, secret, token, username …) is refused
// without quoting its value: credentials come from km, never from settings.
// The result is then checked as [Config.Validate] checks a Config (with the
// credentials left out of the check). Errors match ErrInvalidSettings (and
// ErrInvalidConfig for the checks of Validate).
func ParseSettings(raw json.RawMessage) (Settings, error) {
	var s Settings
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return s, fmt.Errorf(`%w: empty: want a JSON object with at least "url"`, ErrInvalidSettings)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&fields); err != nil {
		return s, fmt.Errorf("%w: want a JSON object of settings: %v", ErrInvalidSettings, err)
	}
	if dec.More() {
		return s, fmt.Errorf("%w: trailing data after the settings object", ErrInvalidSettings)
	}
	if err := checkDuplicateKeys(raw); err != nil {
		return s, err
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		if isCredentialKey(key) {
			return s, fmt.Errorf("%w: field %q looks like a credential: credentials come from km (the account's credential), never from settings",
				ErrInvalidSettings, key)
		}
		field, ok := settingsFields[key]
		if !ok {
			return s, fmt.Errorf("%w: unknown field %q (known: %s)", ErrInvalidSettings, key,
				strings.Join(slices.Sorted(maps.Keys(settingsFields)), ", "))
		}
		d := json.NewDecoder(bytes.NewReader(fields[key]))
		d.DisallowUnknownFields()
		if err := d.Decode(field(&s)); err != nil {
			return s, fmt.Errorf("%w: field %q%s: %s", ErrInvalidSettings, key, quoteValue(key, fields[key]), decodeReason(err))
		}
	}
	// Validate everything but the credentials, which the registry adds.
	cfg := s.Config("settings", "user-from-km", NewSecret("password-from-km"))
	if err := cfg.Validate(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return s, fmt.Errorf("%w: field %s %s (%w)", ErrInvalidSettings, settingsField(fe.field), fe.msg, ErrInvalidConfig)
		}
		return s, fmt.Errorf("%w: %w", ErrInvalidSettings, err)
	}
	return s, nil
}

// settingsField spells a Config field path in the JSON names of Settings:
// `Sizes["s"].MemoryMB` is `sizes["s"].memory_mb`. Map keys in brackets are
// kept as they are.
func settingsField(field string) string {
	var b strings.Builder
	for field != "" {
		i := strings.IndexByte(field, '[')
		if i < 0 {
			b.WriteString(settingsNames.Replace(field))
			break
		}
		b.WriteString(settingsNames.Replace(field[:i]))
		end := strings.IndexByte(field[i:], ']') // [3]
		if strings.HasPrefix(field[i+1:], `"`) { // ["key"]
			if q, err := strconv.QuotedPrefix(field[i+1:]); err == nil {
				end = 1 + len(q)
			}
		}
		if end < 0 || i+end >= len(field) {
			b.WriteString(field[i:])
			break
		}
		b.WriteString(field[i : i+end+1])
		field = field[i+end+1:]
	}
	return b.String()
}

var settingsNames = strings.NewReplacer(
	"URL", "url", "CAFile", "ca_file", "Timeout", "timeout",
	"LaunchDatacenter", "launch_datacenter", "Datacenters", "datacenters", "Datacenter", "datacenter",
	"Folder", "folder", "ResourcePool", "resource_pool", "Datastore", "datastore",
	"Templates", "templates", "Sizes", "sizes", ".CPUs", ".cpus", ".MemoryMB", ".memory_mb",
)

// quoteValue returns ` value "…"` for a scalar value, shortened, or "" for
// objects, arrays and the URL (which may carry user information).
func quoteValue(key string, v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if key == "url" || len(v) == 0 || v[0] == '{' || v[0] == '[' {
		return ""
	}
	const maxLen = 64
	s := string(v)
	if len(s) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return " value " + s
}

// decodeReason says why a field's value did not decode, without echoing
// values from objects.
func decodeReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		where := ""
		if te.Field != "" {
			where = " at " + te.Field
		}
		return fmt.Sprintf("want %s%s, got a JSON %s", jsonKind(te.Type.Kind().String()), where, te.Value)
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return goKind
}

// checkDuplicateKeys refuses an object, at any depth, with a key twice:
// encoding/json would silently keep the last.
func checkDuplicateKeys(raw json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := walkJSON(dec, ""); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSettings, err)
	}
	return nil
}

// walkJSON reads one JSON value from dec, failing on a duplicate key; at
// names the value for the error ("" at the top, then "sizes", "sizes.s" …).
func walkJSON(dec *json.Decoder, at string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			field := key
			if at != "" {
				field = at + "." + key
			}
			if seen[key] {
				return fmt.Errorf("field %q is given twice", field)
			}
			seen[key] = true
			if err := walkJSON(dec, field); err != nil {
				return err
			}
		}
		_, err = dec.Token() // }
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walkJSON(dec, at); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ]
		return err
	}
	return nil
}

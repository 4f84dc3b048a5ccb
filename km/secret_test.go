package km_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/km"
)

var allVerbs = []string{
	"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "% x", "%#x", "%d", "%o", "%O", "%b", "%c", "%U",
	"%e", "%E", "%f", "%F", "%g", "%G", "%t", "%10s", "%-12v", "%08x", "%.3s", "%T", "%p", "%w", "%z",
}

func TestSecretFormatting(t *testing.T) {
	t.Parallel()
	s := km.NewSecretString(canary)
	type exported struct{ S km.Secret }
	type unexported struct{ s km.Secret }
	values := map[string]any{
		"Value":            s,
		"Pointer":          &s,
		"Slice":            []km.Secret{s, s},
		"Map":              map[string]km.Secret{"k": s},
		"ExportedField":    exported{S: s},
		"UnexportedField":  unexported{s: s},
		"PointerToStruct":  &exported{S: s},
		"Interface":        any(s),
		"NestedInSliceAny": []any{1, s},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, verb := range allVerbs {
				out := fmt.Sprintf(verb, v)
				requireNoLeak(t, out, canary, "fmt "+verb)
			}
		})
	}
	t.Run("EveryVerbPrintsRedacted", func(t *testing.T) {
		t.Parallel()
		for _, verb := range allVerbs {
			out := fmt.Sprintf(verb, s)
			switch verb {
			case "%T":
				require.Equal(t, "km.Secret", out)
			case "%p", "%w":
				// fmt reports a bad verb by printing the value reflectively,
				// without calling methods: the Secret's internal pointer shows,
				// never its bytes.
				require.Regexp(t, `^%!`+verb[1:]+`\(km\.Secret=\{0x[0-9a-f]+\}\)$`, out)
			default:
				require.Equal(t, km.Redacted, out, "verb %s", verb)
			}
		}
		require.Equal(t, km.Redacted, s.String())
		require.Equal(t, km.Redacted, s.GoString())
		require.Equal(t, km.Redacted, fmt.Sprint(s))
		require.Equal(t, km.Redacted, fmt.Sprintln(s)[:len(km.Redacted)])
	})
}

func TestSecretEncoders(t *testing.T) {
	t.Parallel()
	s := km.NewSecretString(canary)
	cases := []struct {
		name string
		out  func() (string, error)
		want string // "" = only check for leaks
	}{
		{"JSONMarshal", func() (string, error) { b, err := json.Marshal(s); return string(b), err }, `"[REDACTED]"`},
		{"JSONStruct", func() (string, error) {
			b, err := json.Marshal(struct {
				S km.Secret
				P *km.Secret
			}{s, &s})
			return string(b), err
		}, `{"S":"[REDACTED]","P":"[REDACTED]"}`},
		{"JSONMapKeyValue", func() (string, error) {
			b, err := json.Marshal(map[string]km.Secret{"a": s})
			return string(b), err
		}, `{"a":"[REDACTED]"}`},
		{"MarshalText", func() (string, error) { b, err := s.MarshalText(); return string(b), err }, km.Redacted},
		{"ErrorfV", func() (string, error) { return fmt.Errorf("%v", s).Error(), nil }, km.Redacted},
		{"ErrorfWrapped", func() (string, error) {
			return fmt.Errorf("outer: %w", fmt.Errorf("inner %s %q %x", s, s, s)).Error(), nil
		}, "outer: inner [REDACTED] [REDACTED] [REDACTED]"},
		{"ErrorsJoin", func() (string, error) {
			return errors.Join(fmt.Errorf("a %+v", s), fmt.Errorf("b %#v", s)).Error(), nil
		}, "a [REDACTED]\nb [REDACTED]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := tc.out()
			require.NoError(t, err)
			requireNoLeak(t, out, canary, tc.name)
			if tc.want != "" {
				require.Equal(t, tc.want, out)
			}
		})
	}
}

func TestSecretSlog(t *testing.T) {
	t.Parallel()
	s := km.NewSecretString(canary)
	cred := cloudCred("acme", "123", "default", canary)
	handlers := map[string]func(*syncBuffer) slog.Handler{
		"JSONHandler": func(b *syncBuffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"TextHandler": func(b *syncBuffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	}
	for name, mk := range handlers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var buf syncBuffer
			log := slog.New(mk(&buf))
			log.Info("secret", "s", s, "p", &s, "slice", []km.Secret{s}, "struct", struct{ S km.Secret }{s})
			log.Info("credential", "cred", cred, "ptr", &cred, "creds", []km.Credential{cred})
			log.With("s", s).WithGroup("g").Info("grouped", slog.Any("s", s), slog.String("str", s.String()))
			log.Error("error", "err", fmt.Errorf("failed with %v", s))
			out := buf.String()
			requireNoLeak(t, out, canary, name)
			require.Contains(t, out, km.Redacted)
			require.Contains(t, out, "secret_key") // field names are logged
		})
	}
}

func TestSecretAccess(t *testing.T) {
	t.Parallel()
	t.Run("RevealReturnsCopy", func(t *testing.T) {
		t.Parallel()
		src := []byte("hunter2")
		s := km.NewSecret(src)
		clear(src) // the Secret holds its own copy
		b := s.Reveal()
		require.Equal(t, "hunter2", string(b))
		b[0] = 'X'
		require.Equal(t, "hunter2", string(s.Reveal()))
		require.Equal(t, 7, s.Len())
	})
	t.Run("UseZeroesTheCopy", func(t *testing.T) {
		t.Parallel()
		s := km.NewSecretString("hunter2")
		var seen []byte
		err := s.Use(func(b []byte) error {
			require.Equal(t, "hunter2", string(b))
			seen = b
			return errors.New("boom")
		})
		require.EqualError(t, err, "boom")
		require.Equal(t, make([]byte, 7), seen)
		require.Equal(t, "hunter2", string(s.Reveal()))
	})
	t.Run("DestroyWipesAllCopies", func(t *testing.T) {
		t.Parallel()
		s := km.NewSecretString("hunter2")
		cp := s
		clone := s.Clone()
		s.Destroy()
		s.Destroy() // idempotent
		require.True(t, s.IsZero())
		require.True(t, cp.IsZero())
		require.Nil(t, cp.Reveal())
		require.Equal(t, "hunter2", string(clone.Reveal()))
	})
	t.Run("Equal", func(t *testing.T) {
		t.Parallel()
		require.True(t, km.NewSecretString("a").Equal(km.NewSecretString("a")))
		require.False(t, km.NewSecretString("a").Equal(km.NewSecretString("b")))
		require.True(t, km.Secret{}.Equal(km.NewSecret(nil)))
	})
	t.Run("DecodingRefused", func(t *testing.T) {
		t.Parallel()
		var v struct{ S km.Secret }
		err := json.Unmarshal([]byte(`{"S":"`+canary+`"}`), &v)
		require.ErrorIs(t, err, km.ErrInvalid)
		requireNoLeak(t, err.Error(), canary, "error")
		var s km.Secret
		require.ErrorIs(t, s.UnmarshalText([]byte(canary)), km.ErrInvalid)
		require.True(t, s.IsZero())
	})
	t.Run("ConcurrentUseAndDestroy", func(t *testing.T) {
		t.Parallel()
		s := km.NewSecretString("hunter2")
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range 100 {
				_ = s.Reveal()
				_ = s.Len()
			}
		}()
		s.Destroy()
		<-done
	})
}

func TestCredentialPrinting(t *testing.T) {
	t.Parallel()
	cred := cloudCred("acme", "123456", "default", canary)
	for _, verb := range allVerbs {
		for _, v := range []any{cred, &cred, []km.Credential{cred}, map[string]km.Credential{"x": cred}} {
			requireNoLeak(t, fmt.Sprintf(verb, v), canary, "fmt "+verb)
		}
	}
	require.Equal(t, `credential acme/123456/default (provider "aws", kind "cloud"; fields: access_key_id=[REDACTED] secret_key=[REDACTED])`, cred.String())
	require.Equal(t, cred.String(), fmt.Sprintf("%+v", cred))
	require.Contains(t, fmt.Sprintf("%#v", cred), `"secret_key":[REDACTED]`)
	b, err := json.Marshal(cred)
	require.NoError(t, err)
	requireNoLeak(t, string(b), canary, "json")
	require.Contains(t, string(b), `"fields":{"access_key_id":"[REDACTED]","secret_key":"[REDACTED]"}`)

	var back km.Credential
	require.ErrorIs(t, json.Unmarshal(b, &back), km.ErrInvalid, "a marshalled credential must not decode into [REDACTED] secrets")
}

func TestCredentialValidate(t *testing.T) {
	t.Parallel()
	long := string(make([]byte, km.MaxIDLen+1))
	cases := []struct {
		name   string
		mutate func(*km.Credential)
		field  string // expected in the message
	}{
		{"MissingCustomer", func(c *km.Credential) { c.Customer = "" }, "Customer"},
		{"MissingAccount", func(c *km.Credential) { c.Account = "" }, "Account"},
		{"MissingName", func(c *km.Credential) { c.Name = "" }, "Name"},
		{"LongName", func(c *km.Credential) { c.Name = long }, "Name"},
		{"BadKind", func(c *km.Credential) { c.Kind = "password" }, "Kind"},
		{"MissingKind", func(c *km.Credential) { c.Kind = "" }, "Kind"},
		{"NoFields", func(c *km.Credential) { c.Fields = nil }, "Fields"},
		{"EmptyFieldValue", func(c *km.Credential) { c.Fields["x"] = km.Secret{} }, "Fields"},
		{"EmptyFieldName", func(c *km.Credential) { c.Fields[""] = km.NewSecretString("v") }, "Fields"},
		{"EmptyMetaName", func(c *km.Credential) { c.Meta[""] = "v" }, "Meta"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := cloudCred("acme", "1", "default", canary)
			tc.mutate(&c)
			err := c.Validate()
			require.ErrorIs(t, err, km.ErrInvalid)
			require.Contains(t, err.Error(), tc.field)
			requireNoLeak(t, err.Error(), canary, "error")
		})
	}
	require.NoError(t, cloudCred("acme", "1", "default", canary).Validate())
}

// diffT is a require.TestingT that keeps the failure message.
type diffT struct{ msg strings.Builder }

func (d *diffT) Errorf(format string, args ...any) { fmt.Fprintf(&d.msg, format, args...) }
func (d *diffT) FailNow()                          {}

// reachable collects every string and byte slice that reflection can reach
// from v, through pointers, interfaces, structs (unexported fields too),
// slices, arrays and maps: what a reflection-based printer could print.
func reachable(v reflect.Value, seen map[uintptr]bool, out *strings.Builder) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		if v.Kind() == reflect.Pointer {
			if seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
		}
		reachable(v.Elem(), seen, out)
	case reflect.Struct:
		for i := range v.NumField() {
			reachable(v.Field(i), seen, out)
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			out.Write(v.Bytes())
			return
		}
		for i := range v.Len() {
			reachable(v.Index(i), seen, out)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			reachable(k, seen, out)
			reachable(v.MapIndex(k), seen, out)
		}
	case reflect.String:
		out.WriteString(v.String())
	}
}

// TestSecretUnreachableByReflection is the attack of issue 18 (point 5): a
// testify failure diff of two structs holding Secrets, fmt's %#v of an
// unexported field and a reflection walk of everything reachable show no
// secret byte.
func TestSecretUnreachableByReflection(t *testing.T) {
	t.Parallel()
	type holder struct {
		Name   string
		secret km.Secret
		Cred   km.Credential
	}
	a := holder{Name: "a", secret: km.NewSecretString(canary), Cred: cloudCred("acme", "1", "a", canary)}
	b := holder{Name: "b", secret: km.NewSecretString(canary + "-other"), Cred: cloudCred("acme", "1", "b", canary+"-other")}

	var d diffT
	require.Equal(&d, a, b)
	require.Contains(t, d.msg.String(), "Diff:", "testify printed its diff")
	requireNoLeak(t, d.msg.String(), canary, "testify's diff")
	d = diffT{}
	require.Equal(&d, &a, &b)
	requireNoLeak(t, d.msg.String(), canary, "testify's diff of pointers")

	for _, verb := range []string{"%#v", "%+v", "%v"} {
		requireNoLeak(t, fmt.Sprintf(verb, a), canary, "fmt "+verb)
		requireNoLeak(t, fmt.Sprintf(verb, struct{ s km.Secret }{a.secret}), canary, "fmt "+verb)
	}

	var walked strings.Builder
	reachable(reflect.ValueOf(&a), map[uintptr]bool{}, &walked)
	require.Contains(t, walked.String(), "eu-west-1", "the walk reaches ordinary fields")
	require.NotContains(t, walked.String(), "AKIA-a", "nor any secret field")
	requireNoLeak(t, walked.String(), canary, "a reflection walk")
	require.Equal(t, canary, string(a.secret.Reveal()))
}

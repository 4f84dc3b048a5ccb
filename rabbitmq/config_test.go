package rabbitmq

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stratusworks/worker/internal/testenv"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		text string
	}{
		{"NoURL", Config{}, "URL is required"},
		{"Unparsable", Config{URL: "amqp://u:hunter2@h:x/"}, "URL is not a parsable URL"},
		{"BadScheme", Config{URL: "http://u:hunter2@h/"}, `URL "http://u:xxxxx@h/": want amqp://`},
		{"NoHost", Config{URL: "amqp://u:hunter2@/"}, "want amqp://"},
		{"BadPrefetch", Config{URL: "amqp://h/", Prefetch: -1}, "Prefetch is -1, must be 1-65535"},
		{"PrefetchOver16Bits", Config{URL: "amqp://h/", Prefetch: 65536}, "Prefetch is 65536, must be 1-65535"},
		{"BadMaxInFlight", Config{URL: "amqp://h/", MaxInFlight: -1}, "MaxInFlight is -1"},
		{"NegativeReconnectInitial", Config{URL: "amqp://h/", ReconnectInitialInterval: -time.Second}, "ReconnectInitialInterval is -1s"},
		{"NegativeReconnectMax", Config{URL: "amqp://h/", ReconnectMaxInterval: -time.Second}, "ReconnectMaxInterval is -1s"},
		{"ReconnectMaxBelowInitial", Config{URL: "amqp://h/", ReconnectInitialInterval: time.Second, ReconnectMaxInterval: time.Millisecond},
			"ReconnectMaxInterval is 1ms, must be at least ReconnectInitialInterval (1s)"},
		{"NegativeDialTimeout", Config{URL: "amqp://h/", DialTimeout: -time.Second}, "DialTimeout is -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.text)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

// TestConfigDefaults: every zero value the docs call a default is valid,
// alone or beside any other field set, and becomes the documented value.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want func(Config) bool
	}{
		{"AllDefaults", Config{URL: "amqp://h/"}, func(c Config) bool {
			return c.PublishTimeout == 30*time.Second && c.Prefetch == 16 && c.MaxInFlight == 1 &&
				c.ReconnectInitialInterval == 100*time.Millisecond && c.ReconnectMaxInterval == 5*time.Second &&
				c.DialTimeout == 10*time.Second && c.Logger != nil && c.Headers == nil && c.DeadLetter == nil
		}},
		{"OnlyReconnectMaxShort", Config{URL: "amqp://h/", ReconnectMaxInterval: 50 * time.Millisecond}, func(c Config) bool {
			return c.ReconnectInitialInterval == 50*time.Millisecond && c.ReconnectMaxInterval == 50*time.Millisecond
		}},
		{"OnlyReconnectInitialLong", Config{URL: "amqp://h/", ReconnectInitialInterval: 10 * time.Second}, func(c Config) bool {
			return c.ReconnectInitialInterval == 10*time.Second && c.ReconnectMaxInterval == 10*time.Second
		}},
		{"NegativePublishTimeout", Config{URL: "amqp://h/", PublishTimeout: -1}, func(c Config) bool {
			return c.PublishTimeout == -1
		}},
		{"MaxInFlightAbovePrefetch", Config{URL: "amqp://h/", MaxInFlight: 100}, func(c Config) bool {
			return c.MaxInFlight == 100 && c.Prefetch == 16
		}},
		{"Amqps", Config{URL: "amqps://u:p@h:5671/vhost"}, func(Config) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tt.cfg.Validate())
			c := tt.cfg
			c.setDefaults()
			require.True(t, tt.want(c), "%+v", c)
		})
	}
}

const canary = "Canary7q2xPw" // a password that occurs nowhere else

// canaryConfig has every field set, function fields included.
func canaryConfig() Config {
	return Config{
		URL: "amqp://app:" + canary + "@broker.example:5672/prod", PublishTimeout: time.Second, Prefetch: 4, MaxInFlight: 2,
		Headers: func(string) bool { return true }, SendUUIDHeader: true,
		DeadLetter: func(q string) string { return q + ".dead" }, ReconnectInitialInterval: time.Millisecond,
		ReconnectMaxInterval: time.Second, DialTimeout: time.Second, Logger: slog.Default(),
	}
}

// TestConfigNeverShowsPassword: the URL's password appears in no
// formatter's output, for a Config, a pointer to one, and a struct holding
// one (or a pointer to one) in an exported field, with function fields set
// and not; and each output still shows the rest.
func TestConfigNeverShowsPassword(t *testing.T) {
	t.Parallel()
	type outer struct {
		Name string
		MQ   Config
	}
	type outerPtr struct {
		MQ *Config
	}
	full := canaryConfig()
	bare := Config{URL: "amqp://app:" + canary + "@broker.example:5672/prod"}
	subjects := map[string]any{
		"Value": full, "Pointer": &full, "Bare": bare,
		"Nested": outer{Name: "x", MQ: full}, "NestedPointer": outerPtr{MQ: &full}, "NestedInMap": map[string]Config{"mq": full},
		"NestedInSlice": []Config{bare, full},
	}
	formatters := map[string]func(v any) string{
		"%v":     func(v any) string { return fmt.Sprintf("%v", v) },
		"%+v":    func(v any) string { return fmt.Sprintf("%+v", v) },
		"%#v":    func(v any) string { return fmt.Sprintf("%#v", v) },
		"%s":     func(v any) string { return fmt.Sprintf("%s", v) },
		"%q":     func(v any) string { return fmt.Sprintf("%q", v) },
		"%d":     func(v any) string { return fmt.Sprintf("%d", v) },
		"Sprint": func(v any) string { return fmt.Sprint(v) },
		"json": func(v any) string {
			b, err := json.Marshal(v)
			require.NoError(t, err)
			return string(b)
		},
		"slogText": func(v any) string {
			var b bytes.Buffer
			slog.New(slog.NewTextHandler(&b, nil)).Info("cfg", "cfg", v)
			return b.String()
		},
		"slogJSON": func(v any) string {
			var b bytes.Buffer
			slog.New(slog.NewJSONHandler(&b, nil)).Info("cfg", "cfg", v)
			return b.String()
		},
		"slogTextWith": func(v any) string {
			var b bytes.Buffer
			slog.New(slog.NewTextHandler(&b, nil)).With("cfg", v).Info("x")
			return b.String()
		},
	}
	for sname, subject := range subjects {
		for fname, format := range formatters {
			t.Run(sname+"/"+fname, func(t *testing.T) {
				t.Parallel()
				out := format(subject)
				require.NotContains(t, out, canary)
				require.Contains(t, out, "broker.example", "the rest is still shown: %s", out)
			})
		}
	}
}

// TestConfigFormattersShowEveryField: every field of Config is in String,
// GoString, the JSON and the slog group (a field added later must be added
// to Config.fields, where its display is chosen).
func TestConfigFormattersShowEveryField(t *testing.T) {
	t.Parallel()
	cfg := canaryConfig()
	js, err := json.Marshal(cfg)
	require.NoError(t, err)
	var asMap map[string]any
	require.NoError(t, json.Unmarshal(js, &asMap))
	group := map[string]bool{}
	for _, a := range cfg.LogValue().Group() {
		group[a.Key] = true
	}
	typ := reflect.TypeFor[Config]()
	require.Len(t, cfg.fields(), typ.NumField())
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		require.Contains(t, cfg.String(), name+":", "String")
		require.Contains(t, cfg.GoString(), name+":", "GoString")
		require.Contains(t, asMap, name, "JSON")
		require.True(t, group[name], "slog %s", name)
	}
	require.Contains(t, cfg.String(), "Headers:set")
	require.Contains(t, Config{}.String(), "Headers:<nil>")
	require.True(t, strings.HasPrefix(cfg.GoString(), "rabbitmq.Config{URL:\"amqp://app:xxxxx@broker.example:5672/prod\""), cfg.GoString())
}

// TestPubSubNeverShowPassword: neither a Publisher nor a Subscriber keeps
// the password where fmt would print it, and errors of a failed dial never
// contain it, whether the broker is unreachable or refuses the login, the
// password plain or percent-encoded.
func TestPubSubNeverShowPassword(t *testing.T) {
	t.Parallel()
	t.Run("DialErrors", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{
			"amqp://app:" + canary + "@127.0.0.1:1/",
			"amqp://app:" + canary + "%40x@127.0.0.1:1/",
		} {
			_, err := NewPublisher(context.Background(), Config{URL: u, Logger: quiet()})
			require.ErrorIs(t, err, ErrNotConnected)
			require.Contains(t, err.Error(), "127.0.0.1:1")
			require.NotContains(t, err.Error(), canary)
			_, err = NewSubscriber(context.Background(), Config{URL: u, Logger: quiet()})
			require.ErrorIs(t, err, ErrNotConnected)
			require.NotContains(t, err.Error(), canary)
		}
	})
	t.Run("LoginRefused", func(t *testing.T) {
		t.Parallel()
		host := strings.TrimPrefix(testenv.AMQPURL(t), "amqp://")
		host = host[strings.LastIndex(host, "@")+1:]
		_, err := NewPublisher(context.Background(), Config{URL: "amqp://guest:" + canary + "@" + host, Logger: quiet()})
		require.ErrorIs(t, err, ErrNotConnected)
		require.NotContains(t, err.Error(), canary)
	})
	t.Run("Printed", func(t *testing.T) {
		t.Parallel()
		base := testenv.AMQPURL(t)
		// The canary needs a broker that accepts it: use the test broker's
		// own URL and check its password, which is at least as secret.
		cfg := Config{URL: base, Logger: quiet()}
		pub, sub := newPair(t, cfg)
		pw := rawPassword(base)
		require.NotEmpty(t, pw)
		for _, v := range []any{pub, sub} {
			for _, f := range []string{"%v", "%+v", "%#v"} {
				out := fmt.Sprintf(f, v)
				require.NotContains(t, out, ":"+pw+"@", f)
			}
		}
	})
}

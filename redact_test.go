package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/stratusworks/worker/persist"
	"github.com/stretchr/testify/require"
)

// TestConfigsNeverPrintSecrets passes a canary password through every way a
// configuration gets printed — fmt verbs, Sprint, JSON, slog text and JSON,
// top level and nested — and through the errors of a bad configuration:
// it must never appear.
func TestConfigsNeverPrintSecrets(t *testing.T) {
	t.Parallel()
	const canary = "Canary-7f3e9a"
	mq := MQConfig{URL: "amqp://app:" + canary + "@rabbit.example:5672/prod"}
	store := persist.Config{
		Provisioning: persist.DBConfig{Driver: persist.MySQL, DSN: "app:" + canary + "@tcp(db.example:3306)/prov"},
		Analytics:    persist.DBConfig{Driver: persist.MySQL, DSN: "app:" + canary + "@tcp(db.example:3306)/ana"},
	}
	cfg := Config{MQ: mq, Store: store, SourceCIDR: netip.MustParsePrefix("10.0.0.0/24")}
	type holder struct {
		Name string
		Cfg  Config
		MQ   MQConfig
		P    *Config
	}
	values := map[string]any{
		"Config": cfg, "*Config": &cfg, "MQConfig": mq, "*MQConfig": &mq,
		"nested": holder{Name: "h", Cfg: cfg, MQ: mq, P: &cfg},
	}
	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var outs []string
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3v"} {
				outs = append(outs, fmt.Sprintf(verb, v))
			}
			outs = append(outs, fmt.Sprint(v), fmt.Sprintln(v))
			j, err := json.Marshal(v)
			require.NoError(t, err)
			outs = append(outs, string(j))
			for _, h := range []func(*bytes.Buffer) slog.Handler{
				func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
				func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
			} {
				var b bytes.Buffer
				slog.New(h(&b)).Info("config", "cfg", v, slog.Group("g", "cfg", v))
				outs = append(outs, b.String())
			}
			for _, o := range outs {
				require.NotContains(t, o, canary)
			}
			require.Contains(t, fmt.Sprintf("%+v", v), "rabbit.example", "the redacted form keeps the host")
		})
	}
	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		bad := cfg
		bad.Concurrency = -1
		require.NotContains(t, bad.Validate().Error(), canary)
		bad = cfg
		bad.MQ.URL = "amqp://app:" + canary + "@/nohost"
		require.NotContains(t, bad.Validate().Error(), canary)
		require.False(t, strings.Contains(fmt.Sprintf("%#v", bad), canary))
	})
}

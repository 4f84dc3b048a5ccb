package testenv

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLogRecorderCountsConcurrently(t *testing.T) {
	rec := NewLogRecorder(LogRecorderConfig{Level: slog.LevelDebug, Keep: 100})
	log := rec.Logger().With("component", "test")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.WithGroup("g").With("n", g)
			for i := range 1000 {
				switch i % 4 {
				case 0:
					l.Debug("debug line", "i", i)
				case 1:
					l.Info("info line", "i", i)
				case 2:
					l.Warn("warn line", "i", i)
				default:
					l.Log(context.Background(), slog.LevelError+4, "worse than error", "i", i)
				}
				if i%100 == 0 {
					_ = rec.Counts()
					_ = rec.FindMessage("warn")
				}
			}
		}()
	}
	wg.Wait()
	c := rec.Counts()
	require.Equal(t, LogCounts{Elapsed: c.Elapsed, Debug: 2000, Info: 2000, Warn: 2000, Error: 2000}, c,
		"counts are exact although only 100 records are kept")
	require.Equal(t, 8000, c.Total())
	require.Len(t, rec.Records(), 100)
	last := rec.Records()[99]
	v, ok := last.Attr("component")
	require.True(t, ok)
	require.Equal(t, "test", v.String())
	_, ok = last.Attr("g.n")
	require.True(t, ok, "WithGroup qualifies later attributes: %v", last)
	_, ok = last.Attr("g.i")
	require.True(t, ok, "and the record's own: %v", last)
}

func TestLogRecorderLevelAndSearch(t *testing.T) {
	var next bytes.Buffer
	rec := NewLogRecorder(LogRecorderConfig{Next: slog.NewTextHandler(&next, &slog.HandlerOptions{Level: slog.LevelDebug})})
	log := rec.Logger()
	require.False(t, rec.Enabled(context.Background(), slog.LevelDebug-1), "Info by default, and Next wants Debug and above")
	log.Debug("not recorded but passed on")
	log.Info("broker down", "attempt", 1, slog.Group("err", "code", 320, "text", "CONNECTION_FORCED"))
	log.Warn("broker down", "attempt", 2, slog.Group("", "inline", true), slog.Group("empty"))
	log.Error("gave up", "err", fmt.Errorf("boom"))

	require.Equal(t, 0, rec.Counts().Debug)
	require.Equal(t, 3, rec.Counts().Total())
	require.Contains(t, next.String(), "not recorded but passed on")

	down := rec.FindMessage("broker down")
	require.Len(t, down, 2)
	code, ok := down[0].Attr("err.code")
	require.True(t, ok, "groups flatten into dotted keys: %v", down[0])
	require.EqualValues(t, 320, code.Int64())
	inline, ok := down[1].Attr("inline")
	require.True(t, ok, "an inline group's members stay at the top: %v", down[1])
	require.True(t, inline.Bool())
	require.Equal(t, "WARN broker down attempt=2 inline=true", down[1].String())

	errs := rec.Find(func(r LogRecord) bool { return r.Level >= slog.LevelError })
	require.Len(t, errs, 1)
	e, _ := errs[0].Attr("err")
	require.Equal(t, "boom", e.String())
}

func TestLogCountsRate(t *testing.T) {
	rec := NewLogRecorder(LogRecorderConfig{})
	before := rec.Counts()
	for range 10 {
		rec.Logger().Warn("retrying")
	}
	rec.Logger().Error("poisoned")
	time.Sleep(20 * time.Millisecond)
	during := rec.Counts().Sub(before)
	require.Equal(t, 11, during.Total())
	require.Equal(t, 10, during.Warn)
	require.Greater(t, during.Elapsed, 20*time.Millisecond)
	require.InDelta(t, 11/during.Elapsed.Seconds(), during.PerSecond(), 1e-9)
	require.True(t, strings.HasPrefix(during.String(), "log_lines=11 in "), during.String())
	require.Contains(t, during.String(), "warn=10 error=1")
	require.Zero(t, LogCounts{}.PerSecond())
}

// TestLogRecorderSlogtest runs the standard library's handler conformance
// test, with the dotted keys unflattened back into nested maps.
func TestLogRecorderSlogtest(t *testing.T) {
	var rec *LogRecorder
	slogtest.Run(t, func(*testing.T) slog.Handler {
		rec = NewLogRecorder(LogRecorderConfig{})
		return rec
	}, func(t *testing.T) map[string]any {
		rs := rec.Records()
		require.Len(t, rs, 1)
		r := rs[0]
		m := map[string]any{slog.LevelKey: r.Level, slog.MessageKey: r.Message}
		if !r.Time.IsZero() {
			m[slog.TimeKey] = r.Time
		}
		for _, a := range r.Attrs {
			path := strings.Split(a.Key, ".")
			at := m
			for _, g := range path[:len(path)-1] {
				sub, ok := at[g].(map[string]any)
				if !ok {
					sub = map[string]any{}
					at[g] = sub
				}
				at = sub
			}
			at[path[len(path)-1]] = a.Value.Any()
		}
		return m
	})
}

package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// logRecord is one line a captureHandler got.
type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r logRecord) String() string { return fmt.Sprintf("%s %q %v", r.level, r.msg, r.attrs) }

// logs records what a component logs, for tests that count lines.
type logs struct {
	mu   sync.Mutex
	recs []logRecord
}

func (l *logs) logger() *slog.Logger { return slog.New(&captureHandler{logs: l}) }

// find returns the records at level whose message contains text.
func (l *logs) find(level slog.Level, text string) []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logRecord
	for _, r := range l.recs {
		if r.level == level && strings.Contains(r.msg, text) {
			out = append(out, r)
		}
	}
	return out
}

// atLeast returns the records at level or above.
func (l *logs) atLeast(level slog.Level) []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logRecord
	for _, r := range l.recs {
		if r.level >= level {
			out = append(out, r)
		}
	}
	return out
}

type captureHandler struct {
	logs  *logs
	attrs []slog.Attr
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.logs.mu.Lock()
	h.logs.recs = append(h.logs.recs, rec)
	h.logs.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{logs: h.logs, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }

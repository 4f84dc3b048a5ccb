package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// LogRecorderConfig configures [NewLogRecorder].
type LogRecorderConfig struct {
	// Level is the lowest level recorded (and reported enabled). Default:
	// slog.LevelInfo, the level the worker logs at as shipped.
	Level slog.Leveler
	// Keep is how many of the most recent records are kept for Records and
	// Find; the counts are exact whatever it is. Default: 100,000.
	Keep int
	// Next, if set, also gets every record (e.g. a text handler on
	// t.Output() to see the logs), subject to its own Enabled.
	Next slog.Handler
}

// LogRecorder is a [log/slog.Handler] for tests: it counts the records per
// level (exactly) and keeps the most recent ones to search. It is safe for
// concurrent use; handlers derived with WithAttrs and WithGroup record into
// the same LogRecorder.
type LogRecorder struct {
	st     *logStore
	next   slog.Handler
	attrs  []slog.Attr // from WithAttrs, keys already qualified by their groups
	groups []string    // from WithGroup, qualifying the attributes that follow
}

type logStore struct {
	level slog.Leveler
	keep  int
	began time.Time

	mu      sync.Mutex
	counts  [4]int // Debug, Info, Warn, Error bands
	records []LogRecord
}

// LogRecord is one recorded record.
type LogRecord struct {
	Time    time.Time
	Level   slog.Level
	Message string
	// Attrs are the record's attributes and those of the logger (WithAttrs),
	// resolved, groups flattened into dotted keys ("req.id").
	Attrs []slog.Attr
}

// Attr returns the value of the attribute with the dotted key (the last one
// when several have it).
func (r LogRecord) Attr(key string) (slog.Value, bool) {
	for i := len(r.Attrs) - 1; i >= 0; i-- {
		if r.Attrs[i].Key == key {
			return r.Attrs[i].Value, true
		}
	}
	return slog.Value{}, false
}

// String formats the record as "LEVEL message key=value ...".
func (r LogRecord) String() string {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(' ')
	b.WriteString(r.Message)
	for _, a := range r.Attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	return b.String()
}

// NewLogRecorder returns an empty recorder; its rate figures count from now.
func NewLogRecorder(cfg LogRecorderConfig) *LogRecorder {
	if cfg.Level == nil {
		cfg.Level = slog.LevelInfo
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 100_000
	}
	return &LogRecorder{st: &logStore{level: cfg.Level, keep: cfg.Keep, began: time.Now()}, next: cfg.Next}
}

// Logger returns a logger that writes to the recorder.
func (h *LogRecorder) Logger() *slog.Logger { return slog.New(h) }

// Enabled reports whether level is at or above the configured Level.
func (h *LogRecorder) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.st.level.Level() || (h.next != nil && h.next.Enabled(ctx, level))
}

// Handle records r (if its level is enabled) and passes it on to Next.
func (h *LogRecorder) Handle(ctx context.Context, r slog.Record) error {
	if h.next != nil && h.next.Enabled(ctx, r.Level) {
		if err := h.next.Handle(ctx, r); err != nil {
			return err
		}
	}
	if r.Level < h.st.level.Level() {
		return nil
	}
	rec := LogRecord{Time: r.Time, Level: r.Level, Message: r.Message,
		Attrs: make([]slog.Attr, len(h.attrs), len(h.attrs)+r.NumAttrs())}
	copy(rec.Attrs, h.attrs)
	prefix := strings.Join(h.groups, ".")
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs = flatten(rec.Attrs, prefix, a)
		return true
	})
	st := h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	st.counts[band(r.Level)]++
	st.records = append(st.records, rec)
	if len(st.records) >= 2*st.keep { // trim now and then, not on every record
		st.records = slices.Delete(st.records, 0, len(st.records)-st.keep)
	}
	return nil
}

// WithAttrs returns a handler that adds attrs to every record, recording into
// the same LogRecorder.
func (h *LogRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	prefix := strings.Join(h.groups, ".")
	h2.attrs = slices.Clip(h.attrs)
	for _, a := range attrs {
		h2.attrs = flatten(h2.attrs, prefix, a)
	}
	if h.next != nil {
		h2.next = h.next.WithAttrs(attrs)
	}
	return &h2
}

// WithGroup returns a handler that qualifies the attributes that follow with
// name, recording into the same LogRecorder.
func (h *LogRecorder) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.groups = append(slices.Clip(h.groups), name)
	if h.next != nil {
		h2.next = h.next.WithGroup(name)
	}
	return &h2
}

// flatten appends a, resolved, to dst, with groups turned into dotted keys.
func flatten(dst []slog.Attr, prefix string, a slog.Attr) []slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return dst // slog's handlers drop empty attributes too
	}
	key := a.Key
	if prefix != "" && key != "" {
		key = prefix + "." + key
	} else if key == "" {
		key = prefix // an inline group: its members stay at this level
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			dst = flatten(dst, key, g)
		}
		return dst
	}
	return append(dst, slog.Attr{Key: key, Value: a.Value})
}

func band(l slog.Level) int {
	switch {
	case l < slog.LevelInfo:
		return 0
	case l < slog.LevelWarn:
		return 1
	case l < slog.LevelError:
		return 2
	}
	return 3
}

// Counts returns how many records were recorded so far, per level.
func (h *LogRecorder) Counts() LogCounts {
	st := h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	c := st.counts
	return LogCounts{Elapsed: time.Since(st.began), Debug: c[0], Info: c[1], Warn: c[2], Error: c[3]}
}

// Records returns a copy of the kept records, oldest first.
func (h *LogRecorder) Records() []LogRecord {
	st := h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	keep := st.records
	if len(keep) > st.keep {
		keep = keep[len(keep)-st.keep:]
	}
	return slices.Clone(keep)
}

// Find returns the kept records for which match returns true, oldest first.
func (h *LogRecorder) Find(match func(LogRecord) bool) []LogRecord {
	var out []LogRecord
	for _, r := range h.Records() {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// FindMessage returns the kept records whose message contains substr.
func (h *LogRecorder) FindMessage(substr string) []LogRecord {
	return h.Find(func(r LogRecord) bool { return strings.Contains(r.Message, substr) })
}

// LogCounts are record counts per level over a time span: from the recorder's
// creation ([LogRecorder.Counts]) or between two snapshots ([LogCounts.Sub]).
// Levels between the named ones count with the one below (slog.LevelWarn+2
// is Warn).
type LogCounts struct {
	Elapsed                  time.Duration
	Debug, Info, Warn, Error int
}

// Total returns the number of records of every level.
func (c LogCounts) Total() int { return c.Debug + c.Info + c.Warn + c.Error }

// Sub returns the counts between an earlier snapshot and c, e.g. during an
// outage: take one snapshot when it starts and one when it ends.
func (c LogCounts) Sub(earlier LogCounts) LogCounts {
	return LogCounts{
		Elapsed: c.Elapsed - earlier.Elapsed,
		Debug:   c.Debug - earlier.Debug, Info: c.Info - earlier.Info,
		Warn: c.Warn - earlier.Warn, Error: c.Error - earlier.Error,
	}
}

// PerSecond returns the records per second over the span (0 for an empty span).
func (c LogCounts) PerSecond() float64 {
	if c.Elapsed <= 0 {
		return 0
	}
	return float64(c.Total()) / c.Elapsed.Seconds()
}

// String formats the counts for a test's summary line:
// "log_lines=42 in 10.0s (4.2/s): debug=0 info=30 warn=10 error=2".
func (c LogCounts) String() string {
	return fmt.Sprintf("log_lines=%d in %.1fs (%.1f/s): debug=%d info=%d warn=%d error=%d",
		c.Total(), c.Elapsed.Seconds(), c.PerSecond(), c.Debug, c.Info, c.Warn, c.Error)
}

package persist

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

func TestGormLogger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	statement := func(rendered *bool) func() (string, int64) {
		return func() (string, int64) {
			*rendered = true
			return "INSERT INTO t VALUES (?)", 1
		}
	}
	tests := []struct {
		name   string
		level  logger.LogLevel // 0: the store's default
		age    time.Duration   // of the statement when traced
		err    error
		logged bool
	}{
		{name: "Fast"},
		{name: "NotFound", err: gorm.ErrRecordNotFound},
		{name: "Error", err: errors.New("boom")}, // returned to the caller, who logs it
		{name: "SlowError", age: 2 * slowStatement, err: errors.New("boom")},
		{name: "Canceled", err: context.Canceled},
		{name: "Slow", age: 2 * slowStatement, logged: true},
		{name: "InfoLevel", level: logger.Info, logged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			l := newGormLogger(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if tt.level != 0 {
				l = l.LogMode(tt.level)
			}
			rendered := false
			l.Trace(ctx, time.Now().Add(-tt.age), statement(&rendered), tt.err)
			require.Equal(t, tt.logged, rendered)
			require.Equal(t, tt.logged, out.Len() > 0, out.String())
		})
	}

	l := newGormLogger(slog.New(slog.DiscardHandler))
	f, ok := l.(gorm.ParamsFilter)
	require.True(t, ok, "values stay out of logged statements")
	sql, params := f.ParamsFilter(ctx, "SELECT ?", "secret")
	require.Equal(t, "SELECT ?", sql)
	require.Empty(t, params)
}

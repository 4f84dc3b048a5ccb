package worker

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// testLogger shows warnings in verbose runs and nothing otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return discardLogger()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestQuickstart runs the whole scenario, as `go run ./examples/quickstart` does.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	db := filepath.Join(t.TempDir(), "qs.db")
	require.NoError(t, run(ctx, &out, db, false, slog.New(slog.NewTextHandler(io.Discard, nil))))
	s := out.String()
	for _, want := range []string{
		"change: created server i-001 v1",
		"change: updated server i-001 v2 [state]",
		"poisoned: #1 report.generate after 1 attempt(s): customer acme has reports disabled",
		"actions handled:     5",
		"state changes saved: 4",
		"poisoned, replayed:  1, 1 (0 still poisoned)",
		"first polls stored 3 servers and 1 firewall",
		"job completed; servers in the cloud: 4; firewall rules: 1 (ingress from SOURCE_CIDR)",
		"1 server launched from 2 deliveries, 1 deletion detected",
		"sqlite " + db,
	} {
		require.Contains(t, s, want)
	}
}

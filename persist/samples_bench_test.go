package persist

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/state"
)

// BenchmarkAppendSamples appends what one server-analytics poll of an
// account returns — 50 servers × 30 samples (10 minutes of 20s samples) —
// per iteration, rollups included, and reports rows/s and the bytes one
// sample takes on disk (raw row, its index and its share of the rollups).
// The baseline, in the same run, appends the same kind of samples one per
// call (one INSERT and one rollup each): x-batched is the ratio of the two
// rates. SQLite file always; MariaDB with WORKER_TEST_MYSQL_DSN.
func BenchmarkAppendSamples(b *testing.B) {
	for _, be := range []backend{backends[0], backends[2]} {
		b.Run(be.name, func(b *testing.B) {
			s := openBenchStore(b, be.db(b))
			ctx := context.Background()
			const servers, perServer = 50, 30
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			poll := func(n int) []state.Sample {
				out := make([]state.Sample, 0, servers*perServer)
				for v := range servers {
					out = append(out, series(fmt.Sprintf("vm-%04d", v), t0.Add(time.Duration(n)*perServer*20*time.Second), 20*time.Second, perServer)...)
				}
				return out
			}
			// Baseline: one sample per call, for another account.
			base := poll(0)[:300]
			start := time.Now()
			for _, x := range base {
				_, err := s.AppendSamples(ctx, "baseline", []state.Sample{x})
				require.NoError(b, err)
			}
			baseRate := float64(len(base)) / time.Since(start).Seconds()
			before := usageBytes(b, s)

			b.ResetTimer()
			for i := range b.N {
				n, err := s.AppendSamples(ctx, "acct", poll(i))
				if err != nil || n != servers*perServer {
					b.Fatalf("append: %d, %v", n, err)
				}
			}
			b.StopTimer()
			rows := float64(b.N * servers * perServer)
			rate := rows / b.Elapsed().Seconds()
			b.ReportMetric(rate, "rows/s")
			b.ReportMetric(baseRate, "row-by-row-rows/s")
			b.ReportMetric(rate/baseRate, "x-batched")
			b.ReportMetric(float64(usageBytes(b, s)-before)/rows, "B/sample")
		})
	}
}

func openBenchStore(b *testing.B, db DBConfig) *Store {
	b.Helper()
	s, err := Open(context.Background(), Config{Provisioning: db, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// usageBytes is the space the analytics database's usage tables take: the
// SQLite file (after a checkpoint), or InnoDB's data and index length.
func usageBytes(b *testing.B, s *Store) int64 {
	b.Helper()
	db := s.ana.writer
	if s.ana.driver == SQLite {
		require.NoError(b, db.Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error)
		var pages, size int64
		require.NoError(b, db.Raw("PRAGMA page_count").Scan(&pages).Error)
		require.NoError(b, db.Raw("PRAGMA page_size").Scan(&size).Error)
		return pages * size
	}
	for _, t := range []string{tblSamples, tblHourly} {
		require.NoError(b, db.Exec("ANALYZE TABLE "+t).Error)
	}
	var n int64
	require.NoError(b, db.Raw("SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables"+
		" WHERE table_schema = DATABASE() AND table_name IN (?, ?)", tblSamples, tblHourly).Scan(&n).Error)
	return n
}

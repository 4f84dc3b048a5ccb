package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/persist"
)

// BenchmarkMetricsOnOff: actions published and handled end to end on the
// embedded transport, by a worker without metrics and by one with them,
// batch for batch in the same run. It reports each one's cost per action
// and their ratio (on/off):
//
//	go test -run '^$' -bench BenchmarkMetricsOnOff -benchtime 20x .
func BenchmarkMetricsOnOff(b *testing.B) {
	const batch = 2000
	run := func(reg prometheus.Registerer) (func() time.Duration, func()) {
		var handled atomic.Int64
		w, err := worker.New(context.Background(), worker.Config{
			Store:   persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}},
			Logger:  quiet,
			Metrics: reg,
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := w.HandleFunc("bench.noop", func(context.Context, worker.Action) error { handled.Add(1); return nil }); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		<-w.Running()
		actions := make([]worker.Action, 100)
		for i := range actions {
			actions[i] = worker.Action{Type: "bench.noop", Customer: "acme", Account: "acct-1"}
		}
		once := func() time.Duration {
			start := time.Now()
			want := handled.Load() + batch
			for range batch / len(actions) {
				if err := w.Publish(ctx, actions...); err != nil {
					b.Fatal(err)
				}
			}
			for handled.Load() < want {
				time.Sleep(50 * time.Microsecond)
			}
			return time.Since(start)
		}
		return once, func() { cancel(); <-done }
	}
	off, stopOff := run(nil)
	defer stopOff()
	on, stopOn := run(prometheus.NewRegistry())
	defer stopOn()
	off() // warm both up
	on()
	b.ResetTimer()
	var tOff, tOn time.Duration
	for i := range b.N {
		if i%2 == 0 { // alternate the order
			tOff += off()
			tOn += on()
		} else {
			tOn += on()
			tOff += off()
		}
	}
	n := float64(b.N * batch)
	b.ReportMetric(float64(tOff.Nanoseconds())/n, "ns/action-off")
	b.ReportMetric(float64(tOn.Nanoseconds())/n, "ns/action-on")
	b.ReportMetric(float64(tOn)/float64(tOff), "on/off")
}

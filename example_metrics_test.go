package worker_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/persist"
)

// Metrics: the worker registers its collectors on the registerer the host
// gives it and opens no port; the host serves the registry (for example
// with promhttp.HandlerFor on its own /metrics). An action of a type this
// process knows gets its own series; any other type counts as "other".
func ExampleConfig_metrics() {
	reg := prometheus.NewRegistry()
	w, err := worker.New(context.Background(), worker.Config{
		Store:   persist.Config{Provisioning: persist.DBConfig{DSN: persist.MemoryDSN}},
		Logger:  quiet,
		Metrics: reg,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	_ = w.HandleFunc("invoice.send", func(context.Context, worker.Action) error { return nil })
	_ = w.Publish(context.Background(),
		worker.Action{Type: "invoice.send"}, worker.Action{Type: "made.up"})

	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "worker_actions_published") {
			continue
		}
		for _, m := range mf.GetMetric() {
			fmt.Println(mf.GetName(), m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
		}
	}
	// Output:
	// worker_actions_published_total invoice.send 1
	// worker_actions_published_total other 1
}

package sim_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
)

// BenchmarkListServers10k measures one full listing of 10,000 servers in
// pages of 500.
func BenchmarkListServers10k(b *testing.B) {
	c, _ := setup(b, sim.Config{})
	seed(b, c, "acct", 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		opts := cloud.ListOptions{PageSize: 500}
		n := 0
		for {
			page, err := c.ListServers(ctx, "acct", opts)
			if err != nil {
				b.Fatal(err)
			}
			n += len(page.Servers)
			if opts.PageToken = page.NextToken; opts.PageToken == "" {
				break
			}
		}
		if n != 10_000 {
			b.Fatalf("listed %d servers", n)
		}
	}
}

// BenchmarkListServerStatus10k is the status-only listing of the same.
func BenchmarkListServerStatus10k(b *testing.B) {
	c, _ := setup(b, sim.Config{})
	seed(b, c, "acct", 10_000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		opts := cloud.ListOptions{PageSize: 500}
		for {
			page, err := c.ListServerStatus(ctx, "acct", opts)
			if err != nil {
				b.Fatal(err)
			}
			if opts.PageToken = page.NextToken; opts.PageToken == "" {
				break
			}
		}
	}
}

// BenchmarkMemoryPerServer reports the heap a stored server takes (one tag,
// 100 accounts of 1,000 servers).
func BenchmarkMemoryPerServer(b *testing.B) {
	const accounts, per = 100, 1000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c, err := sim.New(sim.Config{})
		if err != nil {
			b.Fatal(err)
		}
		for a := range accounts {
			account := fmt.Sprintf("acct-%d", a)
			for i := range per {
				if _, err := c.AddServer(account, cloud.Server{Image: "ubuntu-24.04", Size: "small",
					Tags: map[string]string{"owner": "team-" + fmt.Sprint(i%10)}}); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(accounts*per), "B/server")
		runtime.KeepAlive(c)
	}
}

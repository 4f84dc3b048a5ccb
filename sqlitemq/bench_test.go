package sqlitemq

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

// BenchmarkPublishConsume is the transport alone: 256 goroutines publish
// b.N messages one per call, one subscription with 128 in flight acks each.
// Reports msg/s and messages per commit.
func BenchmarkPublishConsume(b *testing.B) {
	for _, sync := range []Synchronous{SyncFull, SyncNormal} {
		b.Run(string(sync), func(b *testing.B) { benchPublishConsume(b, Config{MaxInFlight: 128, Synchronous: sync}) })
	}
}

func benchPublishConsume(b *testing.B, cfg Config) {
	cfg.Path = filepath.Join(b.TempDir(), "queue.db")
	p, err := New(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	msgs, err := p.Subscribe(context.Background(), "t")
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 300)
	done := make(chan struct{})
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range msgs {
				m.Ack()
				if got.Add(1) == int64(b.N) {
					close(done)
				}
			}
		}()
	}
	before := p.w.commits.Load()
	b.ResetTimer()
	var next atomic.Int64
	var pw sync.WaitGroup
	for range 256 {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for next.Add(1) <= int64(b.N) {
				m := message.NewMessage(fmt.Sprint(next.Load()), payload)
				m.Metadata.Set("type", "bench.noop")
				if err := p.Publish("t", m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	pw.Wait()
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	b.ReportMetric(float64(b.N)/float64(p.w.commits.Load()-before), "msg/commit")
}

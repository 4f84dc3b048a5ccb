package sim

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratusworks/worker/cloud"
)

// Server analytics: simulated usage samples, deterministic for a seed.

var (
	_ cloud.ServerAnalyticsProvider = (*Cloud)(nil)
	_ cloud.ServerAnalytics         = (*Cloud)(nil)
)

// Usage sampling of the simulated servers.
const (
	// UsageInterval is how often a simulated server is sampled: a sample
	// at every multiple of it (Unix time), like vSphere's realtime
	// statistics.
	UsageInterval = 20 * time.Second
	// UsageWindow is the default and the longest window of ListUsage: the
	// simulator, like vCenter's realtime statistics, keeps an hour.
	UsageWindow = time.Hour
)

// ServerAnalytics returns c as the cloud.ServerAnalytics service.
func (c *Cloud) ServerAnalytics() (cloud.ServerAnalytics, error) {
	if err := c.offers(ServiceAnalytics); err != nil {
		return nil, err
	}
	return c, nil
}

// ListUsage returns the samples of up to PageSize running servers of the
// account (in id order) taken in the window: one every UsageInterval since
// the server was launched. Their values are a function of the seed, the
// account, the server and the time, so every call (and every run) returns
// the same samples for the same times: each server has its own level of
// load, on which the samples drift. Rate limits, faults and Disable apply
// as to every API (APIListUsage, ServiceAnalytics).
func (c *Cloud) ListUsage(ctx context.Context, accountID string, o cloud.UsageOptions) (cloud.Page[cloud.UsageSample], error) {
	a, now, err := c.begin(ctx, apiListUsage, accountID)
	if err != nil {
		return cloud.Page[cloud.UsageSample]{}, err
	}
	if o.Window < 0 {
		return cloud.Page[cloud.UsageSample]{}, fmt.Errorf("sim: %s: window %s is negative: %w", apiListUsage, o.Window, ErrInvalidRequest)
	}
	w := o.Window
	if w == 0 || w > UsageWindow {
		w = UsageWindow
	}
	size, tok, err := c.pageArgs(apiListUsage, cloud.ListOptions{PageToken: o.PageToken, PageSize: o.PageSize})
	if err != nil {
		return cloud.Page[cloud.UsageSample]{}, err
	}
	step := UsageInterval.Nanoseconds()
	// The first sample time in the window (now-w, now], fixed by the
	// first page.
	from := now - w.Nanoseconds() + 1
	from += (step - from%step) % step
	after := ""
	if tok != "" {
		start, last, ok := strings.Cut(tok, "/")
		n, perr := strconv.ParseInt(start, 10, 64)
		if !ok || perr != nil {
			return cloud.Page[cloud.UsageSample]{}, fmt.Errorf("sim: %s: malformed page token %q: %w", apiListUsage, o.PageToken, ErrInvalidRequest)
		}
		from, after = n, last
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	i := 0
	if after != "" {
		i = sort.Search(len(a.servers), func(i int) bool { return a.servers[i].id > after })
	}
	var page cloud.Page[cloud.UsageSample]
	n, last := 0, ""
	for ; i < len(a.servers); i++ {
		s := &a.servers[i]
		if !c.listable(s, now) || c.stateOf(s, now) != cloud.StateRunning {
			continue
		}
		if n == size {
			page.NextToken = encodeToken(strconv.FormatInt(from, 10) + "/" + last)
			break
		}
		n, last = n+1, s.id
		load := c.usageLevel(accountID, s.id)
		for t := max(from, s.launchedAt+(step-s.launchedAt%step)%step); t <= now; t += step {
			page.Items = append(page.Items, usageAt(load, s.id, t))
		}
	}
	return page, nil
}

// usageLevel is a server's own load: a hash of the seed, account and id.
func (c *Cloud) usageLevel(account, id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(account))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(id))
	return h.Sum64() ^ uint64(c.cfg.Seed)*0x9e3779b97f4a7c15
}

// usageAt is the sample of a server with load level at time t (Unix ns).
func usageAt(level uint64, id string, t int64) cloud.UsageSample {
	x := mix(level ^ uint64(t/UsageInterval.Nanoseconds()))
	cpuBase := float64(level%6000) / 100     // 0–60 %
	memBase := float64(level>>16%5000) / 100 // 0–50 %
	pct := func(base float64, noise uint64) float64 {
		return min(100, float64(int64((base+float64(noise%4000)/100)*100))/100) // up to +40 %, in 0.01 steps
	}
	return cloud.UsageSample{
		Server:    id,
		At:        time.Unix(0, t).UTC(),
		CPU:       pct(cpuBase, x),
		Memory:    pct(memBase+10, x>>12),
		DiskRead:  int64(level>>24%512)<<10 + int64(x>>20%65536),
		DiskWrite: int64(level>>32%256)<<10 + int64(x>>28%65536),
		NetRx:     int64(level>>40%1024)<<10 + int64(x>>36%131072),
		NetTx:     int64(level>>48%512)<<10 + int64(x>>44%131072),
	}
}

// mix is splitmix64's finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

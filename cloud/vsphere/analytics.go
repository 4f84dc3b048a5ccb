package vsphere

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/performance"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// Server analytics: the VMs' usage from vCenter's performance manager.

var (
	_ cloud.ServerAnalyticsProvider = (*Provider)(nil)
	_ cloud.ServerAnalytics         = (*Provider)(nil)
)

// Realtime statistics, as vCenter keeps them for powered-on VMs.
const (
	// RealtimeInterval is the sampling interval of vCenter's realtime
	// statistics (the performance manager's interval id 20).
	RealtimeInterval = 20 * time.Second
	// MaxUsageWindow is the most a ListUsage window reaches back, and its
	// default: vCenter keeps realtime statistics for about an hour.
	MaxUsageWindow = time.Hour
	// DefaultUsagePageSize is how many VMs one ListUsage page (one
	// QueryPerf call) covers unless UsageOptions.PageSize says otherwise.
	DefaultUsagePageSize = 100
)

// usageCounters are the counters a sample is made of, in the order of
// their fields in cloud.UsageSample: CPU and memory in hundredths of a
// percent, disk and network in KB/s. Instance "" is the VM's aggregate.
var usageCounters = []string{
	"cpu.usage.average",
	"mem.usage.average",
	"disk.read.average",
	"disk.write.average",
	"net.received.average",
	"net.transmitted.average",
}

// usageState is the provider's performance manager and the ids of the
// usage counters, read from vCenter's counter catalogue once.
type usageState struct {
	mu  sync.Mutex
	m   *performance.Manager
	ids map[int32]int // counter id -> index in usageCounters
}

// usageCounterIDs returns the performance manager and the usage counters' ids.
func (p *Provider) usageCounterIDs(ctx context.Context) (*performance.Manager, map[int32]int, error) {
	u := &p.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ids != nil {
		return u.m, u.ids, nil
	}
	if u.m == nil {
		u.m = performance.NewManager(p.client)
	}
	byName, err := u.m.CounterInfoByName(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read the performance counters: %w", err)
	}
	ids := make(map[int32]int, len(usageCounters))
	for i, name := range usageCounters {
		c, ok := byName[name]
		if !ok {
			return nil, nil, fmt.Errorf("vCenter has no performance counter %q: %w", name, cloud.ErrNotSupported)
		}
		ids[c.Key] = i
	}
	u.ids = ids
	return u.m, ids, nil
}

// ServerAnalytics returns the provider itself: the VMs' usage samples come
// from vCenter's performance manager.
func (p *Provider) ServerAnalytics() (cloud.ServerAnalytics, error) { return p, nil }

// ListUsage returns the realtime samples (every 20s) in the window of up
// to PageSize powered-on VMs (default DefaultUsagePageSize, at most
// MaxPageSize), in the order of [Provider.ListServers]: one listing of the
// page's VMs and one QueryPerf call for all of them. CPU and memory are
// the VM's cpu.usage and mem.usage (percent, capped at 100); disk and
// network its disk.read/write and net.received/transmitted aggregates,
// converted from KB/s to bytes/s. The window (default and at most
// MaxUsageWindow) ends at vCenter's own clock, read once on the first
// page; the page token keeps its start.
func (p *Provider) ListUsage(ctx context.Context, account string, o cloud.UsageOptions) (cloud.Page[cloud.UsageSample], error) {
	const op = "list usage"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.Page[cloud.UsageSample]{}, err
	}
	if o.Window < 0 || o.PageSize < 0 {
		return cloud.Page[cloud.UsageSample]{}, fmt.Errorf("vsphere: %s: window %s, page size %d: %w (want >= 0)",
			op, o.Window, o.PageSize, cloud.ErrInvalidRequest)
	}
	w := o.Window
	if w == 0 || w > MaxUsageWindow {
		w = MaxUsageWindow
	}
	var start time.Time
	inner := ""
	if o.PageToken != "" {
		at, rest, ok := strings.Cut(o.PageToken, "~")
		sec, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil {
			return cloud.Page[cloud.UsageSample]{}, fmt.Errorf("vsphere: %s: malformed page token %q: %w", op, o.PageToken, cloud.ErrInvalidRequest)
		}
		start, inner = time.Unix(sec, 0), rest
	}
	size := o.PageSize
	if size == 0 {
		size = DefaultUsagePageSize
	}
	var page cloud.Page[cloud.UsageSample]
	err := p.do(ctx, op, func(ctx context.Context) error {
		page = cloud.Page[cloud.UsageSample]{}
		if start.IsZero() {
			now, err := methods.GetCurrentTime(ctx, p.client)
			if err != nil {
				return fmt.Errorf("read vCenter's time: %w", err)
			}
			start = now.Add(-w)
		}
		selected, next, err := p.listPage(ctx, statusProps, cloud.ListOptions{PageToken: inner, PageSize: size})
		if err != nil {
			return err
		}
		if next != "" {
			page.NextToken = strconv.FormatInt(start.Unix(), 10) + "~" + next
		}
		var refs []types.ManagedObjectReference
		for _, l := range selected {
			if l.vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
				refs = append(refs, l.vm.Self)
			}
		}
		if len(refs) == 0 {
			return nil
		}
		page.Items, err = p.queryUsage(ctx, refs, start)
		return err
	})
	return page, err
}

// queryUsage reads the realtime samples after start of the VMs in one
// QueryPerf call (one query spec per VM, the counters' aggregate instance);
// if a VM is gone, one call per VM.
func (p *Provider) queryUsage(ctx context.Context, refs []types.ManagedObjectReference, start time.Time) ([]cloud.UsageSample, error) {
	m, ids, err := p.usageCounterIDs(ctx)
	if err != nil {
		return nil, err
	}
	metrics := make([]types.PerfMetricId, 0, len(ids))
	for id := range ids {
		metrics = append(metrics, types.PerfMetricId{CounterId: id, Instance: ""})
	}
	st := start
	specs := make([]types.PerfQuerySpec, len(refs))
	for i, ref := range refs {
		specs[i] = types.PerfQuerySpec{Entity: ref, IntervalId: int32(RealtimeInterval / time.Second), StartTime: &st,
			MaxSample: int32(MaxUsageWindow/RealtimeInterval) + 1, MetricId: metrics}
	}
	raw, err := m.Query(ctx, specs)
	if isFaultType(err, &types.ManagedObjectNotFound{}) && len(specs) > 1 {
		// A VM of the page was deleted since the listing, which fails
		// the whole call: ask for each VM on its own, skipping the gone.
		raw = nil
		for _, spec := range specs {
			one, err := m.Query(ctx, []types.PerfQuerySpec{spec})
			if isFaultType(err, &types.ManagedObjectNotFound{}) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("query the performance counters of %s: %w", spec.Entity.Value, err)
			}
			raw = append(raw, one...)
		}
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("query the performance counters of %d VMs: %w", len(refs), err)
	}
	var out []cloud.UsageSample
	for _, r := range raw {
		e, ok := r.(*types.PerfEntityMetric)
		if !ok {
			return nil, fmt.Errorf("query the performance counters: vCenter answered %T, not the normal format", r)
		}
		out = append(out, toSamples(e, ids, start)...)
	}
	return out, nil
}

// toSamples turns one VM's series into samples, oldest first, leaving out
// those at or before start. A missing value (-1: not collected) is 0.
func toSamples(e *types.PerfEntityMetric, ids map[int32]int, start time.Time) []cloud.UsageSample {
	var vals [6][]int64
	for _, b := range e.Value {
		v, ok := b.(*types.PerfMetricIntSeries)
		if !ok {
			continue
		}
		if i, ok := ids[v.Id.CounterId]; ok && v.Id.Instance == "" {
			vals[i] = v.Value
		}
	}
	at := func(c, i int) int64 {
		if i < len(vals[c]) && vals[c][i] > 0 {
			return vals[c][i]
		}
		return 0
	}
	pct := func(v int64) float64 { return float64(min(v, 10_000)) / 100 }
	out := make([]cloud.UsageSample, 0, len(e.SampleInfo))
	for i, si := range e.SampleInfo {
		t := si.Timestamp.UTC().Truncate(time.Second)
		if !t.After(start) {
			continue
		}
		out = append(out, cloud.UsageSample{
			Server:    e.Entity.Value,
			At:        t,
			CPU:       pct(at(0, i)),
			Memory:    pct(at(1, i)),
			DiskRead:  at(2, i) * 1024,
			DiskWrite: at(3, i) * 1024,
			NetRx:     at(4, i) * 1024,
			NetTx:     at(5, i) * 1024,
		})
	}
	slices.SortFunc(out, func(a, b cloud.UsageSample) int { return a.At.Compare(b.At) }) // vcsim answers newest first
	return out
}

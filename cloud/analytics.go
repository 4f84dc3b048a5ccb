package cloud

import (
	"context"
	"fmt"
	"time"

	"github.com/stratusworks/worker/state"
)

// ServiceServerAnalytics names the ServerAnalytics service.
const ServiceServerAnalytics = "server-analytics"

// KindServerAnalytics is the collection of the servers' usage samples: a
// poll of it returns samples for the analytics database, no observations.
const KindServerAnalytics = "server-analytics"

// IntervalServerAnalytics is the default interval of KindServerAnalytics.
const IntervalServerAnalytics = 5 * time.Minute

// UsageSample is one usage measurement of one server (CPU and memory in
// percent, disk and network in bytes per second), averaged over the
// cloud's sampling interval ending at At. It is [state.Sample], so a
// poller hands a provider's samples to the store without copying them.
type UsageSample = state.Sample

// UsageOptions selects the samples of a [ServerAnalytics] listing.
type UsageOptions struct {
	// Window is how far back from the cloud's own clock to read: samples
	// taken in the last Window. 0 means the provider's default; a provider
	// caps it at what it keeps (vSphere's realtime statistics: an hour).
	// The first page fixes the window's start; later pages (PageToken)
	// keep it.
	Window time.Duration
	// PageToken and PageSize page through the servers: a page holds every
	// sample in the window of up to PageSize servers (0 means the
	// provider's default).
	PageToken string
	PageSize  int
}

// ServerAnalytics reads the servers' usage samples (CPU, memory, disk and
// network) from the cloud's monitoring: vSphere's performance manager, a
// public cloud's metrics API.
type ServerAnalytics interface {
	// ListUsage returns one page of the samples the account's servers
	// took in the window, grouped by server, oldest first per server. A
	// server without samples (stopped, just launched) is left out.
	ListUsage(ctx context.Context, account string, o UsageOptions) (Page[UsageSample], error)
}

// ServerAnalyticsProvider is the accessor of the ServerAnalytics service.
type ServerAnalyticsProvider interface {
	ServerAnalytics() (ServerAnalytics, error)
}

// ServerAnalyticsOf returns p's ServerAnalytics service, or an error matching ErrNotSupported (a
// [*NotSupportedError] when p has no ServerAnalytics accessor).
func ServerAnalyticsOf(p Provider) (ServerAnalytics, error) {
	if sp, ok := p.(ServerAnalyticsProvider); ok {
		return sp.ServerAnalytics()
	}
	return nil, notOffered(p, ServiceServerAnalytics)
}

// ServerAnalyticsPoller collects the servers' usage samples; kind
// "server-analytics". Its snapshots carry Samples and no observations, so a
// poll detects no change and writes nothing to the provisioning database:
// the worker appends the samples to the analytics database (duplicates of
// samples stored already are dropped there, so overlapping windows are
// harmless).
type ServerAnalyticsPoller struct {
	Analytics ServerAnalytics
	// Window is how far back each poll reads. 0 means twice
	// IntervalServerAnalytics, so that one missed poll loses no samples.
	// Registered at another interval (or with accounts whose registry
	// entry overrides it), set it to at least that interval, better twice
	// it: samples older than the window when a poll runs are not read
	// (the provider caps it, vSphere at an hour).
	Window   time.Duration
	PageSize int // servers per page; 0 means the provider's default
}

// Kind returns "server-analytics".
func (ServerAnalyticsPoller) Kind() string { return KindServerAnalytics }

// Poll reads one page of usage samples.
func (p ServerAnalyticsPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	w := p.Window
	if w <= 0 {
		w = 2 * IntervalServerAnalytics
	}
	page, err := p.Analytics.ListUsage(ctx, t.Account, UsageOptions{Window: w, PageToken: cursor, PageSize: p.PageSize})
	if err != nil {
		return state.Snapshot{}, "", fmt.Errorf("poll %s: %w", KindServerAnalytics, err)
	}
	return state.Snapshot{Samples: page.Items}, page.NextToken, nil
}

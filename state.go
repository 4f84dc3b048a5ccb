package worker

import (
	"context"

	"github.com/stratusworks/worker/state"
)

// Poller reads one kind of resource from a cloud provider.
type Poller interface {
	// Kind is the resource kind this poller reads, e.g. "server" or "firewall".
	Kind() string
	// Poll reads one page of the target's resources, starting at cursor (""
	// for the first page), and returns the cursor of the next page ("" after
	// the last). The worker saves each page before asking for the next, so a
	// large account is never held whole in memory. Set Complete on the last
	// page of a full listing: resources of the target that the listing did not
	// return are then presumed deleted (after Config.DeletionGrace). A
	// status-only listing returns Partial observations and never sets Complete.
	// Errors follow package cloud's taxonomy: a *cloud.ThrottledError makes the
	// schedule wait RetryAfter and pause the account.
	Poll(ctx context.Context, t state.Target, cursor string) (snap state.Snapshot, next string, err error)
}

// PollerFunc adapts a function to the [Poller] interface for one kind.
func PollerFunc(kind string, f func(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error)) Poller {
	return pollerFunc{kind: kind, f: f}
}

type pollerFunc struct {
	kind string
	f    func(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error)
}

func (p pollerFunc) Kind() string { return p.kind }
func (p pollerFunc) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	return p.f(ctx, t, cursor)
}

// StateSink stores observed state and reports what changed.
//
// Save upserts the snapshot's observations and returns only what changed:
// unchanged observations write nothing, and an observation older than the
// stored state never replaces it. [persist.Store] is the implementation this
// module ships (SQLite or MySQL/MariaDB).
//
// [persist.Store]: https://pkg.go.dev/github.com/stratusworks/worker/persist#Store
type StateSink interface {
	Save(ctx context.Context, t state.Target, s state.Snapshot) ([]state.Change, error)
}

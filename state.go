package worker

import (
	"context"

	"github.com/stratusworks/worker/state"
)

// Poller reads one kind of resource from a cloud provider.
type Poller interface {
	// Kind is the resource kind this poller reads, e.g. "server" or "firewall".
	Kind() string
	// Poll lists the target's resources. Large accounts may be returned page by
	// page: the last page of a full listing has Complete set.
	Poll(ctx context.Context, t state.Target) (state.Snapshot, error)
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

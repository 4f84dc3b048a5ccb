package state

import (
	"encoding/json"
	"time"
)

// Target names what a poll looks at: one kind of resource in one cloud account,
// or a single resource of that kind when Resource is set.
type Target struct {
	Account  string `json:"account"`            // cloud account id; required
	Customer string `json:"customer,omitempty"` // tenant that owns the account (logs, credentials)
	Kind     string `json:"kind"`               // resource kind, e.g. "server", "firewall"; required
	Resource string `json:"resource,omitempty"` // one resource id; "" means the whole kind
}

// String returns "account/kind" or "account/kind/resource".
func (t Target) String() string {
	s := t.Account + "/" + t.Kind
	if t.Resource != "" {
		s += "/" + t.Resource
	}
	return s
}

// Observation is one resource as a poller saw it at ObservedAt.
type Observation struct {
	// Kind of the resource. Empty means the Kind of the Target it was saved under.
	Kind string `json:"kind,omitempty"`
	// ID is the provider's id for the resource; required.
	ID string `json:"id"`
	// Attributes is the resource's state as a JSON object. Two observations with
	// the same attributes (whatever their key order or spacing) are the same state.
	Attributes json.RawMessage `json:"attributes"`
	// ObservedAt is when the provider reported this state. An observation older
	// than the one already stored never replaces it. Zero means "now".
	ObservedAt time.Time `json:"observed_at"`
	// Partial attributes patch the stored state: their top-level keys replace
	// the stored ones, keys they omit are kept. A status-only listing sends
	// {"state": …} as a partial observation so that it never makes a resource
	// flap between its full and status-only shapes. A partial observation of a
	// resource that is not stored yet creates it with just those attributes.
	Partial bool `json:"partial,omitempty"`
}

// Snapshot is one page of a listing. Large accounts arrive page by page.
type Snapshot struct {
	Observations []Observation `json:"observations"`
	// Complete marks the last page of a full listing: resources of the target that
	// were not seen in this listing may have been deleted.
	Complete bool `json:"complete,omitempty"`
	// Samples are usage measurements of the target's servers, for the
	// analytics database (a poller of usage, not of state, returns these and
	// no observations).
	Samples []Sample `json:"samples,omitempty"`
}

// ChangeOp says what happened to a resource.
type ChangeOp string

// The operations a [Change] can carry.
const (
	Created ChangeOp = "created"
	Updated ChangeOp = "updated"
	Deleted ChangeOp = "deleted"
)

// Change is one resource whose stored state changed because of a save.
type Change struct {
	Op ChangeOp `json:"op"`
	// Target identifies the resource: Account, Customer, Kind and Resource (its id).
	Target Target `json:"target"`
	// Before is the previously stored state; nil when Op is Created.
	Before *Observation `json:"before,omitempty"`
	// After is the new state; nil when Op is Deleted.
	After *Observation `json:"after,omitempty"`
	// Fields lists the top-level attribute keys whose values differ, sorted.
	Fields []string `json:"fields,omitempty"`
	// Version is the resource's stored version after the change (1 on creation).
	Version int64 `json:"version"`
}

// Sample is one usage measurement of one server, averaged over the cloud's
// sampling interval that ends at At: a point of a time series, not state.
// Samples are appended to the analytics database as they come (a
// [Snapshot]'s Samples), without change detection or events; a sample
// whose server and time are already stored is a duplicate and is dropped.
type Sample struct {
	Server string    `json:"server"` // the server's provider id; required
	At     time.Time `json:"at"`     // when the sampling interval ended; stored in whole seconds (UTC)
	// CPU and Memory are percentages of the server's capacity in use, 0 to
	// 100 (stored to 0.01).
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
	// Disk and network throughput in bytes per second, >= 0.
	DiskRead  int64 `json:"disk_read"`
	DiskWrite int64 `json:"disk_write"`
	NetRx     int64 `json:"net_rx"`
	NetTx     int64 `json:"net_tx"`
}

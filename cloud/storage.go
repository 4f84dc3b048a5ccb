package cloud

import (
	"context"
	"time"
)

// The Compute+ services after Dasein Cloud: machine images, block volumes
// and their snapshots.

// Image is a machine image servers are launched from. States: PENDING,
// AVAILABLE, DELETING, ERROR.
type Image struct {
	ID           string        `json:"id"`
	Account      string        `json:"account"`
	Name         string        `json:"name"`
	Platform     string        `json:"platform,omitempty"`     // e.g. "linux", "windows"
	Architecture string        `json:"architecture,omitempty"` // e.g. "x86_64", "arm64"
	State        ResourceState `json:"state"`
	Public       bool          `json:"public"` // shared with every account
	CreatedAt    time.Time     `json:"created_at"`
}

// Images lists machine images.
type Images interface {
	ListImages(ctx context.Context, account string, opts ListOptions) (Page[Image], error)
}

// Volume is a block storage volume. States: PENDING, AVAILABLE (detached),
// IN_USE (attached to Server), DELETING, ERROR.
type Volume struct {
	ID         string `json:"id"`
	Account    string `json:"account"`
	Name       string `json:"name"`
	DataCenter string `json:"datacenter,omitempty"`
	// Datastore is the storage the volume's data lives on, for a cloud that
	// names it (a vSphere datastore); "" where the cloud does not.
	Datastore string            `json:"datastore,omitempty"`
	SizeGB    int               `json:"size_gb"`
	Type      string            `json:"type,omitempty"` // e.g. "ssd", "hdd"
	State     ResourceState     `json:"state"`
	Server    string            `json:"server,omitempty"` // the server it is attached to
	Tags      map[string]string `json:"tags,omitempty"`
}

// Volumes lists block volumes.
type Volumes interface {
	ListVolumes(ctx context.Context, account string, opts ListOptions) (Page[Volume], error)
	// ListVolumeStatus returns ids and states only: cheaper, for frequent polls.
	ListVolumeStatus(ctx context.Context, account string, opts ListOptions) (Page[ResourceStatus], error)
}

// Snapshot is a point-in-time copy of a volume, or of a whole server on a
// cloud that snapshots servers (vSphere). States: PENDING, AVAILABLE,
// DELETING, ERROR.
type Snapshot struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Name    string `json:"name"`
	Volume  string `json:"volume,omitempty"` // the volume it copies
	// Server is the server it copies, for a snapshot of a whole server.
	Server string `json:"server,omitempty"`
	// Parent is the snapshot it was taken after, where snapshots form a
	// tree (a vSphere VM's); "" for a root.
	Parent    string        `json:"parent,omitempty"`
	SizeGB    int           `json:"size_gb"`
	State     ResourceState `json:"state"`
	CreatedAt time.Time     `json:"created_at"`
}

// Snapshots lists volume snapshots.
type Snapshots interface {
	ListSnapshots(ctx context.Context, account string, opts ListOptions) (Page[Snapshot], error)
	// ListSnapshotStatus returns ids and states only: cheaper, for frequent polls.
	ListSnapshotStatus(ctx context.Context, account string, opts ListOptions) (Page[ResourceStatus], error)
}

func (i Image) resourceID() string { return i.ID }
func (i Image) attributes() attrs {
	return attrs{"name": i.Name, "platform": i.Platform, "architecture": i.Architecture, "state": i.State,
		"public": i.Public, "created_at": i.CreatedAt}
}

func (v Volume) resourceID() string { return v.ID }
func (v Volume) attributes() attrs {
	return attrs{"name": v.Name, "datacenter": v.DataCenter, "datastore": v.Datastore, "size_gb": v.SizeGB, "type": v.Type,
		"state": v.State, "server": v.Server, "tags": v.Tags}
}

func (s Snapshot) resourceID() string { return s.ID }
func (s Snapshot) attributes() attrs {
	return attrs{"name": s.Name, "volume": s.Volume, "server": s.Server, "parent": s.Parent, "size_gb": s.SizeGB,
		"state": s.State, "created_at": s.CreatedAt}
}

package guest

import (
	"context"
	"sync"
)

// GuestFile identifies one remote log file of one guest.
type GuestFile struct {
	Account  string `json:"account"`
	ServerID string `json:"server_id"`
	Path     string `json:"path"` // remote path, e.g. /var/log/syslog
}

// Offset is how far a remote file has been copied, and what is needed to
// notice that the file was rotated or truncated since. The zero Offset means
// nothing has been copied yet.
type Offset struct {
	// Identity is the remote file's identity ("device:inode"); a different
	// identity at the same path means the file was rotated.
	Identity string `json:"identity"`
	// Bytes is the remote offset up to which lines were copied: always the
	// end of a complete line.
	Bytes int64 `json:"bytes"`
	// Size is the remote file's size when it was last looked at
	// (informational).
	Size int64 `json:"size"`
	// TailHash is the hex SHA-256 of the last min(Bytes, 64) copied bytes.
	// The next read starts that many bytes early and compares: a mismatch
	// means the file was truncated and grew again past Bytes, which neither
	// the identity nor the size can show.
	TailHash string `json:"tail_hash"`
	// LocalSize is the size of the local copy once the copied bytes were
	// appended and synced. A local file longer than this on the next run
	// holds an append whose offset was never stored (a crash in between);
	// the collector cuts it off and reads those bytes again, so a crash at
	// any point gives neither duplicates nor gaps.
	LocalSize int64 `json:"local_size"`
}

// Offsets stores an [Offset] per [GuestFile]. It must be durable for the
// no-duplicate guarantee to survive a restart; [MemoryOffsets] is for tests
// and one-shot runs.
type Offsets interface {
	// Get returns the stored offset, or the zero Offset and a nil error if
	// there is none.
	Get(ctx context.Context, key GuestFile) (Offset, error)
	// Put stores the offset, replacing any previous one.
	Put(ctx context.Context, key GuestFile, o Offset) error
}

// MemoryOffsets is an in-memory [Offsets], safe for concurrent use. The zero
// value is ready to use.
type MemoryOffsets struct {
	mu sync.Mutex
	m  map[GuestFile]Offset
}

var _ Offsets = (*MemoryOffsets)(nil)

// NewMemoryOffsets returns an empty in-memory store.
func NewMemoryOffsets() *MemoryOffsets { return &MemoryOffsets{} }

// Get implements [Offsets].
func (m *MemoryOffsets) Get(_ context.Context, key GuestFile) (Offset, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[key], nil
}

// Put implements [Offsets].
func (m *MemoryOffsets) Put(_ context.Context, key GuestFile, o Offset) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[GuestFile]Offset)
	}
	m.m[key] = o
	return nil
}

package sim

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/stratusworks/worker/cloud"
)

// phase is a server's stored lifecycle state. PENDING and STOPPING move on by
// themselves when the clock passes server.until; nothing runs to move them.
type phase uint8

const (
	phPending    phase = iota // RUNNING from until
	phRunning                 //
	phStopping                // TERMINATED from until
	phStopped                 //
	phTerminated              // terminated at until; gone from until+TerminateDelay
	phError                   //
	phUnknown                 //
)

var phaseStates = [...]cloud.ServerState{
	phPending: cloud.StatePending, phRunning: cloud.StateRunning, phStopping: cloud.StateStopping,
	phStopped: cloud.StateStopped, phTerminated: cloud.StateTerminated, phError: cloud.StateError,
	phUnknown: cloud.StateUnknown,
}

func phaseOf(s cloud.ServerState) (phase, bool) {
	i := slices.Index(phaseStates[:], s)
	return phase(i), i >= 0
}

// dying phases do not count against the quota and end with the server gone.
func (p phase) dying() bool { return p == phStopping || p == phTerminated }

type tag struct{ k, v string }

// server is the stored form of a cloud.Server, kept small because a
// simulation may hold a million of them: times are Unix nanoseconds, tags a
// sorted slice, and the rare second address or public address lives apart.
type server struct {
	id, name            string
	region, image, size string
	tags                []tag
	privateIP           string
	extra               *addresses // nil unless more than one private IP or any public IP
	launchedAt          int64
	until               int64      // see phase
	op                  *operation // the launch or termination in progress, if any
	phase               phase
	seeded              bool // added by AddServer: visible to listings at once
}

type addresses struct{ private, public []string }

// settle stores the phase the clock has moved the server to.
func (c *Cloud) settle(s *server, now int64) {
	switch {
	case s.phase == phPending && now >= s.until:
		s.phase = phRunning
	case s.phase == phStopping && now >= s.until:
		s.phase = phTerminated
	}
	if s.op != nil && now >= s.op.done {
		s.op = nil
	}
}

func (c *Cloud) stateOf(s *server, now int64) cloud.ServerState {
	p := s.phase
	switch {
	case p == phPending && now >= s.until:
		p = phRunning
	case p == phStopping && now >= s.until:
		p = phTerminated
	}
	return phaseStates[p]
}

// gone reports whether a terminated server has disappeared.
func (c *Cloud) gone(s *server, now int64) bool {
	return s.phase.dying() && now >= s.until+int64(c.cfg.TerminateDelay)
}

// listable reports whether listings show the server: not gone, and past the
// eventual-consistency window.
func (c *Cloud) listable(s *server, now int64) bool {
	if c.gone(s, now) {
		return false
	}
	return s.seeded || now >= s.launchedAt+int64(c.cfg.ConsistencyDelay)
}

// exportServer returns a deep copy of s. If arena has room, the one-address
// PrivateIPs slice is cut from it (with its capacity capped, so appending to
// one server's slice never touches another's): a page then allocates one
// backing array for all addresses instead of one per server.
func (c *Cloud) exportServer(a *account, s *server, now int64, arena *[]string) cloud.Server {
	out := cloud.Server{
		ID:         s.id,
		Name:       s.name,
		Account:    a.id,
		Region:     s.region,
		Image:      s.image,
		Size:       s.size,
		State:      c.stateOf(s, now),
		LaunchedAt: time.Unix(0, s.launchedAt).UTC(),
	}
	if len(s.tags) > 0 {
		out.Tags = make(map[string]string, len(s.tags))
		for _, t := range s.tags {
			out.Tags[t.k] = t.v
		}
	}
	if s.extra != nil {
		out.PrivateIPs = slices.Clone(s.extra.private)
		out.PublicIPs = slices.Clone(s.extra.public)
	} else if s.privateIP != "" {
		if arena != nil && len(*arena) < cap(*arena) {
			*arena = append(*arena, s.privateIP)
			n := len(*arena)
			out.PrivateIPs = (*arena)[n-1 : n : n]
		} else {
			out.PrivateIPs = []string{s.privateIP}
		}
	}
	return out
}

func makeTags(m map[string]string) []tag {
	if len(m) == 0 {
		return nil
	}
	ts := make([]tag, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ts = append(ts, tag{k, m[k]})
	}
	return ts
}

func (s *server) tag(k string) (string, bool) {
	i, ok := slices.BinarySearchFunc(s.tags, k, func(t tag, k string) int { return cmp.Compare(t.k, k) })
	if !ok {
		return "", false
	}
	return s.tags[i].v, true
}

// search returns the index of the first server whose id is >= id.
func (a *account) search(id string) int {
	return sort.Search(len(a.servers), func(i int) bool { return a.servers[i].id >= id })
}

// find returns the server with the id unless it is gone.
func (c *Cloud) find(a *account, id string, now int64) *server {
	i := a.search(id)
	if i < len(a.servers) && a.servers[i].id == id && !c.gone(&a.servers[i], now) {
		return &a.servers[i]
	}
	return nil
}

// insert stores s in id order and returns its address, valid until the next
// insert or sweep. The caller holds a.mu.
func (a *account) insert(s server) *server {
	if n := len(a.servers); n == 0 || a.servers[n-1].id < s.id {
		a.servers = append(a.servers, s)
		return &a.servers[n]
	}
	i := a.search(s.id)
	a.servers = slices.Insert(a.servers, i, s)
	return &a.servers[i]
}

// newServerID returns a fresh id unused in the account. The caller holds a.mu.
func (c *Cloud) newServerID(a *account) string {
	for {
		id := newID("i-", &c.serverSeq)
		if i := a.search(id); i == len(a.servers) || a.servers[i].id != id {
			return id
		}
	}
}

func (c *Cloud) newPrivateIP() string {
	n := c.ipSeq.Add(1)
	return fmt.Sprintf("10.%d.%d.%d", (n>>16)&0xff, (n>>8)&0xff, n&0xff)
}

// setState moves a server to st now: the operation in progress ends
// (succeeding if st is what it was waiting for), timers restart and the
// account's counters follow. The caller holds a.mu and has settled s.
func (c *Cloud) setState(a *account, s *server, st cloud.ServerState, now int64) {
	p, _ := phaseOf(st)
	if s.op != nil {
		s.op.finish(st, s.id, now)
		s.op = nil
	}
	if !s.phase.dying() {
		a.active--
	} else {
		a.dying--
	}
	s.phase = p
	switch p {
	case phPending:
		s.until = now + int64(c.cfg.LaunchDelay)
	case phStopping:
		s.until = now + int64(c.cfg.TerminateDelay)
	case phTerminated:
		s.until = now
	default:
		s.until = 0
	}
	if !p.dying() {
		a.active++
	} else {
		a.dying++
	}
}

// sweep drops gone servers and expired operations from memory once enough
// have piled up; until then they are only hidden. The caller holds a.mu.
func (c *Cloud) sweep(a *account, now int64) {
	if a.dying >= 64 && a.dying*8 >= len(a.servers) && now >= a.nextSweep {
		a.nextSweep = now + int64(c.cfg.TerminateDelay)
		kept := a.servers[:0]
		dying := 0
		for i := range a.servers {
			if c.gone(&a.servers[i], now) {
				continue
			}
			if a.servers[i].phase.dying() {
				dying++
			}
			kept = append(kept, a.servers[i])
		}
		clear(a.servers[len(kept):])
		a.servers, a.dying = kept, dying
	}
	if len(a.ops) >= 1024 && now >= a.nextOpSweep {
		a.nextOpSweep = now + int64(c.cfg.OperationRetention)/4
		for id, op := range a.ops {
			if c.expired(op, now) {
				delete(a.ops, id)
			}
		}
	}
}

// ListServers returns one page of the account's servers in id order. Newly
// launched servers are missing for Config.ConsistencyDelay. The page token is
// opaque; it stays valid while servers are launched and terminated.
func (c *Cloud) ListServers(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.ServerPage, error) {
	a, now, err := c.begin(ctx, apiListServers, accountID)
	if err != nil {
		return cloud.ServerPage{}, err
	}
	size, after, err := c.pageArgs(apiListServers, opts)
	if err != nil {
		return cloud.ServerPage{}, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	var page cloud.ServerPage
	var arena []string
	page.NextToken = c.scan(a, after, size, now, func(s *server, n int) {
		if page.Servers == nil {
			page.Servers = make([]cloud.Server, 0, n)
			arena = make([]string, 0, n)
		}
		page.Servers = append(page.Servers, c.exportServer(a, s, now, &arena))
	})
	return page, nil
}

// ListServerStatus is ListServers with ids and states only.
func (c *Cloud) ListServerStatus(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.StatusPage, error) {
	a, now, err := c.begin(ctx, apiListServerStatus, accountID)
	if err != nil {
		return cloud.StatusPage{}, err
	}
	size, after, err := c.pageArgs(apiListServerStatus, opts)
	if err != nil {
		return cloud.StatusPage{}, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	var page cloud.StatusPage
	page.NextToken = c.scan(a, after, size, now, func(s *server, n int) {
		if page.Statuses == nil {
			page.Statuses = make([]cloud.ServerStatus, 0, n)
		}
		page.Statuses = append(page.Statuses, cloud.ServerStatus{ID: s.id, State: c.stateOf(s, now)})
	})
	return page, nil
}

// scan visits up to size listable servers after the id and returns the next
// page token ("" when no listable server follows). visit gets a capacity hint.
func (c *Cloud) scan(a *account, after string, size int, now int64, visit func(s *server, hint int)) string {
	i := 0
	if after != "" {
		i = sort.Search(len(a.servers), func(i int) bool { return a.servers[i].id > after })
	}
	hint := min(size, len(a.servers)-i)
	n, last := 0, ""
	for ; i < len(a.servers); i++ {
		s := &a.servers[i]
		if !c.listable(s, now) {
			continue
		}
		if n == size {
			return encodeToken(last)
		}
		visit(s, hint)
		n, last = n+1, s.id
	}
	return ""
}

// GetServer returns the server, with no eventual-consistency delay, or an
// error matching cloud.ErrNotFound.
func (c *Cloud) GetServer(ctx context.Context, accountID, id string) (cloud.Server, error) {
	a, now, err := c.begin(ctx, apiGetServer, accountID)
	if err != nil {
		return cloud.Server{}, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	s := c.find(a, id, now)
	if s == nil {
		return cloud.Server{}, fmt.Errorf("sim: GetServer: server %q in account %q: %w", id, accountID, cloud.ErrNotFound)
	}
	return c.exportServer(a, s, now, nil), nil
}

// FindServersByTag returns the listable servers whose tag key has the value,
// in id order. Like listings, it misses servers launched within
// Config.ConsistencyDelay.
func (c *Cloud) FindServersByTag(ctx context.Context, accountID, key, value string) ([]cloud.Server, error) {
	a, now, err := c.begin(ctx, apiFindServersByTag, accountID)
	if err != nil {
		return nil, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []cloud.Server
	for i := range a.servers {
		s := &a.servers[i]
		if v, ok := s.tag(key); ok && v == value && c.listable(s, now) {
			out = append(out, c.exportServer(a, s, now, nil))
		}
	}
	return out, nil
}

// Launch validates the request and starts a launch: the server exists at once
// (PENDING, seen by GetServer, missing from listings for
// Config.ConsistencyDelay) and is RUNNING after Config.LaunchDelay, when the
// returned operation succeeds. An empty or unknown image or an unknown size
// fails with an error matching ErrInvalidRequest (unknown ones also match
// cloud.ErrNotFound); exceeding Config.MaxServersPerAccount fails with one
// matching cloud.ErrQuota.
func (c *Cloud) Launch(ctx context.Context, accountID string, req cloud.LaunchRequest) (cloud.Operation, error) {
	a, now, err := c.begin(ctx, apiLaunch, accountID)
	if err != nil {
		return cloud.Operation{}, err
	}
	size := req.Size
	if size == "" {
		size = c.cfg.Sizes[0]
	}
	switch {
	case req.Image == "":
		return cloud.Operation{}, fmt.Errorf("sim: Launch: image is required: %w", ErrInvalidRequest)
	case !slices.Contains(c.cfg.Images, req.Image):
		return cloud.Operation{}, fmt.Errorf("sim: Launch: unknown image %q: %w: %w", req.Image, ErrInvalidRequest, cloud.ErrNotFound)
	case !slices.Contains(c.cfg.Sizes, size):
		return cloud.Operation{}, fmt.Errorf("sim: Launch: unknown size %q: %w: %w", size, ErrInvalidRequest, cloud.ErrNotFound)
	}
	tags := makeTags(req.Tags)

	a.mu.Lock()
	defer a.mu.Unlock()
	if quota := c.cfg.MaxServersPerAccount; quota > 0 && a.active >= quota {
		return cloud.Operation{}, fmt.Errorf("sim: Launch: account %q has %d servers, the most allowed: %w", accountID, a.active, cloud.ErrQuota)
	}
	c.sweep(a, now)
	id := c.newServerID(a)
	name := req.Name
	if name == "" {
		name = id
	}
	op := c.newOp(a, "launch", id, now, now+int64(c.cfg.LaunchDelay))
	a.insert(server{
		id: id, name: name, region: c.cfg.Region, image: req.Image, size: size, tags: tags,
		privateIP: c.newPrivateIP(), launchedAt: now, until: now + int64(c.cfg.LaunchDelay),
		op: op, phase: phPending,
	})
	a.active++
	return op.export(now), nil
}

// Terminate starts terminating a server: it is STOPPING, then TERMINATED
// after Config.TerminateDelay (when the returned operation succeeds), then
// gone after another TerminateDelay. Terminating a server already terminating
// returns the same operation; a TERMINATED one, an operation already
// succeeded. A launch still in progress fails.
func (c *Cloud) Terminate(ctx context.Context, accountID, id string) (cloud.Operation, error) {
	a, now, err := c.begin(ctx, apiTerminate, accountID)
	if err != nil {
		return cloud.Operation{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c.sweep(a, now)
	s := c.find(a, id, now)
	if s == nil {
		return cloud.Operation{}, fmt.Errorf("sim: Terminate: server %q in account %q: %w", id, accountID, cloud.ErrNotFound)
	}
	c.settle(s, now)
	switch s.phase {
	case phStopping:
		if s.op != nil && s.op.kind == "terminate" {
			return s.op.export(now), nil
		}
		s.op = c.newOp(a, "terminate", id, now, s.until)
		return s.op.export(now), nil
	case phTerminated:
		return c.newOp(a, "terminate", id, now, now).export(now), nil
	}
	c.setState(a, s, cloud.StateStopping, now)
	s.op = c.newOp(a, "terminate", id, now, s.until)
	return s.op.export(now), nil
}

// operation is an asynchronous job. It ends at done (planned when it starts,
// brought forward if the server changes state on the way).
type operation struct {
	id, kind, resourceID string
	start, done          int64
	errMsg               string // non-empty: failed
}

func (c *Cloud) newOp(a *account, kind, resourceID string, now, done int64) *operation {
	op := &operation{id: newID("op-", &c.opSeq), kind: kind, resourceID: resourceID, start: now, done: done}
	a.ops[op.id] = op
	return op
}

// finish ends an operation in progress because its server became st.
func (op *operation) finish(st cloud.ServerState, serverID string, now int64) {
	if now >= op.done {
		return
	}
	op.done = now
	goal := cloud.StateRunning
	if op.kind == "terminate" {
		goal = cloud.StateTerminated
	}
	if st != goal {
		op.errMsg = fmt.Sprintf("%s of server %s interrupted: server became %s", op.kind, serverID, st)
	}
}

func (op *operation) export(now int64) cloud.Operation {
	out := cloud.Operation{
		ID: op.id, Kind: op.kind, ResourceID: op.resourceID,
		State: cloud.OpRunning, UpdatedAt: time.Unix(0, op.start).UTC(),
	}
	if now >= op.done {
		out.UpdatedAt = time.Unix(0, op.done).UTC()
		out.State = cloud.OpSucceeded
		if op.errMsg != "" {
			out.State, out.Error = cloud.OpFailed, op.errMsg
		}
	}
	return out
}

func (c *Cloud) expired(op *operation, now int64) bool {
	return now >= op.done+int64(c.cfg.OperationRetention)
}

// Operation returns the operation's state now, or an error matching
// cloud.ErrNotFound (also once it ended more than Config.OperationRetention ago).
func (c *Cloud) Operation(ctx context.Context, accountID, id string) (cloud.Operation, error) {
	a, now, err := c.begin(ctx, apiOperation, accountID)
	if err != nil {
		return cloud.Operation{}, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	op := a.ops[id]
	if op == nil || c.expired(op, now) {
		return cloud.Operation{}, fmt.Errorf("sim: Operation: operation %q in account %q: %w", id, accountID, cloud.ErrNotFound)
	}
	return op.export(now), nil
}

// AddServer stores a server as it is, for seeding tests, creating the account
// if needed, and returns it as stored. It fills the ID (if empty), Account,
// State (RUNNING if empty), Region, LaunchedAt (now if zero) and a private IP
// (if none). The server is visible to listings at once; a PENDING one is
// RUNNING after LaunchDelay from now, a STOPPING one TERMINATED after
// TerminateDelay. An ID already in the account is an error.
func (c *Cloud) AddServer(accountID string, s cloud.Server) (cloud.Server, error) {
	st := s.State
	if st == "" {
		st = cloud.StateRunning
	}
	if _, ok := phaseOf(st); !ok {
		return cloud.Server{}, fmt.Errorf("sim: AddServer: unknown state %q: %w", st, ErrInvalidRequest)
	}
	a, err := c.ensureAccount(accountID)
	if err != nil {
		return cloud.Server{}, err
	}
	now := c.now()
	launched := now
	if !s.LaunchedAt.IsZero() {
		launched = s.LaunchedAt.UnixNano()
	}
	region := s.Region
	if region == "" {
		region = c.cfg.Region
	}
	stored := server{
		name: s.Name, region: region, image: s.Image, size: s.Size, tags: makeTags(s.Tags),
		launchedAt: launched, seeded: true, phase: phUnknown,
	}
	switch {
	case len(s.PrivateIPs) == 0 && len(s.PublicIPs) == 0:
		stored.privateIP = c.newPrivateIP()
	case len(s.PrivateIPs) == 1 && len(s.PublicIPs) == 0:
		stored.privateIP = s.PrivateIPs[0]
	default:
		stored.extra = &addresses{private: slices.Clone(s.PrivateIPs), public: slices.Clone(s.PublicIPs)}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	stored.id = s.ID
	if stored.id == "" {
		stored.id = c.newServerID(a)
	} else if i := a.search(stored.id); i < len(a.servers) && a.servers[i].id == stored.id {
		return cloud.Server{}, fmt.Errorf("sim: AddServer: server %q already exists in account %q: %w", s.ID, accountID, ErrInvalidRequest)
	}
	if stored.name == "" {
		stored.name = stored.id
	}
	p := a.insert(stored)
	a.active++ // phUnknown counts; setState moves the counters to the real phase
	c.setState(a, p, st, now)
	return c.exportServer(a, p, now, nil), nil
}

// SetServerState moves a server to a state now, as if the cloud (or someone
// at its console) did it. An operation in progress on the server ends: it
// succeeds if the state is the one it waited for, fails otherwise.
func (c *Cloud) SetServerState(accountID, id string, st cloud.ServerState) error {
	if _, ok := phaseOf(st); !ok {
		return fmt.Errorf("sim: SetServerState: unknown state %q: %w", st, ErrInvalidRequest)
	}
	a := c.lookup(accountID)
	if a == nil {
		return fmt.Errorf("sim: SetServerState: account %q: %w", accountID, cloud.ErrNotFound)
	}
	now := c.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := c.find(a, id, now)
	if s == nil {
		return fmt.Errorf("sim: SetServerState: server %q in account %q: %w", id, accountID, cloud.ErrNotFound)
	}
	c.settle(s, now)
	c.setState(a, s, st, now)
	return nil
}

// Servers returns every server of the account as it truly is now, in id
// order, ignoring the eventual-consistency delay (gone servers excluded).
func (c *Cloud) Servers(accountID string) []cloud.Server {
	a := c.lookup(accountID)
	if a == nil {
		return nil
	}
	now := c.now()
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []cloud.Server
	for i := range a.servers {
		if !c.gone(&a.servers[i], now) {
			out = append(out, c.exportServer(a, &a.servers[i], now, nil))
		}
	}
	return out
}

package vsphere

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// Page sizes.
const (
	// DefaultPageSize is the page size when ListOptions.PageSize is 0.
	DefaultPageSize = 100
	// MaxPageSize caps ListOptions.PageSize.
	MaxPageSize = 1000
)

// Properties retrieved per VM. Listings fetch only these, never whole objects.
var (
	// pageProps selects the servers of a listing: templates are not servers.
	pageProps = []string{"summary.config.template"}
	// statusProps is all a status listing needs.
	statusProps = []string{"summary.config.template", "runtime.powerState", "runtime.connectionState"}
	// tagProps is what a tag search needs.
	tagProps = []string{"summary.config.template", "config.extraConfig", "customValue"}
	// serverProps fill a cloud.Server.
	serverProps = []string{
		"name", "summary.config.template", "runtime.powerState", "runtime.connectionState",
		"summary.config.numCpu", "summary.config.memorySizeMB", "guest.ipAddress",
		"config.createDate", "config.extraConfig", "customValue",
	}
)

// ListServers returns one page of the datacenter's VMs (templates excluded),
// ordered by id. It retrieves the template flag of every VM through one
// container view, picks the page, then retrieves full properties for the
// page's VMs only.
func (p *Provider) ListServers(ctx context.Context, account string, opts cloud.ListOptions) (cloud.ServerPage, error) {
	const op = "list servers"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.ServerPage{}, err
	}
	var page cloud.ServerPage
	err := p.do(ctx, op, func(ctx context.Context) error {
		var all []mo.VirtualMachine
		if err := p.retrieveView(ctx, p.vmFolder, "VirtualMachine", pageProps, &all); err != nil {
			return err
		}
		selected, next := pageOf(servers(all), opts)
		refs := make([]types.ManagedObjectReference, len(selected))
		for i, vm := range selected {
			refs[i] = vm.Self
		}
		vms, err := p.retrieveVMs(ctx, refs, serverProps)
		if err != nil {
			return err
		}
		names, err := p.customFieldNames(ctx, vms)
		if err != nil {
			return err
		}
		inflight := p.ops.inflight()
		page = cloud.ServerPage{NextToken: next, Servers: make([]cloud.Server, 0, len(vms))}
		for _, vm := range vms {
			if !isTemplate(vm) { // marked a template between the two calls
				page.Servers = append(page.Servers, p.toServer(vm, names, inflight))
			}
		}
		return nil
	})
	return page, err
}

// ListServerStatus returns one page of ids and states: one property
// collector call retrieving three small properties per VM (plus creating and
// destroying the container view it reads through).
func (p *Provider) ListServerStatus(ctx context.Context, account string, opts cloud.ListOptions) (cloud.StatusPage, error) {
	const op = "list server status"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.StatusPage{}, err
	}
	var page cloud.StatusPage
	err := p.do(ctx, op, func(ctx context.Context) error {
		var all []mo.VirtualMachine
		if err := p.retrieveView(ctx, p.vmFolder, "VirtualMachine", statusProps, &all); err != nil {
			return err
		}
		selected, next := pageOf(servers(all), opts)
		inflight := p.ops.inflight()
		page = cloud.StatusPage{NextToken: next, Statuses: make([]cloud.ServerStatus, len(selected))}
		for i, vm := range selected {
			page.Statuses[i] = cloud.ServerStatus{ID: vm.Self.Value, State: serverState(vm, inflight)}
		}
		return nil
	})
	return page, err
}

// GetServer returns one VM by id (its managed object reference value, e.g.
// "vm-42"). Templates, VMs of other datacenters and unknown ids match
// cloud.ErrNotFound.
func (p *Provider) GetServer(ctx context.Context, account, id string) (cloud.Server, error) {
	const op = "get server"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.Server{}, err
	}
	var s cloud.Server
	err := p.do(ctx, op, func(ctx context.Context) error {
		vm, err := p.getVM(ctx, id, serverProps)
		if err != nil {
			return err
		}
		names, err := p.customFieldNames(ctx, []mo.VirtualMachine{vm})
		if err != nil {
			return err
		}
		s = p.toServer(vm, names, p.ops.inflight())
		return nil
	})
	return s, err
}

// FindServersByTag returns the servers whose tag key has value, ordered by id.
// vSphere cannot filter on custom values or extraConfig server-side, so it
// retrieves the tag properties of every VM in the datacenter (one call), then
// full properties of the matches.
func (p *Provider) FindServersByTag(ctx context.Context, account, key, value string) ([]cloud.Server, error) {
	const op = "find servers by tag"
	if err := p.checkAccount(op, account); err != nil {
		return nil, err
	}
	var out []cloud.Server
	err := p.do(ctx, op, func(ctx context.Context) error {
		var all []mo.VirtualMachine
		if err := p.retrieveView(ctx, p.vmFolder, "VirtualMachine", tagProps, &all); err != nil {
			return err
		}
		all = servers(all)
		names, err := p.customFieldNames(ctx, all)
		if err != nil {
			return err
		}
		var refs []types.ManagedObjectReference
		for _, vm := range all {
			if v, ok := vmTags(vm, names)[key]; ok && v == value {
				refs = append(refs, vm.Self)
			}
		}
		out = nil
		if len(refs) == 0 {
			return nil
		}
		vms, err := p.retrieveVMs(ctx, refs, serverProps)
		if err != nil {
			return err
		}
		if names, err = p.customFieldNames(ctx, vms); err != nil {
			return err
		}
		inflight := p.ops.inflight()
		for _, vm := range vms {
			s := p.toServer(vm, names, inflight)
			if v, ok := s.Tags[key]; ok && v == value && !isTemplate(vm) {
				out = append(out, s)
			}
		}
		return nil
	})
	return out, err
}

// Launch clones the template named by req.Image into the configured folder
// and resource pool and powers the clone on. The tags, image and size go into
// the clone's config spec (extraConfig), so the new VM carries them from the
// moment it exists: a launch handler that crashed after Launch finds the
// server with FindServersByTag. The returned operation's id is the clone
// task's; see [Provider.Operation] for what happens when it completes.
//
// A missing image fails with an error matching cloud.ErrInvalidRequest; an
// unknown image or size with one matching both cloud.ErrInvalidRequest and
// cloud.ErrNotFound. req.Name defaults to
// the image name plus a random suffix; a name already used in the folder
// makes the operation fail (vSphere's DuplicateName), which is a second guard
// against duplicates when names are deterministic.
func (p *Provider) Launch(ctx context.Context, account string, req cloud.LaunchRequest) (cloud.Operation, error) {
	const op = "launch"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.Operation{}, err
	}
	if req.Image == "" {
		return cloud.Operation{}, fmt.Errorf("vsphere: launch: image is required: %w", cloud.ErrInvalidRequest)
	}
	var spec types.VirtualMachineConfigSpec
	if req.Size != "" {
		size, ok := p.cfg.Sizes[req.Size]
		if !ok {
			return cloud.Operation{}, fmt.Errorf("vsphere: launch: unknown size %q: %w: %w (configured sizes: %s)",
				req.Size, cloud.ErrInvalidRequest, cloud.ErrNotFound, strings.Join(slices.Sorted(maps.Keys(p.cfg.Sizes)), ", "))
		}
		spec.NumCPUs, spec.MemoryMB = size.CPUs, size.MemoryMB
	}
	nonce := randomHex(8)
	name := req.Name
	if name == "" {
		name = req.Image + "-" + nonce
	}
	spec.ExtraConfig = []types.BaseOptionValue{
		// Always written, so that values inherited from the template are replaced.
		&types.OptionValue{Key: keyTags, Value: encodeTags(req.Tags)},
		&types.OptionValue{Key: keyImage, Value: req.Image},
		&types.OptionValue{Key: keySize, Value: req.Size},
		&types.OptionValue{Key: keyLaunch, Value: nonce},
	}
	clone := types.VirtualMachineCloneSpec{
		Location: types.VirtualMachineRelocateSpec{Pool: types.NewReference(p.pool.Reference()), Datastore: p.datastore},
		PowerOn:  true,
		Config:   &spec,
	}
	var result cloud.Operation
	err := p.do(ctx, op, func(ctx context.Context) error {
		tmpl, err := p.template(ctx, req.Image)
		if err != nil {
			return err
		}
		task, err := tmpl.Clone(ctx, p.folder, name, clone)
		if err != nil {
			return err
		}
		id := task.Reference().Value
		p.ops.add(&opRecord{
			id: id, kind: kindLaunch, name: name, nonce: nonce, tags: maps.Clone(req.Tags),
			folder: p.folder.Reference(), spec: spec,
		})
		result = cloud.Operation{ID: id, Kind: kindLaunch, State: cloud.OpRunning, UpdatedAt: time.Now()}
		return nil
	})
	return result, err
}

// Terminate powers the VM off (waiting for that, bounded by ctx) if it is on
// or suspended, then starts destroying it. The operation's id is the destroy
// task's. A missing server matches cloud.ErrNotFound.
func (p *Provider) Terminate(ctx context.Context, account, id string) (cloud.Operation, error) {
	const op = "terminate"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.Operation{}, err
	}
	var result cloud.Operation
	err := p.do(ctx, op, func(ctx context.Context) error {
		vm, err := p.getVM(ctx, id, []string{"summary.config.template", "runtime.powerState"})
		if err != nil {
			return err
		}
		obj := object.NewVirtualMachine(p.client, vm.Self)
		if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
			task, err := obj.PowerOff(ctx)
			if err != nil {
				return err
			}
			if err := task.Wait(ctx); err != nil && !isFaultType(err, &types.InvalidPowerState{}) {
				return fmt.Errorf("power off: %w", err)
			}
		}
		task, err := obj.Destroy(ctx)
		if err != nil {
			return err
		}
		tid := task.Reference().Value
		p.ops.add(&opRecord{id: tid, kind: kindTerminate, vmID: id})
		result = cloud.Operation{ID: tid, Kind: kindTerminate, ResourceID: id, State: cloud.OpRunning, UpdatedAt: time.Now()}
		return nil
	})
	return result, err
}

// template resolves an image name to the VM to clone: the Templates entry
// (a name or an inventory path), else a template VM with the image's name.
func (p *Provider) template(ctx context.Context, image string) (*object.VirtualMachine, error) {
	target, mapped := p.cfg.Templates[image]
	if !mapped {
		target = image
	}
	if strings.Contains(target, "/") {
		vm, err := find.NewFinder(p.client, false).SetDatacenter(p.dc).VirtualMachine(ctx, target)
		if err != nil {
			var nf *find.NotFoundError
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("unknown image %q: template %q: %w: %w", image, target, cloud.ErrInvalidRequest, cloud.ErrNotFound)
			}
			return nil, err
		}
		return vm, nil
	}
	var vms []mo.VirtualMachine
	if err := p.retrieveView(ctx, p.vmFolder, "VirtualMachine", []string{"name", "summary.config.template"}, &vms); err != nil {
		return nil, err
	}
	var match []types.ManagedObjectReference
	for _, vm := range vms {
		// A mapped name may be any VM; an unmapped image must be a template.
		if vm.Name == target && (mapped || isTemplate(vm)) {
			match = append(match, vm.Self)
		}
	}
	switch len(match) {
	case 0:
		what := "template VM"
		if mapped {
			what = "VM"
		}
		return nil, fmt.Errorf("unknown image %q: no %s named %q in datacenter %s: %w: %w",
			image, what, target, p.dcName, cloud.ErrInvalidRequest, cloud.ErrNotFound)
	case 1:
		return object.NewVirtualMachine(p.client, match[0]), nil
	default:
		return nil, fmt.Errorf("image %q: %d VMs are named %q in datacenter %s (map the image to an inventory path in Config.Templates): %w",
			image, len(match), target, p.dcName, cloud.ErrInvalidRequest)
	}
}

// getVM retrieves one non-template VM of the datacenter.
func (p *Provider) getVM(ctx context.Context, id string, props []string) (mo.VirtualMachine, error) {
	notFound := fmt.Errorf("server %q: %w", id, cloud.ErrNotFound)
	if !strings.HasPrefix(id, "vm-") {
		return mo.VirtualMachine{}, notFound
	}
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: id}
	var vm mo.VirtualMachine
	if err := p.pc.RetrieveOne(ctx, ref, props, &vm); err != nil {
		if isFaultType(err, &types.ManagedObjectNotFound{}) {
			return vm, notFound
		}
		return vm, err
	}
	if isTemplate(vm) {
		return vm, notFound
	}
	if p.multiDC {
		ancestors, err := mo.Ancestors(ctx, p.client, p.pc.Reference(), ref)
		if err != nil {
			return vm, err
		}
		if !slices.ContainsFunc(ancestors, func(e mo.ManagedEntity) bool { return e.Self == p.dc.Reference() }) {
			return vm, notFound
		}
	}
	return vm, nil
}

// retrieveVMs retrieves props of refs. VMs deleted since the refs were listed
// are dropped (the property collector fails the whole call for one missing
// object, naming it).
func (p *Provider) retrieveVMs(ctx context.Context, refs []types.ManagedObjectReference, props []string) ([]mo.VirtualMachine, error) {
	for len(refs) > 0 {
		var vms []mo.VirtualMachine
		err := p.pc.Retrieve(ctx, refs, props, &vms)
		var missing *types.ManagedObjectNotFound
		if err != nil && isFault(err) {
			if f, ok := asFault[*types.ManagedObjectNotFound](err); ok {
				missing = f
			}
		}
		if missing == nil {
			if err != nil {
				return nil, err
			}
			slices.SortFunc(vms, func(a, b mo.VirtualMachine) int { return compareIDs(a.Self.Value, b.Self.Value) })
			return vms, nil
		}
		n := len(refs)
		refs = slices.DeleteFunc(refs, func(r types.ManagedObjectReference) bool { return r == missing.Obj })
		if len(refs) == n {
			return nil, err
		}
	}
	return nil, nil
}

// servers drops templates and sorts by id.
func servers(vms []mo.VirtualMachine) []mo.VirtualMachine {
	vms = slices.DeleteFunc(vms, isTemplate)
	slices.SortFunc(vms, func(a, b mo.VirtualMachine) int { return compareIDs(a.Self.Value, b.Self.Value) })
	return vms
}

// pageOf selects the page after opts.PageToken from vms, sorted by id.
func pageOf(vms []mo.VirtualMachine, opts cloud.ListOptions) ([]mo.VirtualMachine, string) {
	size := opts.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	size = min(size, MaxPageSize)
	start := 0
	if opts.PageToken != "" {
		start, _ = slices.BinarySearchFunc(vms, opts.PageToken, func(vm mo.VirtualMachine, tok string) int {
			return compareIDs(vm.Self.Value, tok)
		})
		if start < len(vms) && vms[start].Self.Value == opts.PageToken {
			start++
		}
	}
	end := min(start+size, len(vms))
	page := vms[start:end]
	next := ""
	if end < len(vms) && len(page) > 0 {
		next = page[len(page)-1].Self.Value
	}
	return page, next
}

// compareIDs orders managed object reference values: "prefix-N" values first,
// by prefix then by N numerically (vm-9 before vm-10), then any others as
// strings. It is a total order, so page tokens stay valid as VMs come and go.
func compareIDs(a, b string) int {
	pa, na, oka := splitID(a)
	pb, nb, okb := splitID(b)
	switch {
	case oka && okb:
		return cmp.Or(strings.Compare(pa, pb), cmp.Compare(na, nb), strings.Compare(a, b))
	case oka:
		return -1
	case okb:
		return 1
	}
	return strings.Compare(a, b)
}

func splitID(id string) (string, uint64, bool) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return id[:i], n, true
}

func isTemplate(vm mo.VirtualMachine) bool { return vm.Summary.Config.Template }

// serverState maps power state, overridden by what this process knows of
// operations in flight (a launch being powered on, a server being destroyed).
//
//	poweredOn -> RUNNING, poweredOff and suspended -> STOPPED,
//	host disconnected / VM orphaned or inaccessible -> UNKNOWN
func serverState(vm mo.VirtualMachine, inflight map[string]cloud.ServerState) cloud.ServerState {
	if s, ok := inflight[vm.Self.Value]; ok {
		return s
	}
	if cs := vm.Runtime.ConnectionState; cs != "" && cs != types.VirtualMachineConnectionStateConnected {
		return cloud.StateUnknown
	}
	switch vm.Runtime.PowerState {
	case types.VirtualMachinePowerStatePoweredOn:
		return cloud.StateRunning
	case types.VirtualMachinePowerStatePoweredOff, types.VirtualMachinePowerStateSuspended:
		return cloud.StateStopped
	}
	return cloud.StateUnknown
}

func (p *Provider) toServer(vm mo.VirtualMachine, fieldNames map[int32]string, inflight map[string]cloud.ServerState) cloud.Server {
	s := cloud.Server{
		ID:      vm.Self.Value,
		Name:    vm.Name,
		Account: p.account,
		Region:  p.dcName,
		Image:   extraConfig(vm, keyImage),
		Size:    extraConfig(vm, keySize),
		State:   serverState(vm, inflight),
		Tags:    vmTags(vm, fieldNames),
	}
	if s.Size == "" {
		s.Size = p.sizeName(vm.Summary.Config.NumCpu, int64(vm.Summary.Config.MemorySizeMB))
	}
	if vm.Guest != nil && vm.Guest.IpAddress != "" {
		if ip := net.ParseIP(vm.Guest.IpAddress); ip != nil && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			s.PublicIPs = []string{vm.Guest.IpAddress}
		} else {
			s.PrivateIPs = []string{vm.Guest.IpAddress}
		}
	}
	if vm.Config != nil && vm.Config.CreateDate != nil {
		s.LaunchedAt = vm.Config.CreateDate.UTC()
	}
	return s
}

// sizeName names a VM's hardware: the first configured size (by name) that
// matches, else "<cpus>cpu-<memory>mb".
func (p *Provider) sizeName(cpus int32, memMB int64) string {
	if cpus == 0 && memMB == 0 {
		return ""
	}
	for _, name := range slices.Sorted(maps.Keys(p.cfg.Sizes)) {
		if sz := p.cfg.Sizes[name]; sz.CPUs == cpus && sz.MemoryMB == memMB {
			return name
		}
	}
	return fmt.Sprintf("%dcpu-%dmb", cpus, memMB)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

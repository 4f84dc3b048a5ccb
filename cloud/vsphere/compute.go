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

// ListServers returns one page of the covered datacenters' VMs (templates
// excluded), ordered by datacenter (by reference) then by id. Each server's
// Region is its datacenter's name. It retrieves the template flag of every
// VM of the datacenters the page reaches (one container view each; usually
// one), picks the page, then retrieves full properties for the page's VMs
// only. The first page (no PageToken) lists the vCenter's datacenters
// afresh, so that an account covering every datacenter sees new ones.
func (p *Provider) ListServers(ctx context.Context, account string, opts cloud.ListOptions) (cloud.ServerPage, error) {
	const op = "list servers"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.ServerPage{}, err
	}
	var page cloud.ServerPage
	err := p.do(ctx, op, func(ctx context.Context) error {
		selected, next, err := p.listPage(ctx, pageProps, opts)
		if err != nil {
			return err
		}
		refs := make([]types.ManagedObjectReference, len(selected))
		for i, l := range selected {
			refs[i] = l.vm.Self
		}
		vms, err := p.retrieveVMs(ctx, refs, serverProps)
		if err != nil {
			return err
		}
		names, err := p.customFieldNames(ctx, vms)
		if err != nil {
			return err
		}
		byRef := make(map[types.ManagedObjectReference]mo.VirtualMachine, len(vms))
		for _, vm := range vms {
			byRef[vm.Self] = vm
		}
		inflight := p.ops.inflight()
		page = cloud.ServerPage{NextToken: next, Servers: make([]cloud.Server, 0, len(vms))}
		for _, l := range selected {
			// Gone, or marked a template, between the two calls: skipped.
			if vm, ok := byRef[l.vm.Self]; ok && !isTemplate(vm) {
				page.Servers = append(page.Servers, p.toServer(vm, l.dc.name, names, inflight))
			}
		}
		return nil
	})
	return page, err
}

// ListServerStatus returns one page of ids and states, in the order of
// [Provider.ListServers]: one property collector call per datacenter the
// page reaches (usually one), retrieving three small properties per VM
// (plus creating and destroying the container view it reads through).
func (p *Provider) ListServerStatus(ctx context.Context, account string, opts cloud.ListOptions) (cloud.StatusPage, error) {
	const op = "list server status"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.StatusPage{}, err
	}
	var page cloud.StatusPage
	err := p.do(ctx, op, func(ctx context.Context) error {
		selected, next, err := p.listPage(ctx, statusProps, opts)
		if err != nil {
			return err
		}
		inflight := p.ops.inflight()
		page = cloud.StatusPage{NextToken: next, Statuses: make([]cloud.ServerStatus, len(selected))}
		for i, l := range selected {
			page.Statuses[i] = cloud.ServerStatus{ID: l.vm.Self.Value, State: serverState(l.vm, inflight)}
		}
		return nil
	})
	return page, err
}

// listed is a VM of a listing and its datacenter.
type listed struct {
	vm mo.VirtualMachine
	dc datacenter
}

// listPage selects the page after opts.PageToken: the covered datacenters in
// order of reference, each one's servers in order of id. It retrieves props
// (which must include the template flag) of every VM of each datacenter it
// reaches, through one container view each, and stops at the first that
// fills the page. NextToken names the datacenter and the page's last VM, so
// a token stays valid while VMs and datacenters come and go.
func (p *Provider) listPage(ctx context.Context, props []string, opts cloud.ListOptions) ([]listed, string, error) {
	dcs, err := p.coverage(ctx, opts.PageToken == "")
	if err != nil {
		return nil, "", err
	}
	size := opts.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	size = min(size, MaxPageSize)
	tok := parseToken(opts.PageToken)
	first := 0
	if tok.dc != "" {
		var found bool
		first, found = slices.BinarySearchFunc(dcs, tok.dc, func(dc datacenter, ref string) int {
			return compareIDs(dc.ref.Value, ref)
		})
		if !found {
			tok.vm = "" // that datacenter is gone: start at the next one
		}
	}
	var out []listed
	for i := first; i < len(dcs); i++ {
		dc := dcs[i]
		var all []mo.VirtualMachine
		err := p.retrieveView(ctx, dc.vmFolder, "VirtualMachine", props, &all)
		if isFaultType(err, &types.ManagedObjectNotFound{}) {
			continue // the datacenter was deleted since the coverage was read
		}
		if err != nil {
			return nil, "", fmt.Errorf("datacenter %s: %w", dc.name, err)
		}
		vms := servers(all)
		from := 0
		if i == first && tok.vm != "" {
			from = after(vms, tok.vm)
		}
		take := min(size-len(out), len(vms)-from)
		for _, vm := range vms[from : from+take] {
			out = append(out, listed{vm: vm, dc: dc})
		}
		if len(out) == size {
			switch {
			case from+take < len(vms):
				return out, pageToken{dc: dc.ref.Value, vm: out[len(out)-1].vm.Self.Value}.String(), nil
			case i+1 < len(dcs):
				// The page ends with the datacenter: the next starts with
				// the next datacenter, not reading this one again.
				return out, pageToken{dc: dcs[i+1].ref.Value}.String(), nil
			}
			break
		}
	}
	return out, "", nil
}

// after returns the index of the first of vms (sorted by id) after id.
func after(vms []mo.VirtualMachine, id string) int {
	i, found := slices.BinarySearchFunc(vms, id, func(vm mo.VirtualMachine, id string) int {
		return compareIDs(vm.Self.Value, id)
	})
	if found {
		i++
	}
	return i
}

// GetServer returns one VM by id (its managed object reference value, e.g.
// "vm-42", unique in the vCenter). Templates, VMs of datacenters the
// provider does not cover and unknown ids match cloud.ErrNotFound.
func (p *Provider) GetServer(ctx context.Context, account, id string) (cloud.Server, error) {
	const op = "get server"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.Server{}, err
	}
	var s cloud.Server
	err := p.do(ctx, op, func(ctx context.Context) error {
		vm, dc, err := p.getVM(ctx, id, serverProps)
		if err != nil {
			return err
		}
		names, err := p.customFieldNames(ctx, []mo.VirtualMachine{vm})
		if err != nil {
			return err
		}
		s = p.toServer(vm, dc.name, names, p.ops.inflight())
		return nil
	})
	return s, err
}

// FindServersByTag returns the servers whose tag key has value, in the
// order of [Provider.ListServers]. vSphere cannot filter on custom values or
// extraConfig server-side, so it lists the vCenter's datacenters afresh,
// retrieves the tag properties of every VM in each covered datacenter (one
// call each), then full properties of the matches.
func (p *Provider) FindServersByTag(ctx context.Context, account, key, value string) ([]cloud.Server, error) {
	const op = "find servers by tag"
	if err := p.checkAccount(op, account); err != nil {
		return nil, err
	}
	var out []cloud.Server
	err := p.do(ctx, op, func(ctx context.Context) error {
		dcs, err := p.coverage(ctx, true)
		if err != nil {
			return err
		}
		var all []listed
		for _, dc := range dcs {
			var vms []mo.VirtualMachine
			err := p.retrieveView(ctx, dc.vmFolder, "VirtualMachine", tagProps, &vms)
			if isFaultType(err, &types.ManagedObjectNotFound{}) {
				continue // deleted since
			}
			if err != nil {
				return fmt.Errorf("datacenter %s: %w", dc.name, err)
			}
			for _, vm := range servers(vms) {
				all = append(all, listed{vm: vm, dc: dc})
			}
		}
		tagged := make([]mo.VirtualMachine, len(all))
		for i, l := range all {
			tagged[i] = l.vm
		}
		names, err := p.customFieldNames(ctx, tagged)
		if err != nil {
			return err
		}
		var (
			refs    []types.ManagedObjectReference
			matches []listed
		)
		for _, l := range all {
			if v, ok := vmTags(l.vm, names)[key]; ok && v == value {
				refs = append(refs, l.vm.Self)
				matches = append(matches, l)
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
		byRef := make(map[types.ManagedObjectReference]mo.VirtualMachine, len(vms))
		for _, vm := range vms {
			byRef[vm.Self] = vm
		}
		inflight := p.ops.inflight()
		for _, l := range matches {
			vm, ok := byRef[l.vm.Self]
			if !ok || isTemplate(vm) {
				continue
			}
			s := p.toServer(vm, l.dc.name, names, inflight)
			if v, ok := s.Tags[key]; ok && v == value {
				out = append(out, s)
			}
		}
		return nil
	})
	return out, err
}

// Launch clones the template named by req.Image into the launch placement
// (the folder and resource pool of the launch datacenter; see [Config]
// LaunchDatacenter, resolved at the first launch and kept) and powers the
// clone on. The tags, image and size go into
// the clone's config spec (extraConfig), so the new VM carries them from the
// moment it exists: a launch handler that crashed after Launch finds the
// server with FindServersByTag. The returned operation's id is the clone
// task's; see [Provider.Operation] for what happens when it completes.
//
// A missing image fails with an error matching cloud.ErrInvalidRequest; an
// unknown image or size with one matching both cloud.ErrInvalidRequest and
// cloud.ErrNotFound; a placement that cannot be decided or found (several
// datacenters and nothing saying which, several clusters and no
// ResourcePool, a name that matches nothing) with one matching
// cloud.ErrInvalidRequest and ErrInvalidConfig that names the field and the
// choices. req.Name defaults to the image name plus a random suffix; a name already used in the folder
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
	var result cloud.Operation
	err := p.do(ctx, op, func(ctx context.Context) error {
		pl, err := p.placement(ctx)
		if err != nil {
			return err
		}
		tmpl, err := p.template(ctx, pl, req.Image)
		if err != nil {
			return err
		}
		clone := types.VirtualMachineCloneSpec{
			Location: types.VirtualMachineRelocateSpec{Pool: types.NewReference(pl.pool.Reference()), Datastore: pl.datastore},
			PowerOn:  true,
			Config:   &spec,
		}
		task, err := tmpl.Clone(ctx, pl.folder, name, clone)
		if err != nil {
			if isFaultType(err, &types.ManagedObjectNotFound{}) {
				p.forgetPlacement(pl) // the folder or pool is gone: resolve again next time
			}
			return err
		}
		id := task.Reference().Value
		p.ops.add(&opRecord{
			id: id, kind: kindLaunch, name: name, nonce: nonce, tags: maps.Clone(req.Tags),
			folder: pl.folder.Reference(), spec: spec,
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
		vm, _, err := p.getVM(ctx, id, []string{"summary.config.template", "runtime.powerState"})
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
func (p *Provider) template(ctx context.Context, pl *placement, image string) (*object.VirtualMachine, error) {
	target, mapped := p.cfg.Templates[image]
	if !mapped {
		target = image
	}
	if strings.Contains(target, "/") {
		vm, err := p.finder(pl.dc).VirtualMachine(ctx, target)
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
	if err := p.retrieveView(ctx, pl.dc.vmFolder, "VirtualMachine", []string{"name", "summary.config.template"}, &vms); err != nil {
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
			image, what, target, pl.dc.name, cloud.ErrInvalidRequest, cloud.ErrNotFound)
	case 1:
		return object.NewVirtualMachine(p.client, match[0]), nil
	default:
		return nil, fmt.Errorf("image %q: %d VMs are named %q in datacenter %s (map the image to an inventory path in Config.Templates): %w",
			image, len(match), target, pl.dc.name, cloud.ErrInvalidRequest)
	}
}

// getVM retrieves one non-template VM of a covered datacenter, and that
// datacenter (its reference and name).
func (p *Provider) getVM(ctx context.Context, id string, props []string) (mo.VirtualMachine, datacenter, error) {
	notFound := fmt.Errorf("server %q: %w", id, cloud.ErrNotFound)
	if !strings.HasPrefix(id, "vm-") {
		return mo.VirtualMachine{}, datacenter{}, notFound
	}
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: id}
	var vm mo.VirtualMachine
	if err := p.pc.RetrieveOne(ctx, ref, props, &vm); err != nil {
		if isFaultType(err, &types.ManagedObjectNotFound{}) {
			return vm, datacenter{}, notFound
		}
		return vm, datacenter{}, err
	}
	if isTemplate(vm) {
		return vm, datacenter{}, notFound
	}
	ancestors, err := mo.Ancestors(ctx, p.client, p.pc.Reference(), ref)
	if isFaultType(err, &types.ManagedObjectNotFound{}) {
		return vm, datacenter{}, notFound // deleted meanwhile
	}
	if err != nil {
		return vm, datacenter{}, err
	}
	dc, ok := p.covers(ancestors)
	if !ok {
		return vm, datacenter{}, notFound
	}
	return vm, dc, nil
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

func (p *Provider) toServer(vm mo.VirtualMachine, region string, fieldNames map[int32]string, inflight map[string]cloud.ServerState) cloud.Server {
	s := cloud.Server{
		ID:      vm.Self.Value,
		Name:    vm.Name,
		Account: p.account,
		Region:  region,
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

package vsphere

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// Operation kinds.
const (
	kindLaunch    = "launch"
	kindTerminate = "terminate"
)

// maxTrackedOperations bounds the in-process record of operations a Provider
// started (see [Provider.Operation]); the oldest are forgotten first.
const maxTrackedOperations = 1024

// Operation returns the state of a vSphere task by id (its managed object
// reference value, e.g. "task-123"): queued or running -> OpRunning, success
// -> OpSucceeded, error -> OpFailed with the fault's name and message.
// ResourceID is the new VM's id for a clone, the VM's id for other VM tasks.
//
// For launches this Provider started, success also needs follow-up steps
// that vCenter does inside the clone task but a simulator may not: when the
// clone task succeeds, Operation checks that the VM carries the clone's config
// spec (tags, image, size in extraConfig; CPUs and memory) and applies it if
// not (vcsim ignores CloneSpec.Config); mirrors the tags into custom
// attributes (best effort); and, if the VM is still off (vcsim ignores
// CloneSpec.PowerOn), powers it on. The operation stays OpRunning until that
// power-on task succeeds; meanwhile listings report the VM as PENDING.
//
// vCenter forgets finished tasks after a while (about ten minutes). The
// Provider keeps a bounded in-process record of the last 1024 operations it
// started, so their outcome stays queryable after vCenter has forgotten the
// task: a terminate succeeded if the VM is gone; a launch succeeded if the
// folder holds a VM of the launch's name carrying the launch's id. An
// unknown task that this process did not start matches cloud.ErrNotFound.
func (p *Provider) Operation(ctx context.Context, account, id string) (cloud.Operation, error) {
	const op = "operation"
	if err := p.checkAccount(op, account); err != nil {
		return cloud.Operation{}, err
	}
	rec := p.ops.get(id)
	if rec != nil {
		rec.busy.Lock() // one evaluation (and follow-up step) at a time
		defer rec.busy.Unlock()
		if final := p.ops.final(rec); final != nil {
			return *final, nil
		}
	}
	var result cloud.Operation
	err := p.do(ctx, op, func(ctx context.Context) error {
		var err error
		result, err = p.evaluate(ctx, id, rec)
		return err
	})
	if err != nil {
		return cloud.Operation{}, err
	}
	if rec != nil && result.State.Terminal() {
		p.ops.finish(rec, result)
	}
	return result, nil
}

func (p *Provider) evaluate(ctx context.Context, id string, rec *opRecord) (cloud.Operation, error) {
	var t mo.Task
	err := p.pc.RetrieveOne(ctx, types.ManagedObjectReference{Type: "Task", Value: id}, []string{"info"}, &t)
	if isFaultType(err, &types.ManagedObjectNotFound{}) {
		if rec == nil {
			return cloud.Operation{}, fmt.Errorf("task %q: %w", id, cloud.ErrNotFound)
		}
		return p.reconcile(ctx, rec)
	}
	if err != nil {
		return cloud.Operation{}, err
	}
	info := t.Info
	res := cloud.Operation{ID: id, Kind: taskKind(rec, info), UpdatedAt: taskTime(info)}
	if info.Entity != nil && info.Entity.Type == "VirtualMachine" && res.Kind != kindLaunch {
		res.ResourceID = info.Entity.Value
	}
	switch info.State {
	case types.TaskInfoStateQueued, types.TaskInfoStateRunning:
		res.State = cloud.OpRunning
		return res, nil
	case types.TaskInfoStateError:
		res.State = cloud.OpFailed
		res.Error = taskError(info.Error)
		return res, nil
	}
	res.State = cloud.OpSucceeded
	if res.Kind == kindLaunch {
		if ref, ok := info.Result.(types.ManagedObjectReference); ok {
			res.ResourceID = ref.Value
		}
		if rec != nil && res.ResourceID != "" {
			return p.finishLaunch(ctx, rec, res)
		}
	}
	return res, nil
}

// finishLaunch runs the follow-up steps of a launch whose clone task
// succeeded (res), and reports the launch's state.
func (p *Provider) finishLaunch(ctx context.Context, rec *opRecord, res cloud.Operation) (cloud.Operation, error) {
	vm := types.ManagedObjectReference{Type: "VirtualMachine", Value: res.ResourceID}
	p.ops.setVM(rec, vm.Value)
	if !rec.configured {
		// vCenter applies the clone's config spec; a clone that ignored it
		// (vcsim does) gets it now, before the first power-on.
		var m mo.VirtualMachine
		if err := p.pc.RetrieveOne(ctx, vm, []string{"config.extraConfig"}, &m); err != nil {
			return res, err
		}
		if extraConfig(m, keyLaunch) != rec.nonce {
			task, err := object.NewVirtualMachine(p.client, vm).Reconfigure(ctx, rec.spec)
			if err != nil {
				return res, err
			}
			if err := task.Wait(ctx); err != nil {
				if isNotAuthenticated(err) || ctx.Err() != nil {
					return res, err
				}
				res.State, res.Error = cloud.OpFailed, "apply config spec: "+err.Error()
				return res, nil
			}
		}
		rec.configured = true
	}
	if !rec.mirrored {
		if err := p.mirrorTags(ctx, vm, rec.tags); err != nil {
			if isNotAuthenticated(err) || ctx.Err() != nil {
				return res, err
			}
			// The tags are in extraConfig already; the attributes only mirror them.
			p.log.WarnContext(ctx, "vsphere: could not mirror tags into custom attributes",
				"vm", vm.Value, "operation", rec.id, "error", err.Error())
		}
		rec.mirrored = true
	}
	if rec.powerOnTask == "" {
		var m mo.VirtualMachine
		if err := p.pc.RetrieveOne(ctx, vm, []string{"runtime.powerState"}, &m); err != nil {
			return res, err
		}
		if m.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
			return res, nil
		}
		task, err := object.NewVirtualMachine(p.client, vm).PowerOn(ctx)
		if err != nil {
			return res, err
		}
		rec.powerOnTask = task.Reference().Value
	}
	var t mo.Task
	if err := p.pc.RetrieveOne(ctx, types.ManagedObjectReference{Type: "Task", Value: rec.powerOnTask}, []string{"info"}, &t); err != nil {
		if !isFaultType(err, &types.ManagedObjectNotFound{}) {
			return res, err
		}
		// vCenter forgot the power-on task: judge by the VM.
		var m mo.VirtualMachine
		if err := p.pc.RetrieveOne(ctx, vm, []string{"runtime.powerState"}, &m); err != nil {
			return res, err
		}
		if m.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
			res.State, res.Error = cloud.OpFailed, "power on: task expired and the server is not powered on"
		}
		return res, nil
	}
	res.UpdatedAt = taskTime(t.Info)
	switch t.Info.State {
	case types.TaskInfoStateQueued, types.TaskInfoStateRunning:
		res.State = cloud.OpRunning
	case types.TaskInfoStateError:
		res.State, res.Error = cloud.OpFailed, "power on: "+taskError(t.Info.Error)
	}
	return res, nil
}

// reconcile judges an operation this process started whose task vCenter no
// longer knows.
func (p *Provider) reconcile(ctx context.Context, rec *opRecord) (cloud.Operation, error) {
	res := cloud.Operation{ID: rec.id, Kind: rec.kind, UpdatedAt: time.Now()}
	vmID := p.ops.vm(rec)
	switch rec.kind {
	case kindTerminate:
		res.ResourceID = vmID
		_, _, err := p.getVM(ctx, vmID, []string{"summary.config.template"})
		switch {
		case errors.Is(err, cloud.ErrNotFound):
			res.State = cloud.OpSucceeded
		case err != nil:
			return res, err
		default:
			res.State, res.Error = cloud.OpFailed, "the task expired and the server still exists"
		}
		return res, nil
	case kindLaunch:
		if vmID == "" {
			ref, err := object.NewSearchIndex(p.client).FindChild(ctx, object.NewFolder(p.client, rec.folder), rec.name)
			if err != nil {
				return res, err
			}
			if ref != nil && ref.Reference().Type == "VirtualMachine" {
				var m mo.VirtualMachine
				if err := p.pc.RetrieveOne(ctx, ref.Reference(), []string{"config.extraConfig"}, &m); err != nil {
					return res, err
				}
				if extraConfig(m, keyLaunch) == rec.nonce {
					vmID = ref.Reference().Value
				}
			}
		}
		if vmID == "" {
			res.State, res.Error = cloud.OpFailed, fmt.Sprintf("the task expired and no server %q of this launch exists", rec.name)
			return res, nil
		}
		res.State, res.ResourceID = cloud.OpSucceeded, vmID
		return p.finishLaunch(ctx, rec, res)
	}
	return res, fmt.Errorf("task %q: %w", rec.id, cloud.ErrNotFound)
}

func taskKind(rec *opRecord, info types.TaskInfo) string {
	if rec != nil {
		return rec.kind
	}
	switch info.DescriptionId {
	case "VirtualMachine.clone", "VirtualMachine.cloneVm":
		return kindLaunch
	case "VirtualMachine.destroy":
		return kindTerminate
	}
	if info.DescriptionId != "" {
		return info.DescriptionId
	}
	return info.Name
}

func taskTime(info types.TaskInfo) time.Time {
	for _, t := range []*time.Time{info.CompleteTime, info.StartTime} {
		if t != nil {
			return t.UTC()
		}
	}
	return info.QueueTime.UTC()
}

// taskError describes a task's fault: its type name and localized message.
func taskError(f *types.LocalizedMethodFault) string {
	if f == nil {
		return "unknown error"
	}
	name := ""
	if f.Fault != nil {
		name = faultName(f.Fault)
	}
	msg := f.LocalizedMessage
	switch {
	case name == "":
		return msg
	case msg == "" || strings.Contains(msg, name):
		return name
	}
	return name + ": " + msg
}

// opRecord is what this process remembers of an operation it started.
// Fields below busy are guarded by busy (held by Operation while it
// evaluates); vmID and final by opLog.mu (read by listings).
type opRecord struct {
	id, kind string
	// launch
	name   string
	nonce  string
	folder types.ManagedObjectReference
	tags   map[string]string

	spec types.VirtualMachineConfigSpec // the clone's config spec

	busy        sync.Mutex
	configured  bool
	mirrored    bool
	powerOnTask string

	vmID  string
	final *cloud.Operation
}

// opLog is a bounded record of operations, oldest forgotten first.
type opLog struct {
	mu    sync.Mutex
	max   int
	recs  map[string]*opRecord
	order []string
}

func newOpLog(max int) *opLog { return &opLog{max: max, recs: map[string]*opRecord{}} }

func (l *opLog) add(r *opRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.recs[r.id]; ok {
		return
	}
	l.recs[r.id] = r
	l.order = append(l.order, r.id)
	for len(l.order) > l.max {
		delete(l.recs, l.order[0])
		l.order = l.order[1:]
	}
}

func (l *opLog) get(id string) *opRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recs[id]
}

func (l *opLog) final(r *opRecord) *cloud.Operation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return r.final
}

func (l *opLog) finish(r *opRecord, op cloud.Operation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.final = &op
	if op.ResourceID != "" {
		r.vmID = op.ResourceID
	}
}

func (l *opLog) setVM(r *opRecord, vm string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.vmID = vm
}

func (l *opLog) vm(r *opRecord) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return r.vmID
}

// inflight returns the states of VMs with an unfinished operation: PENDING
// for a launch whose follow-up steps are running, STOPPING for a terminate.
func (l *opLog) inflight() map[string]cloud.ServerState {
	l.mu.Lock()
	defer l.mu.Unlock()
	var m map[string]cloud.ServerState
	for _, r := range l.recs {
		if r.final != nil || r.vmID == "" {
			continue
		}
		if m == nil {
			m = map[string]cloud.ServerState{}
		}
		switch r.kind {
		case kindLaunch:
			m[r.vmID] = cloud.StatePending
		case kindTerminate:
			m[r.vmID] = cloud.StateStopping
		}
	}
	return m
}

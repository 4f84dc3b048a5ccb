package vcsimtest

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// HonourCloneSpec makes the clone task of the VM (or template) ref in m apply
// CloneSpec.Config the way vCenter does. [New] does it for its templates
// unless Options.PlainClone is set.
//
// vcsim v0.52.0 builds a clone from its source and copies ExtraConfig,
// NumCPUs and MemoryMB from the spec into a copy of the config that it then
// discards (simulator/virtual_machine.go, CloneVMTask), so a clone never
// carries a launch's tags. Wrapped, the clone task runs vcsim's clone, then
// reconfigures the new VM with those three parts of the spec, and only then
// completes: whoever sees the task finished sees the tags. (On vCenter the
// spec is applied as the VM is created.)
func HonourCloneSpec(m *simulator.Model, ref types.ManagedObjectReference) {
	vm := m.Map().Get(ref).(*simulator.VirtualMachine)
	m.Map().Put(&cloneSpecVM{vm})
}

// cloneSpecVM is a simulator VM whose clone task applies the clone spec.
type cloneSpecVM struct {
	*simulator.VirtualMachine
}

func (vm *cloneSpecVM) CloneVMTask(ctx *simulator.Context, req *types.CloneVM_Task) soap.HasFault {
	task := simulator.CreateTask(vm.VirtualMachine, "cloneVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		body := vm.VirtualMachine.CloneVMTask(ctx, req).(*methods.CloneVM_TaskBody)
		inner := ctx.Map.Get(body.Res.Returnval).(*simulator.Task)
		inner.Wait()
		if inner.Info.Error != nil {
			return nil, inner.Info.Error.Fault
		}
		ref := inner.Info.Result.(types.ManagedObjectReference)
		if c := req.Spec.Config; c != nil {
			clone := ctx.Map.Get(ref).(*simulator.VirtualMachine)
			spec := types.VirtualMachineConfigSpec{ExtraConfig: c.ExtraConfig, NumCPUs: c.NumCPUs, MemoryMB: c.MemoryMB}
			rbody := clone.ReconfigVMTask(ctx, &types.ReconfigVM_Task{This: ref, Spec: spec}).(*methods.ReconfigVM_TaskBody)
			reconfig := ctx.Map.Get(rbody.Res.Returnval).(*simulator.Task)
			reconfig.Wait()
			if reconfig.Info.Error != nil {
				return nil, reconfig.Info.Error.Fault
			}
		}
		return ref, nil
	})
	return &methods.CloneVM_TaskBody{Res: &types.CloneVM_TaskResponse{Returnval: task.Run(ctx)}}
}

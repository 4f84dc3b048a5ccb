// Package vcsimtest runs an in-process vCenter simulator (govmomi's vcsim)
// for tests of code that uses the vsphere provider.
//
// [New] starts a fresh simulator for one test and stops it when the test
// ends:
//
//	sim := vcsimtest.New(t, vcsimtest.Options{})
//	p := sim.Provider(t)
//	op, err := p.Launch(ctx, sim.Account(), cloud.LaunchRequest{Image: vcsimtest.DefaultImage})
//	// ... wait for op; then sim.VMCount(t) == 1
//
// Each datacenter holds a cluster of one host (Options.Clusters of them),
// Options.Servers powered-on VMs and one template VM, which [Sim.Config] maps every image in
// Options.Images to. The template's clone task applies the clone spec's
// extraConfig, CPUs and memory before it completes, as vCenter does (plain
// vcsim v0.52.0 ignores CloneSpec.Config): the tags a launch writes are on
// the clone as soon as its task has succeeded.
//
// Do not use simulators from parallel tests, nor two at once: vcsim shares
// package-level state between simulators (the evaluation license, option
// templates), and the race detector flags simulators created or served
// concurrently.
package vcsimtest

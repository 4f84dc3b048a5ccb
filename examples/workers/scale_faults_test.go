//go:build faults

package main

import (
	"testing"
	"time"
)

// TestProcessesScaleOutHeavy is TestProcessesScaleOut at the size:
// three publishers and two subscribers share 10,000 targets at a short
// interval (5,000 sim accounts, each with server and server-status every
// 10s; no other kind is polled), with the default lease period.
func TestProcessesScaleOutHeavy(t *testing.T) {
	testScaleOut(t, scaleRun{accounts: 5000, every: 10 * time.Second, lease: 15 * time.Second, shards: 64})
}

package testenv

import (
	"fmt"
	"syscall"
)

// A signal the controls send; mapped to the OS's signal numbers here so that
// the package still compiles where SIGSTOP does not exist.
type signal int

const (
	sigKill signal = iota
	sigTerm
	sigStop
	sigCont
)

var sysSignals = map[signal]syscall.Signal{
	sigKill: syscall.SIGKILL,
	sigTerm: syscall.SIGTERM,
	sigStop: syscall.SIGSTOP,
	sigCont: syscall.SIGCONT,
}

func (s signal) String() string { return sysSignals[s].String() }

// sendSignal sends s to pid.
func sendSignal(pid int, s signal) error {
	if err := syscall.Kill(pid, sysSignals[s]); err != nil {
		return fmt.Errorf("testenv: send %v to pid %d: %w", sysSignals[s], pid, err)
	}
	return nil
}

// childAttr makes a child process die with the test process (SIGKILL when the
// parent goes), so a private server never outlives a test binary that was
// killed by -timeout.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

//go:build !linux

package testenv

import (
	"fmt"
	"runtime"
	"syscall"
)

// The service controls read /proc and send Linux signals; elsewhere they fail
// with a clear error (the package still compiles for the ordinary tests).
type signal int

const (
	sigKill signal = iota
	sigTerm
	sigStop
	sigCont
)

func (s signal) String() string { return [...]string{"SIGKILL", "SIGTERM", "SIGSTOP", "SIGCONT"}[s] }

func sendSignal(pid int, s signal) error {
	return fmt.Errorf("testenv: cannot send %v to pid %d: service controls need Linux, not %s", s, pid, runtime.GOOS)
}

func childAttr() *syscall.SysProcAttr { return nil }

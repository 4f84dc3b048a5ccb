package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func writePIDFile(t *testing.T, pid int) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "x.pid")
	require.NoError(t, os.WriteFile(f, []byte(strconv.Itoa(pid)+"\n"), 0o644))
	return f
}

func listen(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestFindPID(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	me := os.Getpid()
	port := listen(t)

	t.Run("PIDFileAndPortAgree", func(t *testing.T) {
		pid, err := FindPID(writePIDFile(t, me), port)
		require.NoError(t, err)
		require.Equal(t, me, pid)
	})
	t.Run("PortOnly", func(t *testing.T) {
		pid, err := ListeningPID(port)
		require.NoError(t, err)
		require.Equal(t, me, pid)
		pid, err = FindPID(filepath.Join(t.TempDir(), "missing.pid"), port)
		require.NoError(t, err)
		require.Equal(t, me, pid, "a missing pid file falls back to the port")
	})
	t.Run("PIDFileOnly", func(t *testing.T) {
		pid, err := FindPID(writePIDFile(t, me), 0)
		require.NoError(t, err)
		require.Equal(t, me, pid)
	})
	t.Run("NothingThere", func(t *testing.T) {
		free, err := freePort()
		require.NoError(t, err)
		_, err = FindPID(filepath.Join(t.TempDir(), "missing.pid"), free)
		require.ErrorIs(t, err, ErrNotRunning)
		_, err = FindPID(writePIDFile(t, 1<<30), free)
		require.ErrorIs(t, err, ErrNotRunning, "a pid that does not exist")
		_, err = FindPID("", 0)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrNotRunning)
	})
	t.Run("ReusedPID", func(t *testing.T) {
		f := writePIDFile(t, me)
		old := time.Now().Add(-time.Hour)
		require.NoError(t, os.Chtimes(f, old, old)) // written long before this process started
		_, err := FindPID(f, 0)
		require.ErrorIs(t, err, ErrNotRunning)
		require.ErrorContains(t, err, "reused")
		pid, err := FindPID(f, port)
		require.NoError(t, err, "then the port decides")
		require.Equal(t, me, pid)
	})
	t.Run("Disagree", func(t *testing.T) {
		child := exec.Command("sleep", "30")
		require.NoError(t, child.Start())
		t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
		_, err := FindPID(writePIDFile(t, child.Process.Pid), port)
		require.ErrorContains(t, err, "refusing to guess", "a pid file naming another process than the port's")
		require.NotErrorIs(t, err, ErrNotRunning)
	})
	t.Run("Zombie", func(t *testing.T) {
		child := exec.Command("true")
		require.NoError(t, child.Start())
		require.Eventually(t, func() bool { return processState(child.Process.Pid) == "Z" }, 5*time.Second, 5*time.Millisecond)
		require.False(t, processAlive(child.Process.Pid), "an exited, unreaped process is not alive")
		_, err := FindPID(writePIDFile(t, child.Process.Pid), 0)
		require.ErrorIs(t, err, ErrNotRunning)
		require.NoError(t, child.Wait())
	})
}

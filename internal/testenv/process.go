package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrNotRunning is returned by [FindPID] and [ListeningPID] when no live
// process is found: the pid file is missing or names a process that is gone,
// and nothing listens on the port.
var ErrNotRunning = errors.New("testenv: process not running")

// FindPID returns the pid of the server whose pid file is pidFile and which
// listens on TCP port port (either may be empty/0). It never looks processes up
// by name: another instance of the same program may run on this machine.
//
//   - The pid file is read first; its pid counts only while that process is
//     alive (a zombie counts as gone).
//   - If the pid file gives nothing, the pid listening on the port is used
//     ([ListeningPID]).
//   - If both give a pid and they differ, FindPID returns an error instead of
//     guessing (a stale pid file whose pid was reused, for instance).
//
// A process stopped with SIGSTOP is alive and still found. FindPID returns
// [ErrNotRunning] (wrapped) when neither source names a live process.
func FindPID(pidFile string, port int) (int, error) {
	filePID, fileErr := pidFromFile(pidFile)
	portPID, portErr := 0, error(nil)
	if port > 0 {
		portPID, portErr = ListeningPID(port)
	}
	switch {
	case filePID > 0 && portPID > 0 && filePID != portPID:
		return 0, fmt.Errorf("testenv: pid file %s names pid %d but pid %d listens on port %d; refusing to guess", pidFile, filePID, portPID, port)
	case filePID > 0:
		return filePID, nil
	case portPID > 0:
		return portPID, nil
	}
	var reasons []string
	if pidFile != "" {
		reasons = append(reasons, fileErr.Error())
	}
	if port > 0 {
		reasons = append(reasons, portErr.Error())
	}
	if len(reasons) == 0 {
		return 0, errors.New("testenv: FindPID needs a pid file or a port")
	}
	if (pidFile == "" || errors.Is(fileErr, ErrNotRunning)) && (port == 0 || errors.Is(portErr, ErrNotRunning)) {
		return 0, fmt.Errorf("%w (%s)", ErrNotRunning, strings.Join(reasons, "; "))
	}
	return 0, fmt.Errorf("testenv: cannot find the server's pid: %s", strings.Join(reasons, "; "))
}

// pidFromFile reads a pid file and returns its pid if that process is alive.
// A missing file, or a pid whose process is gone, is ErrNotRunning.
func pidFromFile(path string) (int, error) {
	if path == "" {
		return 0, fmt.Errorf("%w: no pid file", ErrNotRunning)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("%w: no pid file %s", ErrNotRunning, path)
	}
	if err != nil {
		return 0, fmt.Errorf("testenv: read pid file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		if s == "" { // written but not filled in yet, or truncated on exit
			return 0, fmt.Errorf("%w: pid file %s is empty", ErrNotRunning, path)
		}
		return 0, fmt.Errorf("testenv: pid file %s holds %q, not a pid", path, s)
	}
	if !processAlive(pid) {
		return 0, fmt.Errorf("%w: pid %d from %s is gone", ErrNotRunning, pid, path)
	}
	// pids wrap (pid_max is 32768 on many machines): a pid file left behind by
	// a killed server may name an unrelated process by now. The server wrote
	// its pid file after it started; a process that started later is another.
	if fi, err := os.Stat(path); err == nil {
		if started, ok := processStart(pid); ok && started.After(fi.ModTime().Add(2*time.Second)) {
			return 0, fmt.Errorf("%w: pid %d from %s started at %s, after the file was written (%s): the pid was reused",
				ErrNotRunning, pid, path, started.Format(time.TimeOnly), fi.ModTime().Format(time.TimeOnly))
		}
	}
	return pid, nil
}

// userHZ is the unit of /proc/<pid>/stat's start time: USER_HZ, 100 on every
// Linux architecture Go supports.
const userHZ = 100

// processStart returns when pid started, to within a second (the boot time in
// /proc/stat has whole seconds), and false if it cannot tell.
func processStart(pid int) (time.Time, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return time.Time{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return time.Time{}, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); starttime is field 22
	if len(f) < 20 {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, line := range strings.Split(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(boot, 0).Add(time.Duration(ticks) * time.Second / userHZ), true
		}
	}
	return time.Time{}, false
}

// ListeningPID returns the pid of the process that holds the socket listening
// on TCP port port (IPv4 or IPv6, any address). It reads /proc/net/tcp{,6} for
// the listening socket's inode and then finds the process whose file
// descriptors include it, as `ss -ltnp` does; seeing other users' descriptors
// needs root. It returns [ErrNotRunning] (wrapped) when nothing listens on the
// port, and an error when several processes share the socket.
func ListeningPID(port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := listenInodes(f, port, inodes); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("%w: nothing listens on port %d", ErrNotRunning, port)
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("testenv: %w", err)
	}
	found := map[int]bool{}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				found[pid] = true
				break
			}
		}
	}
	pids := make([]int, 0, len(found))
	for pid := range found {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	switch len(pids) {
	case 0:
		return 0, fmt.Errorf("testenv: port %d is listening but no process we can see holds the socket (not root?)", port)
	case 1:
		return pids[0], nil
	default:
		return 0, fmt.Errorf("testenv: processes %v share the socket listening on port %d; refusing to guess", pids, port)
	}
}

// listenInodes adds to inodes the inode of every socket in a /proc/net/tcp
// style file that listens on port.
func listenInodes(path string, port int, inodes map[string]bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" || !strings.HasSuffix(fields[1], want) {
			continue
		}
		if fields[9] != "0" {
			inodes[fields[9]] = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("testenv: read %s: %w", path, err)
	}
	return nil
}

// processState returns the state letter of /proc/<pid>/stat ("R", "S", "T",
// "Z", ...), or "" when the process does not exist.
func processState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// pid (comm) state ...; comm may itself hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// processAlive reports whether pid is a live process. Stopped counts as live;
// a zombie, which only waits for its parent to reap it, does not, once all its
// threads have exited: a multi-threaded process's main thread turns zombie
// first, while the others still hold its files (its listening socket, say).
func processAlive(pid int) bool {
	switch processState(pid) {
	case "":
		return false
	case "Z", "X", "x":
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		return err == nil && len(tasks) > 1
	}
	return true
}

// waitState polls until cond(pid) holds or timeout passes.
func waitState(pid int, timeout time.Duration, cond func(pid int) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func processGone(pid int) bool    { return !processAlive(pid) }
func processStopped(pid int) bool { s := processState(pid); return s == "T" || s == "t" }
func processRunning(pid int) bool { s := processState(pid); return s != "T" && s != "t" }

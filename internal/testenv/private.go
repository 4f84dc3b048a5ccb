package testenv

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// PrivateMariaDB starts a MariaDB server of the test's own, for a test that
// disrupts one database and not the others (e.g. freezes the analytics
// database only): a data directory made by mariadb-install-db in t.TempDir(),
// then mariadbd as a child process with its own free port on 127.0.0.1,
// socket, pid file and error log, reading no option file (--no-defaults), so
// it shares nothing with the shared server. Root logs in over TCP without a password
// ([MariaDB.DSN], [MariaDB.NewDatabase]).
//
// The server runs as the current user (--user=root when that is root). It dies
// with the test binary (Pdeathsig), and the test's cleanup kills it and
// removes its data. Kill, Start, Freeze, Thaw and SetReadOnly work as on the
// shared server and find the process the same way, by its pid file or port.
//
// mariadb-install-db runs once per machine and MariaDB build (see
// mariaDBTemplate, in os.TempDir()); each instance copies its output (26 MB). On the 2-core
// development machine a private server then answers 0.3-1 s after the call
// (0.15-0.6 s of it mariadbd starting; the first call, which runs
// mariadb-install-db, takes 1.5-7 s). The call logs its figures.
//
// The test is skipped when mariadb-install-db or mariadbd is missing, and fails
// instead when CI=true.
func PrivateMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	installer := findBinary("mariadb-install-db", "mysql_install_db")
	server := findBinary("mariadbd")
	if installer == "" || server == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testenv: PrivateMariaDB: mariadb-install-db and mariadbd are needed but CI=true: tests must not skip in CI (install mariadb-server)")
		}
		t.Skip("skipping test with a private MariaDB: mariadb-install-db (or mysql_install_db) and mariadbd not found; install mariadb-server")
	}
	runAs := "root"
	if u, err := user.Current(); err == nil {
		runAs = u.Username
	}

	dir := t.TempDir()
	p := &privateProc{bin: server, logFile: filepath.Join(dir, "error.log")}
	t.Cleanup(p.teardown) // before TempDir's own cleanup removes the data: cleanups run last-in first-out
	dataDir := filepath.Join(dir, "data")
	socket := filepath.Join(dir, "mysqld.sock")
	if len(socket) > 100 { // sun_path holds 108 bytes
		short, err := os.MkdirTemp("", "mdb")
		if err != nil {
			t.Fatalf("testenv: PrivateMariaDB: %v", err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(short) })
		socket = filepath.Join(short, "s.sock")
	}
	pidFile := filepath.Join(dir, "mariadbd.pid")
	common := []string{"--no-defaults", "--datadir=" + dataDir, "--user=" + runAs, "--innodb-log-file-size=" + innodbLogFileSize}

	began := time.Now()
	template, fresh, err := mariaDBTemplate(installer, server, runAs)
	if err != nil {
		t.Fatalf("testenv: PrivateMariaDB: %v", err)
	}
	if err := copyTree(template, dataDir); err != nil {
		t.Fatalf("testenv: PrivateMariaDB: copy the data directory: %v", err)
	}
	installed := time.Now()
	how := "copied the cached mariadb-install-db data directory"
	if fresh {
		how = "ran mariadb-install-db"
	}

	m := &MariaDB{proc: p, owner: t, pidFile: pidFile}
	for attempt := 1; ; attempt++ {
		m.port, err = freePort()
		if err != nil {
			t.Fatalf("testenv: PrivateMariaDB: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port))
		m.desc = "private MariaDB " + addr
		m.admin = mysql.NewConfig()
		m.admin.User, m.admin.Net, m.admin.Addr = "root", "tcp", addr
		p.args = slices.Concat(common, []string{
			"--bind-address=127.0.0.1", "--port=" + strconv.Itoa(m.port), "--socket=" + socket,
			"--pid-file=" + pidFile, "--log-error=" + p.logFile,
			"--port-open-timeout=10", // a restart on the same port waits for it rather than failing
			"--skip-name-resolve", "--performance-schema=OFF", "--innodb-buffer-pool-size=32M",
			"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"})
		// The first start skips m.start's is-it-running lookup: nothing of ours
		// runs yet, and whatever might hold the port is not our server.
		if err = p.start(); err == nil {
			if err = m.WaitReady(time.Minute); err == nil {
				break
			}
		}
		// Another process may have taken the free port between freePort and mariadbd's bind.
		if attempt == 3 || !strings.Contains(p.logTail(), "already in use") {
			t.Fatalf("testenv: PrivateMariaDB: %v", err)
		}
	}
	t.Logf("testenv: %s ready in %v (%s in %v, mariadbd started in %v)", m,
		time.Since(began).Round(time.Millisecond), how, installed.Sub(began).Round(time.Millisecond),
		time.Since(installed).Round(time.Millisecond))
	return m
}

// innodbLogFileSize is the private servers' redo log size (the default, 96M,
// is written out in full by mariadb-install-db).
const innodbLogFileSize = "8M"

var templateMu sync.Mutex // one mariadb-install-db at a time in this process

// mariaDBTemplate returns a data directory made by mariadb-install-db, which
// PrivateMariaDB copies rather than running mariadb-install-db for every test
// (it takes 1-5 s, the copy a few tens of ms). The directory is a cache like
// Go's build cache: os.TempDir()/testenv-mariadb-<key>, where the key covers
// the binaries (path, size, modification time), the user and the options, and
// it stays for the next test binary. It is built aside and renamed into
// place, so concurrent test binaries never see a partial one. fresh reports
// whether this call built it.
func mariaDBTemplate(installer, server, runAs string) (dir string, fresh bool, err error) {
	args := []string{"--no-defaults", "--user=" + runAs, "--innodb-log-file-size=" + innodbLogFileSize,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}
	h := sha256.New()
	for _, bin := range []string{installer, server} {
		fi, err := os.Stat(bin)
		if err != nil {
			return "", false, err
		}
		fmt.Fprintf(h, "%s %d %d\n", bin, fi.Size(), fi.ModTime().UnixNano())
	}
	fmt.Fprintln(h, strings.Join(args, " "))
	dir = filepath.Join(os.TempDir(), fmt.Sprintf("testenv-mariadb-%x", h.Sum(nil)[:8]))
	data := filepath.Join(dir, "data")

	templateMu.Lock()
	defer templateMu.Unlock()
	if _, err := os.Stat(data); err == nil {
		return data, false, nil
	}
	build, err := os.MkdirTemp(os.TempDir(), "testenv-mariadb-build-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(build) // a no-op once renamed
	install := exec.Command(installer, append(args, "--datadir="+filepath.Join(build, "data"))...)
	if out, err := install.CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("%s: %w\n%s", install, err, out)
	}
	if err := os.Rename(build, dir); err != nil {
		if _, statErr := os.Stat(data); statErr == nil {
			return data, false, nil // another test binary was quicker
		}
		return "", false, err
	}
	return data, true, nil
}

// copyTree copies the directory tree src to dst (which must not exist),
// keeping file modes.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Mkdir(target, info.Mode().Perm())
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			_ = out.Close()
			return err
		}
		return out.Close()
	})
}

// findBinary returns the first of names found in PATH or the usual sbin and
// libexec directories, or "".
func findBinary(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/usr/libexec", "/usr/local/mysql/bin", "/usr/local/mysql/scripts"} {
			p := filepath.Join(dir, n)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testenv: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// privateProc is the mariadbd child process of a private instance.
type privateProc struct {
	bin     string
	args    []string
	logFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited and been reaped
	err  error         // why cmd exited, once done is closed
}

var errExitedCleanly = errors.New("exit status 0")

// start starts a new mariadbd process; it does not wait for it to answer.
func (p *privateProc) start() error {
	cmd := exec.Command(p.bin, p.args...)
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: start %s: %w", p.bin, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() { // reap it at once, so that a killed server is gone, not a zombie
		err := cmd.Wait()
		if err == nil {
			err = errExitedCleanly
		}
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// exitErr returns nil while the last process started runs, and why it exited
// once it has.
func (p *privateProc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return errors.New("not started")
	}
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// teardown kills the process through the handle the test holds (no lookup can
// go wrong here) and waits until it has been reaped.
func (p *privateProc) teardown() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(killTimeout):
	}
}

// logTail returns the last lines of the server's error log, for messages.
func (p *privateProc) logTail() string {
	b, err := os.ReadFile(p.logFile)
	if err != nil {
		return "(no error log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "error log " + p.logFile + ":\n" + strings.Join(lines, "\n")
}

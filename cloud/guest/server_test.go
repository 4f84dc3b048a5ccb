package guest

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

// sshServer is a real SSH server on loopback whose sessions execute the two
// commands the collector uses, over real files under root (the guest's "/").
type sshServer struct {
	root    string
	addr    string
	hostKey ssh.PublicKey
	delay   time.Duration // before each command, to widen concurrency windows

	mu       sync.Mutex
	remotes  []netip.Addr // source address of every session
	commands []string

	inflight, maxInflight atomic.Int32
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return s
}

func newSSHServer(t *testing.T, clientKey ssh.PublicKey, delay time.Duration) *sshServer {
	t.Helper()
	host := newSigner(t)
	s := &sshServer{root: t.TempDir(), hostKey: host.PublicKey(), delay: delay}
	srv := &gliderssh.Server{
		Handler: s.handle,
		PublicKeyHandler: func(_ gliderssh.Context, key gliderssh.PublicKey) bool {
			return gliderssh.KeysEqual(key, clientKey)
		},
	}
	srv.AddHostKey(host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

var (
	quoted = `'((?:[^']|'\\'')*)'`
	statRe = regexp.MustCompile(`^if \[ -e ` + quoted + ` \]; then stat -L -c '%d:%i %s' -- ` + quoted + `; else echo absent; fi$`)
	readRe = regexp.MustCompile(`^tail -c \+(\d+) -- ` + quoted + ` \| head -c (\d+)$`)
)

func unquote(s string) string { return strings.ReplaceAll(s, `'\''`, `'`) }

func (s *sshServer) handle(sess gliderssh.Session) {
	ap, _ := netip.ParseAddrPort(sess.RemoteAddr().String())
	s.mu.Lock()
	s.remotes = append(s.remotes, ap.Addr())
	s.commands = append(s.commands, sess.RawCommand())
	s.mu.Unlock()

	n := s.inflight.Add(1)
	for m := s.maxInflight.Load(); n > m && !s.maxInflight.CompareAndSwap(m, n); m = s.maxInflight.Load() {
	}
	time.Sleep(s.delay)
	code := s.exec(sess, sess.RawCommand())
	s.inflight.Add(-1)
	_ = sess.Exit(code)
}

// exec runs one command; its exit status is returned.
func (s *sshServer) exec(sess gliderssh.Session, cmd string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(sess.Stderr(), format+"\n", args...)
		return 1
	}
	if m := statRe.FindStringSubmatch(cmd); m != nil {
		if m[1] != m[2] {
			return fail("stat: two different paths")
		}
		fi, err := os.Stat(s.path(unquote(m[1])))
		if os.IsNotExist(err) {
			_, _ = io.WriteString(sess, "absent\n")
			return 0
		}
		if err != nil {
			return fail("stat: %v", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(sess, "%d:%d %d\n", st.Dev, st.Ino, fi.Size())
		return 0
	}
	if m := readRe.FindStringSubmatch(cmd); m != nil {
		from, _ := strconv.ParseInt(m[1], 10, 64)
		n, _ := strconv.ParseInt(m[3], 10, 64)
		f, err := os.Open(s.path(unquote(m[2])))
		if err != nil {
			fmt.Fprintf(sess.Stderr(), "tail: %v\n", err)
			return 0 // the pipeline's status is head's
		}
		defer f.Close()
		if _, err := f.Seek(from-1, io.SeekStart); err != nil {
			return fail("tail: %v", err)
		}
		_, _ = io.CopyN(sess, f, n)
		return 0
	}
	return fail("sh: unsupported command: %q", cmd)
}

func (s *sshServer) path(remote string) string {
	return filepath.Join(s.root, filepath.FromSlash(remote))
}

func (s *sshServer) write(t *testing.T, remote, content string) {
	t.Helper()
	p := s.path(remote)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

func (s *sshServer) append(t *testing.T, remote, content string) {
	t.Helper()
	f, err := os.OpenFile(s.path(remote), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(content)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func (s *sshServer) read(t *testing.T, remote string) string {
	t.Helper()
	b, err := os.ReadFile(s.path(remote))
	require.NoError(t, err)
	return string(b)
}

func (s *sshServer) seen() (remotes []netip.Addr, commands []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.Addr(nil), s.remotes...), append([]string(nil), s.commands...)
}

// hangingServer accepts TCP connections and never says a word.
func hangingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// Package sshtest runs a real SSH server on loopback for tests of the guest
// log collector. Its sessions execute the two commands the collector sends
// (a stat and a ranged read) over real files under a temporary directory that
// stands for the guest's "/"; anything else fails like an unknown command.
// [Server.Flood] makes reads misbehave as a hostile guest would.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
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

// Server is a running SSH server. It is closed by the test's cleanup.
type Server struct {
	// Addr is the server's "127.0.0.1:port".
	Addr string
	// HostKey is the server's host public key, for pinning.
	HostKey ssh.PublicKey
	// Root is the directory that stands for the guest's "/".
	Root string

	delay time.Duration

	mu       sync.Mutex
	remotes  []netip.Addr
	commands []string
	floods   map[string]Flood // by remote path

	inflight, maxInflight atomic.Int32
}

// NewSigner returns a fresh ed25519 key.
func NewSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	return s
}

// New starts a server on 127.0.0.1 that accepts only clientKey. delay is
// slept before each command, to widen concurrency windows.
func New(t testing.TB, clientKey ssh.PublicKey, delay time.Duration) *Server {
	t.Helper()
	host := NewSigner(t)
	s := &Server{Root: t.TempDir(), HostKey: host.PublicKey(), delay: delay}
	srv := &gliderssh.Server{
		Handler: s.handle,
		PublicKeyHandler: func(_ gliderssh.Context, key gliderssh.PublicKey) bool {
			return gliderssh.KeysEqual(key, clientKey)
		},
	}
	srv.AddHostKey(host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Flood is how a misbehaving guest answers reads of a file; see
// [Server.Flood].
type Flood int

const (
	// NoFlood answers reads as asked.
	NoFlood Flood = iota
	// FloodStdout ignores head -c: it sends the file from the asked offset
	// to its end, then lines of junk without end; it never exits.
	FloodStdout
	// FloodStderr sends the bytes asked for, then writes to standard error
	// without end; it never exits.
	FloodStderr
)

// floodLine is what floods are made of.
const floodLine = "flood flood flood flood flood flood flood flood flood flood flood\n"

// Flood makes reads of the remote file misbehave as f says, until the
// client goes away; NoFlood restores them. Stats are always answered.
func (s *Server) Flood(remote string, f Flood) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.floods == nil {
		s.floods = make(map[string]Flood)
	}
	s.floods[remote] = f
}

func (s *Server) flood(remote string) Flood {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.floods[remote]
}

// flood writes to w until it fails: when the client closes the channel or
// the connection.
func flood(w io.Writer) {
	block := []byte(strings.Repeat(floodLine, 32<<10/len(floodLine)))
	for {
		if _, err := w.Write(block); err != nil {
			return
		}
	}
}

var (
	quoted = `'((?:[^']|'\\'')*)'`
	statRe = regexp.MustCompile(`^if \[ -e ` + quoted + ` \]; then stat -L -c '%d:%i %s' -- ` + quoted + `; else echo absent; fi$`)
	readRe = regexp.MustCompile(`^tail -c \+(\d+) -- ` + quoted + ` \| head -c (\d+)$`)
)

func unquote(s string) string { return strings.ReplaceAll(s, `'\''`, `'`) }

func (s *Server) handle(sess gliderssh.Session) {
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
func (s *Server) exec(sess gliderssh.Session, cmd string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(sess.Stderr(), format+"\n", args...)
		return 1
	}
	if m := statRe.FindStringSubmatch(cmd); m != nil {
		if m[1] != m[2] {
			return fail("stat: two different paths")
		}
		fi, err := os.Stat(s.Path(unquote(m[1])))
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
		remote := unquote(m[2])
		f, err := os.Open(s.Path(remote))
		if err != nil {
			fmt.Fprintf(sess.Stderr(), "tail: %v\n", err)
			return 0 // the pipeline's status is head's
		}
		defer f.Close()
		if _, err := f.Seek(from-1, io.SeekStart); err != nil {
			return fail("tail: %v", err)
		}
		switch s.flood(remote) {
		case FloodStdout:
			_, _ = io.Copy(sess, f)
			flood(sess)
		case FloodStderr:
			_, _ = io.CopyN(sess, f, n)
			flood(sess.Stderr())
		default:
			_, _ = io.CopyN(sess, f, n)
		}
		return 0
	}
	return fail("sh: unsupported command: %q", cmd)
}

// Path is the local path of a remote one.
func (s *Server) Path(remote string) string {
	return filepath.Join(s.Root, filepath.FromSlash(remote))
}

// Write replaces the remote file's content.
func (s *Server) Write(t testing.TB, remote, content string) {
	t.Helper()
	p := s.Path(remote)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
}

// Append appends to the remote file, creating it if needed.
func (s *Server) Append(t testing.TB, remote, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(s.Path(remote)), 0o755))
	f, err := os.OpenFile(s.Path(remote), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(content)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// Read returns the remote file's content.
func (s *Server) Read(t testing.TB, remote string) string {
	t.Helper()
	b, err := os.ReadFile(s.Path(remote))
	require.NoError(t, err)
	return string(b)
}

// Seen returns the source address of every session so far and the command
// it ran.
func (s *Server) Seen() (remotes []netip.Addr, commands []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.Addr(nil), s.remotes...), append([]string(nil), s.commands...)
}

// MaxInflight is the most commands that ran at once.
func (s *Server) MaxInflight() int { return int(s.maxInflight.Load()) }

// Hanging returns the address of a listener that accepts TCP connections and
// never says a word: an unreachable guest.
func Hanging(t testing.TB) string {
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

// NewKeyPEM returns a fresh ed25519 signer and its private key in OpenSSH
// PEM form, as a key manager would store it.
func NewKeyPEM(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := ssh.NewSignerFromKey(priv)
	require.NoError(t, err)
	block, err := ssh.MarshalPrivateKey(priv, "")
	require.NoError(t, err)
	return s, pem.EncodeToMemory(block)
}

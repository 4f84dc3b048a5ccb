package guest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/internal/sshtest"
	"github.com/stratusworks/worker/logging"
)

const (
	syslog   = "/var/log/syslog"
	messages = "/var/log/messages"
)

type env struct {
	srv     *sshtest.Server
	others  []*sshtest.Server // more guests, see addServer
	client  ssh.Signer
	logDir  string
	offsets *MemoryOffsets
}

func newEnv(t *testing.T) *env {
	t.Helper()
	client := sshtest.NewSigner(t)
	return &env{
		srv:     sshtest.New(t, client.PublicKey(), 0),
		client:  client,
		logDir:  filepath.Join(t.TempDir(), "logs"),
		offsets: NewMemoryOffsets(),
	}
}

// addServer starts another guest that accepts the same client key; add it
// before building the collector, whose HostKeys pin every server's key.
func (e *env) addServer(t *testing.T) *sshtest.Server {
	t.Helper()
	s := sshtest.New(t, e.client.PublicKey(), 0)
	e.others = append(e.others, s)
	return s
}

// config is the shipped defaults plus the required fields.
func (e *env) config() CollectorConfig {
	keys := map[string]ssh.PublicKey{e.srv.Addr: e.srv.HostKey}
	for _, s := range e.others {
		keys[s.Addr] = s.HostKey
	}
	return CollectorConfig{
		SourceCIDR: netip.MustParsePrefix("127.0.0.0/8"),
		HostKeys:   PinnedKeys(keys),
		Credentials: CredentialsFunc(func(context.Context, string, string, string) (string, []ssh.AuthMethod, error) {
			return "collector", []ssh.AuthMethod{ssh.PublicKeys(e.client)}, nil
		}),
		Offsets: e.offsets,
		LogDir:  e.logDir,
	}
}

func (e *env) collector(t *testing.T, mods ...func(*CollectorConfig)) *Collector {
	t.Helper()
	cfg := e.config()
	for _, m := range mods {
		m(&cfg)
	}
	c, err := NewCollector(cfg)
	require.NoError(t, err)
	return c
}

func (e *env) guest(id string) Guest {
	return Guest{Customer: "acme", Account: "acct-1", ServerID: id, Address: e.srv.Addr, State: cloud.StateRunning}
}

// guestAt is a guest served by s.
func (e *env) guestAt(s *sshtest.Server, id string) Guest {
	g := e.guest(id)
	g.Address = s.Addr
	return g
}

// localPath is the local copy of a file of guest id.
func (e *env) localPath(id, name string) string {
	return filepath.Join(e.logDir, "acme", "guests", "acct-1", id, name)
}

// local is the content of a local copy, "" if there is none.
func (e *env) local(t *testing.T, id, name string) string {
	t.Helper()
	b, err := os.ReadFile(e.localPath(id, name))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	require.NoError(t, err)
	return string(b)
}

// collectOne collects one guest and requires success.
func collectOne(t *testing.T, c *Collector, g Guest) Result {
	t.Helper()
	res := c.Collect(t.Context(), []Guest{g})
	require.Len(t, res, 1)
	require.NoError(t, res[0].Err)
	return res[0]
}

func fileResult(t *testing.T, r Result, path string) FileResult {
	t.Helper()
	for _, f := range r.Files {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("no result for %s", path)
	return FileResult{}
}

func TestIncrementalCollection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.collector(t)
	g := e.guest("srv-1")
	e.srv.Write(t, syslog, "one\ntwo\n")

	r := collectOne(t, c, g)
	require.Equal(t, "one\ntwo\n", e.local(t, "srv-1", "syslog"))
	require.EqualValues(t, 8, r.Bytes())
	require.True(t, fileResult(t, r, messages).Absent, "an absent file is skipped, not an error")
	require.Equal(t, filepath.Join(e.logDir, "acme", "guests", "acct-1", "srv-1", "syslog"), fileResult(t, r, syslog).Local)

	e.srv.Append(t, syslog, "three\n")
	r = collectOne(t, c, g)
	require.EqualValues(t, 6, r.Bytes(), "only the new bytes are read")
	require.Equal(t, e.srv.Read(t, syslog), e.local(t, "srv-1", "syslog"))

	r = collectOne(t, c, g)
	require.Zero(t, r.Bytes())
	require.Equal(t, e.srv.Read(t, syslog), e.local(t, "srv-1", "syslog"))

	e.srv.Write(t, messages, "m1\n")
	collectOne(t, c, g)
	require.Equal(t, "m1\n", e.local(t, "srv-1", "messages"))

	fi, err := os.Stat(filepath.Join(e.logDir, "acme", "guests", "acct-1", "srv-1", "syslog"))
	require.NoError(t, err)
	require.Zero(t, fi.Mode().Perm()&^filePerm)
}

func TestPartialLineWaitsUntilComplete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.collector(t)
	g := e.guest("srv-1")
	e.srv.Write(t, syslog, "a\nhalf")
	r := collectOne(t, c, g)
	require.Equal(t, "a\n", e.local(t, "srv-1", "syslog"))
	require.EqualValues(t, 4, fileResult(t, r, syslog).Pending)

	e.srv.Append(t, syslog, " done\nb")
	collectOne(t, c, g)
	require.Equal(t, "a\nhalf done\n", e.local(t, "srv-1", "syslog"))
}

func TestRestartNeitherDuplicatesNorSkips(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := e.guest("srv-1")
	e.srv.Write(t, syslog, "1\n2\n")
	collectOne(t, e.collector(t), g)
	e.srv.Append(t, syslog, "3\n4")
	collectOne(t, e.collector(t), g) // a new process, same offset store
	e.srv.Append(t, syslog, "\n5\n")
	collectOne(t, e.collector(t), g)
	require.Equal(t, e.srv.Read(t, syslog), e.local(t, "srv-1", "syslog"))
}

// crashingOffsets fails Put while armed: as if the process died after the
// append and before the offset was stored.
type crashingOffsets struct {
	Offsets
	armed atomic.Bool
}

func (c *crashingOffsets) Put(ctx context.Context, k GuestFile, o Offset) error {
	if c.armed.Load() {
		return errors.New("crash")
	}
	return c.Offsets.Put(ctx, k, o)
}

func TestCrashBetweenAppendAndOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	store := &crashingOffsets{Offsets: e.offsets}
	withStore := func(c *CollectorConfig) { c.Offsets = store }
	g := e.guest("srv-1")
	e.srv.Write(t, syslog, "1\n2\n")
	collectOne(t, e.collector(t, withStore), g)

	// Appended and synced, offset not stored.
	e.srv.Append(t, syslog, "3\n")
	store.armed.Store(true)
	res := e.collector(t, withStore).Collect(t.Context(), []Guest{g})
	require.ErrorContains(t, res[0].Err, "crash")
	require.Equal(t, "1\n2\n3\n", e.local(t, "srv-1", "syslog"))

	// Restart: the unrecorded append is cut off and copied again, once.
	store.armed.Store(false)
	e.srv.Append(t, syslog, "4\n")
	collectOne(t, e.collector(t, withStore), g)
	require.Equal(t, "1\n2\n3\n4\n", e.local(t, "srv-1", "syslog"))

	// A crash in the middle of an append leaves a torn line: also cut off.
	local := filepath.Join(e.logDir, "acme", "guests", "acct-1", "srv-1", "syslog")
	f, err := os.OpenFile(local, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("5-torn")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	e.srv.Append(t, syslog, "5\n")
	collectOne(t, e.collector(t, withStore), g)
	require.Equal(t, e.srv.Read(t, syslog), e.local(t, "srv-1", "syslog"))
}

func TestRotationReadsTheRotatedTail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.collector(t)
	g := e.guest("srv-1")
	e.srv.Write(t, syslog, "a\n")
	collectOne(t, c, g)

	e.srv.Append(t, syslog, "b\n") // written before rotation, not yet collected
	require.NoError(t, os.Rename(e.srv.Path(syslog), e.srv.Path(syslog+".1")))
	e.srv.Write(t, syslog, "c\n")
	r := collectOne(t, c, g)
	require.True(t, fileResult(t, r, syslog).Rotated)
	require.Equal(t, "a\nb\nc\n", e.local(t, "srv-1", "syslog"))

	// Rotated again, the old file gone (compressed, deleted): start over.
	require.NoError(t, os.Remove(e.srv.Path(syslog+".1")))
	require.NoError(t, os.Rename(e.srv.Path(syslog), e.srv.Path(syslog+".1")))
	require.NoError(t, os.Remove(e.srv.Path(syslog+".1")))
	e.srv.Write(t, syslog, "dd\n")
	r = collectOne(t, c, g)
	// The file system may give the new file the old one's inode: then the
	// tail check, not the identity, tells it apart.
	fr := fileResult(t, r, syslog)
	require.True(t, fr.Rotated || fr.Truncated)
	require.Equal(t, "a\nb\nc\ndd\n", e.local(t, "srv-1", "syslog"))

	collectOne(t, c, g)
	require.Equal(t, "a\nb\nc\ndd\n", e.local(t, "srv-1", "syslog"))
}

func TestTruncation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.collector(t)
	g := e.guest("srv-1")
	e.srv.Write(t, syslog, "aaaa\nbbbb\n")
	collectOne(t, c, g)

	t.Run("Shrunk", func(t *testing.T) {
		e.srv.Write(t, syslog, "x\n") // same inode, smaller
		r := collectOne(t, c, g)
		require.True(t, fileResult(t, r, syslog).Truncated)
		require.Equal(t, "aaaa\nbbbb\nx\n", e.local(t, "srv-1", "syslog"))
	})

	t.Run("TruncatedAndGrownPastOffset", func(t *testing.T) {
		// Same inode, larger than the offset, other content: only the
		// tail check can tell.
		e.srv.Write(t, syslog, "new 1\nnew 2\n")
		r := collectOne(t, c, g)
		require.True(t, fileResult(t, r, syslog).Truncated)
		require.Equal(t, "aaaa\nbbbb\nx\nnew 1\nnew 2\n", e.local(t, "srv-1", "syslog"))
	})
}

func TestSmallReadsConverge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.collector(t, func(c *CollectorConfig) { c.MaxReadBytes = 25 }) // many reads of few lines each
	g := e.guest("srv-1")
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), i%12) + "\n")
	}
	e.srv.Write(t, syslog, b.String())
	for range 100 {
		if e.local(t, "srv-1", "syslog") == b.String() {
			break
		}
		r := collectOne(t, c, g)
		require.LessOrEqual(t, r.Bytes(), int64(25))
	}
	require.Equal(t, b.String(), e.local(t, "srv-1", "syslog"))

	// A line longer than MaxReadBytes is split rather than blocking.
	e.srv.Append(t, syslog, strings.Repeat("z", 60)+"\n")
	for range 4 {
		collectOne(t, c, g)
	}
	require.Equal(t, e.srv.Read(t, syslog), e.local(t, "srv-1", "syslog"))
}

func TestHostKeyMismatchIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.Write(t, syslog, "secret\n")
	other := sshtest.NewSigner(t).PublicKey()

	c := e.collector(t, func(c *CollectorConfig) {
		c.HostKeys = PinnedKeys(map[string]ssh.PublicKey{"127.0.0.1": other})
	})
	r := c.Collect(t.Context(), []Guest{e.guest("srv-1")})[0]
	require.ErrorIs(t, r.Err, ErrHostKeyMismatch)
	require.ErrorContains(t, r.Err, "srv-1")
	require.ErrorContains(t, r.Err, e.srv.Addr)
	require.Empty(t, e.local(t, "srv-1", "syslog"))
	_, cmds := e.srv.Seen()
	require.Empty(t, cmds, "no command ran")
	o, err := e.offsets.Get(t.Context(), GuestFile{"acct-1", "srv-1", syslog})
	require.NoError(t, err)
	require.Zero(t, o)

	c = e.collector(t, func(c *CollectorConfig) { c.HostKeys = PinnedKeys(nil) })
	require.ErrorIs(t, c.Collect(t.Context(), []Guest{e.guest("srv-1")})[0].Err, ErrUnknownHost)
}

func TestKnownHostsFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.Write(t, syslog, "ok\n")
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(good, []byte(knownhosts.Line([]string{e.srv.Addr}, e.srv.HostKey)+"\n"), 0o600))
	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte(knownhosts.Line([]string{e.srv.Addr}, sshtest.NewSigner(t).PublicKey())+"\n"), 0o600))

	cb, err := KnownHostsFile(good)
	require.NoError(t, err)
	collectOne(t, e.collector(t, func(c *CollectorConfig) { c.HostKeys = cb }), e.guest("srv-1"))
	require.Equal(t, "ok\n", e.local(t, "srv-1", "syslog"))

	cb, err = KnownHostsFile(bad)
	require.NoError(t, err)
	r := e.collector(t, func(c *CollectorConfig) { c.HostKeys = cb }).Collect(t.Context(), []Guest{e.guest("srv-2")})[0]
	var keyErr *knownhosts.KeyError
	require.ErrorAs(t, r.Err, &keyErr)
	require.NotEmpty(t, keyErr.Want, "a known host with another key, not an unknown host")

	_, err = KnownHostsFile(filepath.Join(dir, "missing"))
	require.Error(t, err)
	_, err = KnownHostsFile()
	require.Error(t, err)
}

func TestUnreachableGuestTimesOutWithoutBlockingOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.Write(t, syslog, "fine\n")
	const timeout = time.Second
	c := e.collector(t, func(c *CollectorConfig) {
		c.Timeout = timeout // not to wait 30s for the hanging guest
		c.Concurrency = 2   // both guests at once, whatever the default
	})
	hang := e.guest("hang")
	hang.Address = sshtest.Hanging(t)
	start := time.Now()
	res := c.Collect(t.Context(), []Guest{hang, e.guest("srv-1")})
	elapsed := time.Since(start)

	require.ErrorIs(t, res[0].Err, context.DeadlineExceeded)
	require.ErrorContains(t, res[0].Err, "hang")
	require.ErrorContains(t, res[0].Err, hang.Address)
	require.GreaterOrEqual(t, res[0].Duration, timeout-50*time.Millisecond)
	const slack = 5 * time.Second // generous: a loaded 2-core machine under -race
	require.Less(t, res[0].Duration, timeout+slack)
	require.NoError(t, res[1].Err)
	require.Less(t, res[1].Duration, timeout, "the good guest did not wait for the hanging one")
	require.Equal(t, "fine\n", e.local(t, "srv-1", "syslog"))
	require.Less(t, elapsed, timeout+slack)
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.collector(t)
	hang := e.guest("hang")
	hang.Address = sshtest.Hanging(t)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	res := c.Collect(ctx, []Guest{hang})
	require.ErrorIs(t, res[0].Err, context.DeadlineExceeded)
	require.Less(t, res[0].Duration, 2*time.Second)
}

func TestConnectionsLeaveFromSourceCIDR(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.Write(t, syslog, "x\n")

	t.Run("Loopback8", func(t *testing.T) {
		c := e.collector(t)
		require.True(t, netip.MustParsePrefix("127.0.0.0/8").Contains(c.SourceAddr()))
		collectOne(t, c, e.guest("srv-1"))
		remotes, _ := e.srv.Seen()
		require.NotEmpty(t, remotes)
		for _, a := range remotes {
			require.True(t, netip.MustParsePrefix("127.0.0.0/8").Contains(a), "server saw %v", a)
		}
	})

	t.Run("SingleLoopbackAddress", func(t *testing.T) {
		want := netip.MustParseAddr("127.0.0.2")
		c := e.collector(t, func(c *CollectorConfig) { c.SourceCIDR = netip.PrefixFrom(want, 32) })
		require.Equal(t, want, c.SourceAddr())
		r := c.Collect(t.Context(), []Guest{e.guest("srv-2")})[0]
		if r.Err != nil && strings.Contains(r.Err.Error(), "assign requested address") {
			t.Skipf("this host cannot bind %v: %v", want, r.Err)
		}
		require.NoError(t, r.Err)
		remotes, _ := e.srv.Seen()
		require.Equal(t, want, remotes[len(remotes)-1])
	})
}

func TestSourceCIDRWithoutLocalAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Documentation ranges, unless this host happens to use one.
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	var cidr netip.Prefix
	for _, c := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"} {
		if _, err := sourceAddr(netip.MustParsePrefix(c), addrs); err != nil {
			cidr = netip.MustParsePrefix(c)
			break
		}
	}
	require.True(t, cidr.IsValid(), "this host has an address in every documentation range")
	cfg := e.config()
	cfg.SourceCIDR = cidr
	_, err = NewCollector(cfg)
	require.Error(t, err)
	require.ErrorContains(t, err, "SourceCIDR "+cidr.String())
	require.ErrorContains(t, err, "127.0.0.1", "the error lists this host's addresses")
}

func TestNonRunningGuestsAreSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.Write(t, syslog, "x\n")
	c := e.collector(t)
	var targets []Guest
	for _, s := range []cloud.ServerState{cloud.StatePending, cloud.StateStopped, cloud.StateTerminated, cloud.StateError, ""} {
		g := e.guest("srv-" + string(s))
		g.State = s
		targets = append(targets, g)
	}
	for i, r := range c.Collect(t.Context(), targets) {
		require.Equal(t, targets[i], r.Guest)
		require.NoError(t, r.Err)
		require.Contains(t, r.Skipped, "not RUNNING")
		require.Empty(t, r.Files)
	}
	remotes, _ := e.srv.Seen()
	require.Empty(t, remotes, "no guest was contacted")
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	client := sshtest.NewSigner(t)
	e := &env{
		srv:     sshtest.New(t, client.PublicKey(), 30*time.Millisecond),
		client:  client,
		logDir:  t.TempDir(),
		offsets: NewMemoryOffsets(),
	}
	e.srv.Write(t, syslog, "x\n")
	c := e.collector(t, func(c *CollectorConfig) { c.Concurrency = 2 }) // fewer slots than guests
	var targets []Guest
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		targets = append(targets, e.guest(id))
	}
	for _, r := range c.Collect(t.Context(), targets) {
		require.NoError(t, r.Err)
		require.EqualValues(t, 2, r.Bytes())
	}
	t.Logf("at most %d guests at once", e.srv.MaxInflight())
	require.LessOrEqual(t, e.srv.MaxInflight(), 2)
}

func TestGuestAlreadyBeingCollected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.collector(t)
	g := e.guest("srv-1")
	require.True(t, c.claim(g))
	require.ErrorIs(t, c.Collect(t.Context(), []Guest{g})[0].Err, ErrBusy)
	c.unclaim(g)
	collectOne(t, c, g)
}

func TestQuotedPathsAndHostileIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	odd := "/var/log/it's here.log"
	e.srv.Write(t, odd, "quoted\n")
	c := e.collector(t, func(c *CollectorConfig) { c.Files = []string{odd} }) // a path that needs quoting
	g := e.guest("../../escape")
	g.Customer = "../../etc"
	r := collectOne(t, c, g)
	local := fileResult(t, r, odd).Local
	rel, err := filepath.Rel(e.logDir, local)
	require.NoError(t, err)
	require.False(t, strings.HasPrefix(rel, ".."), "local copy %s escapes %s", local, e.logDir)
	b, err := os.ReadFile(local)
	require.NoError(t, err)
	require.Equal(t, "quoted\n", string(b))
}

func TestLogsGoToTheCustomerLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.Write(t, syslog, "x\n")
	h, err := logging.NewCustomerHandler(slog.DiscardHandler, logging.Config{Dir: e.logDir})
	require.NoError(t, err)
	defer h.Close()
	c := e.collector(t, func(c *CollectorConfig) {
		c.LogDir = "" // OutputDir instead, with the logs to the handler under test
		c.OutputDir = h.CustomerDir
		c.Logger = slog.New(h)
	})
	collectOne(t, c, e.guest("srv-1"))
	require.Equal(t, "x\n", e.local(t, "srv-1", "syslog"))
	down := e.guest("srv-down") // during the customer's outage
	down.Address = refusedAddr(t)
	require.Error(t, c.Collect(t.Context(), []Guest{down})[0].Err)
	p, err := h.FilePath("acme")
	require.NoError(t, err)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Contains(t, string(b), `"msg":"guest logs collected"`)
	require.Contains(t, string(b), `"server":"srv-1"`)
	require.Regexp(t, `"level":"WARN","msg":"guest log collection failed",[^\n]*"server":"srv-down"`, string(b))
}

package guest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/logging"
)

// ErrBusy is returned for a guest that is already being collected (by
// another Collect call, or twice in one).
var ErrBusy = errors.New("guest: already being collected")

// Permissions of what the collector creates.
const (
	dirPerm  os.FileMode = 0o750
	filePerm os.FileMode = 0o640
)

// tailLen is how many already-copied bytes are re-read and compared before
// new ones are trusted (see [Offset.TailHash]).
const tailLen = 64

// Guest is a VM whose logs are collected.
type Guest struct {
	Customer string // owner: where the logs land
	Account  string // cloud account
	ServerID string // provider id of the server
	Address  string // host or host:port; the port defaults to CollectorConfig.Port
	// State is the server's state: only RUNNING guests are contacted.
	State cloud.ServerState
}

// FromServer returns the Guest for a server of a customer, addressed by its
// first private IP, or its first public IP if it has no private one.
func FromServer(customer string, s cloud.Server) Guest {
	g := Guest{Customer: customer, Account: s.Account, ServerID: s.ID, State: s.State}
	switch {
	case len(s.PrivateIPs) > 0:
		g.Address = s.PrivateIPs[0]
	case len(s.PublicIPs) > 0:
		g.Address = s.PublicIPs[0]
	}
	return g
}

// FileResult is what happened to one remote file.
type FileResult struct {
	Path  string // remote path
	Local string // local copy
	// Bytes is how many bytes were appended to the local copy; they count
	// also when Err is set, for a guest that exceeded an output limit
	// ([ErrOutputLimit]) keeps what it sent within it.
	Bytes int64
	// Pending is how many remote bytes remain to copy: an unfinished last
	// line, or what exceeded MaxReadBytes.
	Pending int64
	// Absent: the guest has no such file; it was skipped.
	Absent bool
	// Rotated: the file at Path is a new file; Truncated: it shrank or its
	// content changed. Either way it was read from its start.
	Rotated, Truncated bool
	Err                error
}

// Result is what happened to one guest.
type Result struct {
	Guest Guest
	// Skipped says why the guest was not contacted; "" if it was.
	Skipped string
	// Files has a result per file in CollectorConfig.Files order, up to the
	// last one tried: after a guest exceeded an output limit or ran out of
	// time, the rest are left for the next collection.
	Files []FileResult
	// Err joins the errors of the guest (wrapped with its id and address);
	// nil if every file was collected or skipped as absent.
	Err      error
	Duration time.Duration
}

// Bytes is the total appended for the guest.
func (r Result) Bytes() int64 {
	var n int64
	for _, f := range r.Files {
		n += f.Bytes
	}
	return n
}

// Collector copies log files from guests over SSH, incrementally.
type Collector struct {
	cfg  CollectorConfig
	src  netip.Addr
	tree tree
	mu   sync.Mutex
	busy map[string]bool
}

// NewCollector validates cfg and finds the local address inside SourceCIDR
// that connections will leave from.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("guest: list this host's addresses for SourceCIDR: %w", err)
	}
	src, err := sourceAddr(cfg.SourceCIDR, addrs)
	if err != nil {
		return nil, err
	}
	return &Collector{cfg: cfg, src: src, tree: defaultTree, busy: make(map[string]bool)}, nil
}

// SourceAddr is the local address connections leave from.
func (c *Collector) SourceAddr() netip.Addr { return c.src }

// Collect copies new complete lines of the configured files from each
// RUNNING guest, at most Concurrency guests at once, each within Timeout. It
// returns one Result per target, in order. Collect is safe to call
// concurrently; a guest already being collected fails with [ErrBusy].
func (c *Collector) Collect(ctx context.Context, targets []Guest) []Result {
	results := make([]Result, len(targets))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(c.cfg.Concurrency, len(targets)) {
		wg.Go(func() {
			for i := range work {
				results[i] = c.collectGuest(ctx, targets[i])
			}
		})
	}
	for i, g := range targets {
		if g.State != cloud.StateRunning {
			results[i] = Result{Guest: g, Skipped: fmt.Sprintf("state is %s, not %s", g.State, cloud.StateRunning)}
			continue
		}
		select {
		case work <- i:
		case <-ctx.Done():
			results[i] = Result{Guest: g, Err: fmt.Errorf("guest: server %s at %s: %w", g.ServerID, g.Address, ctx.Err())}
		}
	}
	close(work)
	wg.Wait()
	return results
}

func (c *Collector) collectGuest(ctx context.Context, g Guest) (res Result) {
	start := time.Now()
	res.Guest = g
	// Every record about the guest carries its customer, under the key a
	// logging.CustomerHandler files records by (logging.DefaultKey), and
	// its account.
	log := c.cfg.Logger.With(logging.DefaultKey, g.Customer, "account", g.Account, "server", g.ServerID, "address", g.Address)
	defer func() {
		res.Duration = time.Since(start)
		attrs := []slog.Attr{slog.Int64("bytes", res.Bytes()), slog.Duration("duration", res.Duration)}
		switch {
		case res.Err == nil:
			log.LogAttrs(ctx, slog.LevelInfo, "guest logs collected", attrs...)
		case errors.Is(ctx.Err(), context.Canceled) && errors.Is(res.Err, context.Canceled):
			// Shutdown, not a failure of the guest: what was copied is
			// recorded and the rest continues next time.
			log.LogAttrs(ctx, slog.LevelInfo, "guest log collection canceled", attrs...)
		default:
			// One line per guest and collection, whatever failed.
			log.LogAttrs(ctx, slog.LevelWarn, "guest log collection failed", append(attrs, slog.Any("error", res.Err))...)
		}
	}()
	addr, err := c.address(g.Address)
	if err != nil {
		res.Err = fmt.Errorf("guest: server %s at %q: %w", g.ServerID, g.Address, err)
		return res
	}
	wrap := func(gctx context.Context, err error) error {
		cerr := gctx.Err()
		if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
			cerr = context.DeadlineExceeded // the connection's deadline is gctx's
		}
		if cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w after %v: %w", cerr, time.Since(start).Round(time.Millisecond), err)
		}
		return fmt.Errorf("guest: server %s at %s: %w", g.ServerID, addr, err)
	}
	if !c.claim(g) {
		res.Err = wrap(ctx, ErrBusy)
		return res
	}
	defer c.unclaim(g)
	dir, err := c.guestDir(g)
	if err != nil {
		res.Err = wrap(ctx, err)
		return res
	}

	gctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	client, err := c.connect(gctx, g, addr)
	if err != nil {
		res.Err = wrap(gctx, err)
		return res
	}
	defer client.Close()

	var errs []error
	for _, p := range c.cfg.Files {
		if gctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%s not collected", p))
			break
		}
		fr := c.collectFile(ctx, gctx, log, client, g, dir, p)
		res.Files = append(res.Files, fr)
		if fr.Err != nil {
			errs = append(errs, fr.Err)
		}
		if errors.Is(fr.Err, ErrOutputLimit) {
			break // the connection is closed
		}
	}
	if err := errors.Join(errs...); err != nil {
		res.Err = wrap(gctx, err)
	}
	return res
}

func guestKey(g Guest) string { return g.Account + "\x00" + g.ServerID }

func (c *Collector) claim(g Guest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy[guestKey(g)] {
		return false
	}
	c.busy[guestKey(g)] = true
	return true
}

func (c *Collector) unclaim(g Guest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.busy, guestKey(g))
}

// address returns host:port for a guest address.
func (c *Collector) address(a string) (string, error) {
	if a == "" {
		return "", errors.New("no address")
	}
	if host, port, err := net.SplitHostPort(a); err == nil {
		if host == "" || port == "" {
			return "", fmt.Errorf("address %q lacks a host or port", a)
		}
		return a, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
	return net.JoinHostPort(host, strconv.Itoa(c.cfg.Port)), nil
}

// guestDir is <OutputDir(customer)>/guests/<account>/<server>, as the
// localFile of a file in it (name unset). The account and server id pass
// through logging.SafeName, so no id can climb out of the tree or into
// another guest's directory.
func (c *Collector) guestDir(g Guest) (localFile, error) {
	out, err := c.cfg.OutputDir(g.Customer)
	if err != nil {
		return localFile{}, fmt.Errorf("output directory of customer %q: %w", g.Customer, err)
	}
	if g.Account == "" || g.ServerID == "" {
		return localFile{}, errors.New("guest has an empty account or server id")
	}
	account, err := logging.SafeName(g.Account)
	if err != nil {
		return localFile{}, fmt.Errorf("account: %w", err)
	}
	server, err := logging.SafeName(g.ServerID)
	if err != nil {
		return localFile{}, fmt.Errorf("server id: %w", err)
	}
	clean := filepath.Clean(out)
	customer := filepath.Base(clean)
	if out == "" || customer == "." || customer == ".." || customer == string(filepath.Separator) || filepath.Dir(clean) == clean {
		return localFile{}, fmt.Errorf("output directory %q of customer %q is not a directory below another", out, g.Customer)
	}
	return localFile{base: filepath.Dir(clean), dirs: []string{customer, "guests", account, server}}, nil
}

// connect dials from the source address and does the SSH handshake, all
// within gctx: the connection's deadline is gctx's, and it is closed when
// gctx ends.
func (c *Collector) connect(gctx context.Context, g Guest, addr string) (*ssh.Client, error) {
	user, auth, err := c.cfg.Credentials.SSHAuth(gctx, g.Customer, g.Account, g.ServerID)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: c.src.AsSlice()}}
	conn, err := d.DialContext(gctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if deadline, ok := gctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	context.AfterFunc(gctx, func() { _ = conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   c.cfg.HostKeys,
		HostKeyAlgorithms: c.cfg.HostKeyAlgorithms,
	})
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

func tailHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// collectFile copies the new complete lines of one remote file. Offsets are
// read within gctx but stored within ctx, so that a guest timing out right
// after an append still records it.
//
// A guest that exceeds an output limit ([ErrOutputLimit]) had its connection
// closed: the complete lines it sent within the limit are appended and the
// offset advanced over them, and the limit's error is the file's.
func (c *Collector) collectFile(ctx, gctx context.Context, log *slog.Logger, client *ssh.Client, g Guest, dir localFile, p string) FileResult {
	loc := dir
	loc.name = localName(p)
	fr := FileResult{Path: p, Local: loc.String()}
	fail := func(err error) FileResult {
		fr.Bytes, fr.Err = 0, err
		return fr
	}
	key := GuestFile{Account: g.Account, ServerID: g.ServerID, Path: p}
	prev, err := c.cfg.Offsets.Get(gctx, key)
	if err != nil {
		return fail(fmt.Errorf("%s: get offset: %w", p, err))
	}
	st, err := remoteStat(client, p)
	if err != nil {
		return fail(err)
	}
	if st.absent {
		fr.Absent = true
		return fr
	}
	commit := func(next Offset, chunk []byte, pending int64, limitErr error) FileResult {
		localSize, err := c.appendLocal(log, loc, prev, chunk)
		if err != nil {
			return fail(errors.Join(limitErr, fmt.Errorf("%s: append to %s: %w", p, fr.Local, err)))
		}
		fr.Bytes, fr.Pending = int64(len(chunk)), pending
		next.LocalSize = localSize
		if next != prev {
			if err := c.cfg.Offsets.Put(ctx, key, next); err != nil {
				// The append stays in the local file, beyond the stored
				// LocalSize: the next run cuts it off and copies it again.
				return fail(errors.Join(limitErr, fmt.Errorf("%s: put offset: %w", p, err)))
			}
		}
		fr.Err = limitErr
		return fr
	}

	var chunk []byte // what to append
	var start int64  // remote offset to read the current file from
	switch {
	case prev.Identity == "":
	case prev.Identity == st.identity && st.size >= prev.Bytes:
		start = prev.Bytes
	case prev.Identity == st.identity:
		fr.Truncated = true
	default:
		fr.Rotated = true
		rot, overlap, tail, err := c.rotatedTail(client, p, prev)
		if errors.Is(err, ErrOutputLimit) && len(tail) > 0 {
			// Stopped within the rotated file: the offset stays on it (its
			// identity is prev's), so the next collection finds the
			// rotation again and continues there.
			next := nextOffset(prev, prev.Identity, rot.size, prev.Bytes, overlap, tail, false)
			return commit(next, tail, rot.size-next.Bytes+st.size, err)
		}
		if err != nil {
			return fail(err)
		}
		chunk = tail
	}
	overlap, data, ok, err := c.readAt(client, p, start, st.size, prev.TailHash)
	if err == nil && !ok { // same file, other content: truncated and grown again
		fr.Truncated, start = true, 0
		overlap, data, ok, err = c.readAt(client, p, 0, st.size, "")
	}
	if err != nil && !ok {
		return fail(err)
	}
	// err is nil, or an output limit with data read within it.
	lines := completeLines(data, c.cfg.MaxReadBytes)
	chunk = append(chunk, lines...)
	next := nextOffset(prev, st.identity, st.size, start, overlap, lines, fr.Truncated)
	return commit(next, chunk, st.size-next.Bytes, err)
}

// nextOffset is the offset of the file identified by id, of the given size,
// after copying lines read from start; overlap is what was re-read before
// start.
func nextOffset(prev Offset, id string, size, start int64, overlap, lines []byte, truncated bool) Offset {
	next := Offset{Identity: id, Bytes: start + int64(len(lines)), Size: size}
	switch {
	case next.Bytes == 0:
	case next.Bytes == prev.Bytes && next.Identity == prev.Identity && !truncated:
		next.TailHash = prev.TailHash
	default:
		next.TailHash = tailHash(lastBytes(overlap, lines, int(min(next.Bytes, tailLen))))
	}
	return next
}

// readAt reads the remote file from start up to size (at most MaxReadBytes),
// re-reading the min(start, tailLen) bytes before start first and checking
// them against wantTail. ok is false if they differ. With an
// [ErrOutputLimit] error, ok and the data are those of what was read within
// the limit.
func (c *Collector) readAt(client *ssh.Client, p string, start, size int64, wantTail string) (overlap, data []byte, ok bool, err error) {
	n := min(size-start, c.cfg.MaxReadBytes)
	if n <= 0 {
		return nil, nil, true, nil
	}
	k := min(start, tailLen)
	out, err := remoteRead(client, p, start-k, k+n)
	if err != nil && !errors.Is(err, ErrOutputLimit) {
		return nil, nil, false, err
	}
	if int64(len(out)) < k || (k > 0 && tailHash(out[:k]) != wantTail) {
		return nil, nil, false, err
	}
	return out[:k], out[k:], true, err
}

// rotatedTail returns what was added to a rotated file after prev, if
// path+RotatedSuffix is that file, newline-terminated since it will not grow
// any more; nothing otherwise. It also returns what stat said of the rotated
// file and the bytes re-read before prev.Bytes. With an [ErrOutputLimit]
// error, tail is the complete lines read within the limit.
func (c *Collector) rotatedTail(client *ssh.Client, p string, prev Offset) (rot remoteFile, overlap, tail []byte, err error) {
	rp := p + c.cfg.RotatedSuffix
	st, err := remoteStat(client, rp)
	if err != nil {
		return st, nil, nil, err
	}
	if st.absent || st.identity != prev.Identity || st.size < prev.Bytes {
		return st, nil, nil, nil
	}
	overlap, data, ok, err := c.readAt(client, rp, prev.Bytes, st.size, prev.TailHash)
	switch {
	case !ok || len(data) == 0:
		return st, nil, nil, err
	case err != nil:
		return st, overlap, completeLines(data, c.cfg.MaxReadBytes), err
	}
	if data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	return st, overlap, data, nil
}

// lastBytes returns the last n bytes of a followed by b.
func lastBytes(a, b []byte, n int) []byte {
	if len(b) >= n {
		return b[len(b)-n:]
	}
	out := make([]byte, 0, n)
	out = append(out, a[len(a)-(n-len(b)):]...)
	return append(out, b...)
}

// completeLines returns data up to its last newline. A read of max bytes
// without any newline is returned whole, so that an endless line cannot stop
// collection.
func completeLines(data []byte, max int64) []byte {
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		if int64(len(data)) >= max {
			return data
		}
		return nil
	}
	return data[:i+1]
}

// appendLocal appends chunk to the local copy and syncs it, first cutting off
// anything beyond prev.LocalSize: bytes appended by a run that did not live
// to store its offset, which are about to be copied again. It returns the new
// size of the local copy. No symbolic link below the output directory is
// followed, neither to look at the copy nor to write it (see [tree]).
func (c *Collector) appendLocal(log *slog.Logger, loc localFile, prev Offset, chunk []byte) (int64, error) {
	size, _, err := c.tree.stat(loc)
	if err != nil {
		return 0, err
	}
	name := loc.String()
	base, cut := size, false
	switch {
	case prev.Identity != "" && size > prev.LocalSize:
		base, cut = prev.LocalSize, true
		log.Info("discarding an uncommitted append of a previous run; it is copied again",
			"file", name, "bytes", size-prev.LocalSize)
	case prev.Identity != "" && size < prev.LocalSize:
		log.Warn("local copy is shorter than recorded (rotated or removed locally); appending at its end",
			"file", name, "size", size, "recorded", prev.LocalSize)
	case prev.Identity == "" && size > 0:
		log.Warn("no stored offset for an existing local copy; copying the remote file from its start, lines may repeat",
			"file", name)
	}
	if len(chunk) == 0 && !cut {
		return base, nil
	}
	f, err := c.tree.open(loc)
	if err != nil {
		return 0, err
	}
	err = func() error {
		if cut {
			if err := f.Truncate(base); err != nil {
				return err
			}
		}
		if _, err := f.WriteAt(chunk, base); err != nil {
			return err
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return base + int64(len(chunk)), nil
}

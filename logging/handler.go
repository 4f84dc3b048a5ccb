package logging

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"

	"github.com/stratusworks/worker/internal/safefs"
)

// ErrClosed is returned when writing to a customer file after
// [CustomerHandler.Close]. Records still reach the process handler.
var ErrClosed = errors.New("logging: handler closed")

// CustomerHandler is a [log/slog.Handler] that passes every record to the
// process handler and also writes records that name a customer to that
// customer's file. It is safe for concurrent use; handlers derived with
// WithAttrs and WithGroup share files with their parent.
type CustomerHandler struct {
	st       *shared
	next     slog.Handler
	ops      []op   // WithAttrs/WithGroup calls, replayed on customer handlers
	customer string // customer set by WithAttrs at the top level
	groups   int    // open groups: attributes are no longer top level
}

// op is one WithAttrs (group == "") or WithGroup call.
type op struct {
	group string
	attrs []slog.Attr
}

// shared is the state common to a handler and those derived from it.
type shared struct {
	cfg   Config
	opts  *slog.HandlerOptions
	proc  slog.Handler // the process handler as given, without attributes or groups
	fs    safefs.FS    // safefs.Default; tests also run on safefs.Lstat
	mu    sync.Mutex
	done  bool
	files map[string]*customerFile // every customer seen, open or not
	open  *list.List               // of *customerFile whose file may be open; front = most recent

	millMu   sync.Mutex
	millDone bool           // Close has begun waiting for mills: start no more
	mills    sync.WaitGroup // running mills (see startMill)
}

var _ slog.Handler = (*CustomerHandler)(nil)

// NewCustomerHandler returns a handler that passes every record to next and
// also writes records carrying a customer attribute to that customer's file.
// It validates cfg (after defaults) and names the bad field in its error.
func NewCustomerHandler(next slog.Handler, cfg Config) (*CustomerHandler, error) {
	if next == nil {
		return nil, errors.New("logging: next handler is nil")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &CustomerHandler{
		st: &shared{
			cfg:   cfg,
			opts:  &slog.HandlerOptions{Level: slog.LevelDebug - 100, ReplaceAttr: cfg.ReplaceAttr},
			proc:  next,
			fs:    safefs.Default,
			files: make(map[string]*customerFile),
			open:  list.New(),
		},
		next: next,
	}, nil
}

// Enabled reports whether the process handler or the customer files want
// records of this level.
func (h *CustomerHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level) || level >= h.st.cfg.Level.Level()
}

// Handle passes r to the process handler if it is enabled for r's level, and
// writes r to its customer's file if r names a customer and its level is at
// least Config.Level. Errors of both are joined.
func (h *CustomerHandler) Handle(ctx context.Context, r slog.Record) error {
	customer := h.customer
	if h.groups == 0 {
		r.Attrs(func(a slog.Attr) bool {
			if c, ok := h.customerOf(a); ok {
				customer = c
			}
			return true
		})
	}
	toCustomer := customer != "" && r.Level >= h.st.cfg.Level.Level()
	var errNext, errCustomer error
	if h.next.Enabled(ctx, r.Level) {
		rec := r
		if toCustomer {
			rec = r.Clone() // the two handlers must not share attribute storage
		}
		errNext = h.next.Handle(ctx, rec)
	}
	if toCustomer {
		errCustomer = h.writeCustomer(ctx, customer, r)
	}
	return errors.Join(errNext, errCustomer)
}

// customerOf returns the customer named by a top-level attribute, looking
// into groups with an empty key, which slog inlines.
func (h *CustomerHandler) customerOf(a slog.Attr) (string, bool) {
	v := a.Value.Resolve()
	if a.Key == "" && v.Kind() == slog.KindGroup {
		found, ok := "", false
		for _, g := range v.Group() {
			if c, gok := h.customerOf(g); gok {
				found, ok = c, true
			}
		}
		return found, ok
	}
	if a.Key != h.st.cfg.Key || v.Kind() == slog.KindGroup {
		return "", false
	}
	c := v.String()
	return c, c != ""
}

// writeCustomer encodes r as one JSON line and appends it to the
// customer's file.
func (h *CustomerHandler) writeCustomer(ctx context.Context, customer string, r slog.Record) error {
	var buf bytes.Buffer
	var jh slog.Handler = slog.NewJSONHandler(&buf, h.st.opts)
	for _, o := range h.ops {
		if o.group != "" {
			jh = jh.WithGroup(o.group)
		} else {
			jh = jh.WithAttrs(o.attrs)
		}
	}
	if err := jh.Handle(ctx, r); err != nil {
		return fmt.Errorf("logging: customer %q: %w", customer, err)
	}
	f, err := h.st.acquire(customer)
	if err != nil {
		return fmt.Errorf("logging: customer %q: %w", customer, err)
	}
	defer h.st.release(f)
	warn, err := h.st.write(f, buf.Bytes())
	if err != nil {
		err = fmt.Errorf("logging: customer %q: %w", customer, err)
		if warn {
			h.st.warn(ctx, msgRefused, customer, err)
		}
	}
	return err
}

// WithAttrs returns a handler whose records carry attrs, in both the process
// handler and the customer files. A top-level customer attribute among attrs
// routes every record of the new handler.
func (h *CustomerHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.next = h.next.WithAttrs(attrs)
	h2.ops = append(slices.Clip(h.ops), op{attrs: slices.Clone(attrs)})
	if h.groups == 0 {
		for _, a := range attrs {
			if c, ok := h.customerOf(a); ok {
				h2.customer = c
			}
		}
	}
	return &h2
}

// WithGroup returns a handler that nests later attributes in group name.
func (h *CustomerHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.next = h.next.WithGroup(name)
	h2.ops = append(slices.Clip(h.ops), op{group: name})
	h2.groups++
	return &h2
}

// CustomerDir returns the directory of a customer's logs:
// CustomerDir(Config.Dir, customer). Its signature suits components that
// store other files for a customer, such as guest logs.
func (h *CustomerHandler) CustomerDir(customer string) (string, error) {
	return CustomerDir(h.st.cfg.Dir, customer)
}

// FilePath returns the path of a customer's log file.
func (h *CustomerHandler) FilePath(customer string) (string, error) {
	dir, err := h.CustomerDir(customer)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, h.st.cfg.FileName), nil
}

// Rotate starts a new file for the customer now, keeping the old one as a
// backup subject to retention, as happens at MaxSizeMB.
func (h *CustomerHandler) Rotate(customer string) error {
	f, err := h.st.acquire(customer)
	if err != nil {
		return fmt.Errorf("logging: customer %q: %w", customer, err)
	}
	defer h.st.release(f)
	if warn, err := h.st.rotate(f); err != nil {
		err = fmt.Errorf("logging: rotate customer %q: %w", customer, err)
		if warn {
			h.st.warn(context.Background(), msgRefused, customer, err)
		}
		return err
	}
	return nil
}

// Reopen closes every open customer file, so that each customer's next
// record opens the file at its path again: what a SIGHUP handler calls
// after logrotate moved the files away. A file being written at the moment
// is closed when that write is done. Records are not lost: those written
// before the close went to the moved file.
func (h *CustomerHandler) Reopen() error {
	s := h.st
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for e := s.open.Front(); e != nil; {
		next := e.Next()
		f := e.Value.(*customerFile)
		if f.refs == 0 {
			errs = append(errs, s.closeLocked(f))
		} else {
			f.reopen = true
		}
		e = next
	}
	return errors.Join(errs...)
}

// Close closes every customer file and waits for the clean-up of rotated
// files under way. Later customer records fail with [ErrClosed]; the process
// handler keeps receiving records. Close is idempotent.
func (h *CustomerHandler) Close() error {
	s := h.st
	s.mu.Lock()
	s.done = true
	var errs []error
	for e := s.open.Front(); e != nil; {
		next := e.Next()
		f := e.Value.(*customerFile)
		if f.refs == 0 { // busy files are closed by release
			errs = append(errs, s.closeLocked(f))
		}
		e = next
	}
	s.mu.Unlock()
	s.millMu.Lock()
	s.millDone = true
	s.millMu.Unlock()
	s.mills.Wait()
	return errors.Join(errs...)
}

// acquire returns the customer's file, marked busy until release, which
// may close it; its file is opened by the write that needs it.
func (s *shared) acquire(customer string) (*customerFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil, ErrClosed
	}
	f := s.files[customer]
	if f == nil {
		dir, err := CustomerDir(s.cfg.Dir, customer)
		if err != nil {
			return nil, err
		}
		f = s.newCustomerFile(customer, dir)
		s.files[customer] = f
	}
	if f.elem == nil {
		f.elem = s.open.PushFront(f)
		s.trimLocked()
	} else {
		s.open.MoveToFront(f.elem)
	}
	f.refs++
	return f, nil
}

func (s *shared) release(f *customerFile) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.refs--
	if f.refs > 0 {
		return
	}
	if f.reopen {
		f.reopen = false
		if f.elem != nil {
			_ = s.closeLocked(f)
		}
		return
	}
	if s.done {
		if f.elem != nil {
			_ = s.closeLocked(f)
		}
		return
	}
	s.trimLocked()
}

// trimLocked closes idle files, least recently used first, until at most
// MaxOpen remain.
func (s *shared) trimLocked() {
	for e := s.open.Back(); e != nil && s.open.Len() > s.cfg.MaxOpen; {
		prev := e.Prev()
		if f := e.Value.(*customerFile); f.refs == 0 {
			_ = s.closeLocked(f)
		}
		e = prev
	}
}

func (s *shared) closeLocked(f *customerFile) error {
	s.open.Remove(f.elem)
	f.elem = nil
	return f.close() // the next write checks and reopens the file, and appends
}

// maxSize is Config.MaxSizeMB in bytes.
func (s *shared) maxSize() int64 { return int64(s.cfg.MaxSizeMB) << 20 }

// msgRefused is the WARN line of a customer file refused because of a link.
const msgRefused = "customer log file not written: symbolic link in the log tree"

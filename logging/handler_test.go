package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// lockedBuffer is the process log of a test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	return parseLines(t, b.buf.Bytes())
}

func parseLines(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return parseLines(t, data)
}

type setup struct {
	h    *CustomerHandler
	proc *lockedBuffer
	dir  string
	log  *slog.Logger
}

func newSetup(t *testing.T, cfg Config) setup {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "logs")
	}
	proc := &lockedBuffer{}
	h, err := NewCustomerHandler(slog.NewJSONHandler(proc, nil), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return setup{h: h, proc: proc, dir: cfg.Dir, log: slog.New(h)}
}

func (s setup) customerLines(t *testing.T, customer string) []map[string]any {
	t.Helper()
	p, err := s.h.FilePath(customer)
	require.NoError(t, err)
	return readLines(t, p)
}

func TestInterleavedCustomersDoNotLeak(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{})
	customers := []string{"acme", "globex", "initech"}
	const goroutines, perGoroutine = 6, 100
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				c := customers[(g+i)%len(customers)]
				if i%2 == 0 {
					s.log.Info("record", "customer", c, "g", g, "i", i)
				} else {
					s.log.With("customer", c).Info("record", "g", g, "i", i)
				}
				s.log.Info("no customer", "g", g, "i", i)
			}
		})
	}
	wg.Wait()
	require.NoError(t, s.h.Close())

	total := 0
	for _, c := range customers {
		lines := s.customerLines(t, c)
		total += len(lines)
		for _, l := range lines {
			require.Equal(t, c, l["customer"], "a record of another customer leaked into %s's file", c)
			require.Equal(t, "record", l["msg"])
		}
	}
	require.Equal(t, goroutines*perGoroutine, total)
	// The process log has everything, with and without customer.
	require.Len(t, s.proc.lines(t), 2*goroutines*perGoroutine)

	// Only the three customer directories exist.
	entries, err := os.ReadDir(s.dir)
	require.NoError(t, err)
	require.Len(t, entries, 3)
}

func TestRecordWithoutCustomerOnlyGoesToNext(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{})
	s.log.Info("plain", "k", "v")
	s.log.Info("empty customer", "customer", "")
	s.log.WithGroup("g").Info("grouped customer is data", "customer", "acme")
	s.log.Info("nested", slog.Group("target", "customer", "acme"))
	require.Len(t, s.proc.lines(t), 4)
	entries, err := os.ReadDir(s.dir)
	require.NoError(t, err)
	require.Empty(t, entries)
}

func TestWithAndGroups(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{})

	t.Run("With", func(t *testing.T) {
		s.log.With("customer", "acme").Info("hello", "n", 1)
		lines := s.customerLines(t, "acme")
		require.Len(t, lines, 1)
		require.Equal(t, "acme", lines[0]["customer"])
		require.Equal(t, "hello", lines[0]["msg"])
		require.EqualValues(t, 1, lines[0]["n"])
	})

	t.Run("WithThenGroup", func(t *testing.T) {
		s.log.With("customer", "globex", "req", "r1").WithGroup("http").With("path", "/x").Info("served", "status", 200)
		lines := s.customerLines(t, "globex")
		require.Len(t, lines, 1)
		require.Equal(t, "globex", lines[0]["customer"])
		require.Equal(t, "r1", lines[0]["req"])
		require.Equal(t, map[string]any{"path": "/x", "status": float64(200)}, lines[0]["http"])
	})

	t.Run("RecordOverridesWith", func(t *testing.T) {
		s.log.With("customer", "one").Info("moved", "customer", "two")
		require.Len(t, s.customerLines(t, "two"), 1)
		_, err := os.Stat(filepath.Join(s.dir, "one"))
		require.ErrorIs(t, err, fs.ErrNotExist)
	})

	t.Run("InlinedGroupAndLogValuer", func(t *testing.T) {
		s.log.Info("inlined", slog.Group("", "customer", "three"))
		s.log.Info("valuer", "customer", customerID("four"))
		require.Len(t, s.customerLines(t, "three"), 1)
		require.Len(t, s.customerLines(t, "four"), 1)
	})
}

type customerID string

func (c customerID) LogValue() slog.Value { return slog.StringValue(string(c)) }

func TestLevels(t *testing.T) {
	t.Parallel()
	proc := &lockedBuffer{}
	dir := t.TempDir()
	h, err := NewCustomerHandler(slog.NewJSONHandler(proc, &slog.HandlerOptions{Level: slog.LevelWarn}),
		Config{Dir: dir, Level: slog.LevelDebug})
	require.NoError(t, err)
	defer h.Close()
	log := slog.New(h)
	log.Debug("debug", "customer", "acme")
	log.Info("info")
	log.Warn("warn", "customer", "acme")
	require.Len(t, proc.lines(t), 1, "the process handler keeps its own level")
	p, err := h.FilePath("acme")
	require.NoError(t, err)
	require.Len(t, readLines(t, p), 2, "customer files have Config.Level")
}

func TestHostileCustomerIDsStayInsideDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s := newSetup(t, Config{Dir: filepath.Join(root, "logs")})
	ids := []string{"../../etc", "..", ".", "a/b", "a_b", `a\b`, "\x00x", "x\x00", ".hidden", "con", "CON",
		"Acme", "acme", "ümlaut", "日本", strings.Repeat("x", 500), strings.Repeat("x", 501), "a\nb", "-"}
	for _, id := range ids {
		s.log.Info("hostile", "customer", id)
	}
	require.NoError(t, s.h.Close())

	// Nothing was written outside the log directory.
	top, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Len(t, top, 1)
	// One directory per id, each holding exactly that id's record.
	dirs, err := os.ReadDir(s.dir)
	require.NoError(t, err)
	require.Len(t, dirs, len(ids))
	for _, id := range ids {
		lines := s.customerLines(t, id)
		require.Len(t, lines, 1, "id %q", id)
		require.Equal(t, strings.ToValidUTF8(id, "\ufffd"), lines[0]["customer"])
	}
}

func TestLRUEvictionReopensAndAppends(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{MaxOpen: 2})
	customers := []string{"c1", "c2", "c3", "c4", "c5"}
	const rounds = 3
	for r := range rounds {
		for _, c := range customers {
			s.log.Info("line", "customer", c, "round", r)
			s.h.st.mu.Lock()
			open := s.h.st.open.Len()
			s.h.st.mu.Unlock()
			require.LessOrEqual(t, open, 2)
		}
	}
	for _, c := range customers {
		lines := s.customerLines(t, c)
		require.Len(t, lines, rounds, "customer %s", c)
		for r, l := range lines {
			require.EqualValues(t, r, l["round"], "reopening appends in order")
		}
	}
}

func TestLRUUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{MaxOpen: 2})
	var wg sync.WaitGroup
	const workers, each = 8, 50
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				s.log.Info("x", "customer", fmt.Sprintf("c%d", (w+i)%5), "w", w, "i", i)
			}
		})
	}
	wg.Wait()
	total := 0
	for c := range 5 {
		total += len(s.customerLines(t, fmt.Sprintf("c%d", c)))
	}
	require.Equal(t, workers*each, total)
	s.h.st.mu.Lock()
	require.LessOrEqual(t, s.h.st.open.Len(), 2)
	s.h.st.mu.Unlock()
}

func TestRotate(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{MaxBackups: 1})
	s.log.Info("before", "customer", "acme")
	require.NoError(t, s.h.Rotate("acme"))
	s.log.Info("after", "customer", "acme")

	dir, err := s.h.CustomerDir("acme")
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "the current file and one backup")
	var backup string
	for _, e := range entries {
		if e.Name() != DefaultFileName {
			backup = e.Name()
		}
	}
	require.True(t, strings.HasPrefix(backup, "worker-") && strings.HasSuffix(backup, ".log"), backup)
	require.Equal(t, "before", readLines(t, filepath.Join(dir, backup))[0]["msg"])
	cur := s.customerLines(t, "acme")
	require.Len(t, cur, 1)
	require.Equal(t, "after", cur[0]["msg"])
	fi, err := os.Stat(filepath.Join(dir, DefaultFileName))
	require.NoError(t, err)
	require.Zero(t, fi.Mode().Perm()&^FilePerm, "a rotated-in file keeps mode 0o640")
}

func TestRotateBySize(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{MaxSizeMB: 1})
	big := strings.Repeat("x", 64<<10)
	for range 20 { // ~1.3 MB
		s.log.Info(big, "customer", "acme")
	}
	dir, err := s.h.CustomerDir("acme")
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2)
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{})
	s.log.Info("x", "customer", "acme")
	dir, err := s.h.CustomerDir("acme")
	require.NoError(t, err)
	for path, want := range map[string]fs.FileMode{s.dir: DirPerm, dir: DirPerm, filepath.Join(dir, DefaultFileName): FilePerm} {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.Zero(t, fi.Mode().Perm()&^want, "%s has mode %v, want at most %v", path, fi.Mode().Perm(), want)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{})
	s.log.Info("x", "customer", "acme")
	require.NoError(t, s.h.Close())
	require.NoError(t, s.h.Close())
	err := s.h.Handle(t.Context(), slog.NewRecord(timeZero, slog.LevelInfo, "late", 0))
	require.NoError(t, err, "no customer: only the process log")
	r := slog.NewRecord(timeZero, slog.LevelInfo, "late", 0)
	r.AddAttrs(slog.String("customer", "acme"))
	require.ErrorIs(t, s.h.Handle(t.Context(), r), ErrClosed)
	require.Len(t, s.proc.lines(t), 3, "the process log still gets records")
}

func TestCustomerDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p, err := CustomerDir(dir, "../../etc")
	require.NoError(t, err)
	require.Equal(t, dir, filepath.Dir(p))
	_, err = CustomerDir(dir, "")
	require.ErrorIs(t, err, ErrEmptyCustomer)
	_, err = CustomerDir("", "acme")
	require.Error(t, err)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	tests := []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"Defaults", Config{Dir: filepath.Join(tmp, "new", "nested")}, ""},
		{"MissingDir", Config{}, "Dir"},
		{"DirUnderFile", Config{Dir: filepath.Join(file, "sub")}, "Dir"},
		{"DirIsFile", Config{Dir: file}, "Dir"},
		{"FileNameWithSlash", Config{Dir: tmp, FileName: "a/b.log"}, "FileName"},
		{"FileNameDotDot", Config{Dir: tmp, FileName: ".."}, "FileName"},
		{"FileNameHidden", Config{Dir: tmp, FileName: ".log"}, "FileName"},
		{"NegativeMaxSize", Config{Dir: tmp, MaxSizeMB: -1}, "MaxSizeMB"},
		{"NegativeMaxOpen", Config{Dir: tmp, MaxOpen: -1}, "MaxOpen"},
		{"NegativeRetentionMeansUnlimited", Config{Dir: tmp, MaxBackups: -1, MaxAgeDays: -1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "Config."+tt.field)
		})
	}
	_, err := NewCustomerHandler(nil, Config{Dir: tmp})
	require.Error(t, err)
	_, err = NewCustomerHandler(slog.DiscardHandler, Config{})
	require.ErrorContains(t, err, "Config.Dir")
}

func TestHandleErrorsAreReported(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{})
	// Make the customer directory impossible to create.
	name, err := SafeName("blocked")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, name), nil, 0o600))
	r := slog.NewRecord(timeZero, slog.LevelInfo, "x", 0)
	r.AddAttrs(slog.String("customer", "blocked"))
	err = s.h.Handle(t.Context(), r)
	require.Error(t, err)
	require.Contains(t, err.Error(), `customer "blocked"`)
	require.False(t, errors.Is(err, ErrClosed))
	require.Len(t, s.proc.lines(t), 1)
}

// TestReopen: after logrotate moved a customer's file away, Reopen makes
// the next record open a new file at the path; the moved file keeps what
// was written before.
func TestReopen(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{})
	s.log.Info("before", "customer", "acme")
	path, err := s.h.FilePath("acme")
	require.NoError(t, err)
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, s.h.Reopen())
	s.log.Info("after", "customer", "acme")
	require.Equal(t, "before", readLines(t, path+".1")[0]["msg"])
	cur := s.customerLines(t, "acme")
	require.Len(t, cur, 1)
	require.Equal(t, "after", cur[0]["msg"])
}

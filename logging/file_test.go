package logging

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/safefs"
)

// filesystems are those the handler is tested on: the platform's and the
// portable one.
var filesystems = []struct {
	name string
	fs   safefs.FS
}{
	{"Default", safefs.Default},
	{"Lstat", safefs.Lstat{}},
}

// backupName is a name lumberjack takes for a backup of worker.log.
const backupName = "worker-2001-02-03T04-05-06.000.log"

// newSetupOn is newSetup with the handler on fsys.
func newSetupOn(t *testing.T, cfg Config, fsys safefs.FS) setup {
	t.Helper()
	s := newSetup(t, cfg)
	s.h.st.fs = fsys // before any record: nothing else reads it yet
	return s
}

// handle hands the handler one record of the customer and returns its error,
// which slog.Logger would drop.
func (s setup) handle(t *testing.T, customer, msg string) error {
	t.Helper()
	r := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
	r.AddAttrs(slog.String("customer", customer))
	return s.h.Handle(t.Context(), r)
}

// warnings returns the WARN lines of the process log.
func (s setup) warnings(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range s.proc.lines(t) {
		if l["level"] == "WARN" {
			out = append(out, l)
		}
	}
	return out
}

// listTree returns every path under dir, relative to it.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return err
	}))
	return out
}

// outsideTarget is what a planted link points to, outside the log tree.
type outsideTarget struct {
	dir  string // holds the target
	path string
	kind string // "dir", "file" or "" (missing: the link dangles)
}

func newOutsideTarget(t *testing.T, kind string) outsideTarget {
	t.Helper()
	o := outsideTarget{dir: t.TempDir(), kind: kind}
	o.path = filepath.Join(o.dir, "target")
	switch kind {
	case "dir":
		require.NoError(t, os.Mkdir(o.path, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(o.path, "worker.log"), []byte("outside\n"), 0o600))
	case "file":
		require.NoError(t, os.WriteFile(o.path, []byte("outside\n"), 0o600))
	}
	return o
}

// requireUnchanged checks that nothing outside the tree was created,
// removed or written.
func (o outsideTarget) requireUnchanged(t *testing.T) {
	t.Helper()
	want := map[string][]string{"dir": {"target", filepath.Join("target", "worker.log")}, "file": {"target"}, "": nil}[o.kind]
	require.Equal(t, want, listTree(t, o.dir), "nothing created or removed outside the tree")
	file := map[string]string{"dir": filepath.Join(o.path, "worker.log"), "file": o.path}[o.kind]
	if file != "" {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		require.Equal(t, "outside\n", string(b), "the outside file is unchanged")
	}
}

// A symbolic link planted below the log directory, as the customer's
// directory, its file or a backup, and whether it points to something or
// dangles, refuses the customer's records: the error names the link and
// matches ErrSymlink, one WARN line says so, nothing is written outside the
// tree, the link stays, and the process log and the other customers keep
// working. Once the link is gone the customer's file works again.
func TestPlantedLinksAreNotFollowed(t *testing.T) {
	t.Parallel()
	for _, tf := range filesystems {
		for _, tc := range []struct {
			name   string
			link   string // below the log dir
			target string // kind of outsideTarget
		}{
			{"CustomerDir", "acme", "dir"},
			{"DanglingCustomerDir", "acme", ""},
			{"LogFile", "acme/worker.log", "file"},
			{"DanglingLogFile", "acme/worker.log", ""},
			{"Backup", "acme/" + backupName, "file"},
			{"DanglingBackup", "acme/" + backupName, ""},
			{"CompressedBackup", "acme/" + backupName + ".gz", "file"},
		} {
			t.Run(tf.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				s := newSetupOn(t, Config{}, tf.fs)
				out := newOutsideTarget(t, tc.target)
				link := filepath.Join(s.dir, filepath.FromSlash(tc.link))
				require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o700))
				require.NoError(t, os.Symlink(out.path, link))

				errs := []error{s.handle(t, "acme", "first"), s.handle(t, "acme", "second"), s.h.Rotate("acme")}
				out.requireUnchanged(t)
				for _, err := range errs {
					require.ErrorIs(t, err, ErrSymlink)
					require.ErrorContains(t, err, `customer "acme": `+link+" is a symbolic link")
				}
				fi, err := os.Lstat(link)
				require.NoError(t, err)
				require.NotZero(t, fi.Mode()&fs.ModeSymlink, "the link is left as it is")

				warns := s.warnings(t)
				require.Len(t, warns, 1, "one WARN line, not one per record")
				require.Equal(t, "acme", warns[0]["customer"])
				require.Contains(t, warns[0]["err"], link+" is a symbolic link")

				// The process log and the other customers are not affected.
				require.NoError(t, s.handle(t, "globex", "fine"))
				require.Len(t, s.customerLines(t, "globex"), 1)
				require.Len(t, s.proc.lines(t), 4, "three records and the WARN")

				// Without the link, the customer's file works again.
				require.NoError(t, os.Remove(link))
				require.NoError(t, s.handle(t, "acme", "third"))
				lines := s.customerLines(t, "acme")
				require.Equal(t, "third", lines[len(lines)-1]["msg"])
				out.requireUnchanged(t)
			})
		}
	}
}

// A link planted while the customer's file is open is refused at the next
// rotation, whether asked for or due to size, before lumberjack renames the
// file or compresses backups. A link planted again after a refusal was
// cleared is warned about again.
func TestLinkPlantedWhileOpenIsRefusedAtRotation(t *testing.T) {
	t.Parallel()
	for _, tf := range filesystems {
		for _, tc := range []struct {
			name   string
			rotate func(t *testing.T, s setup) error
		}{
			{"Rotate", func(t *testing.T, s setup) error { return s.h.Rotate("acme") }},
			{"BySize", func(t *testing.T, s setup) error {
				big := strings.Repeat("x", 64<<10)
				for range 20 { // ~1.3 MB: one of them is due to rotate the file
					if err := s.handle(t, "acme", big); err != nil {
						return err
					}
				}
				return nil
			}},
		} {
			t.Run(tf.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				// Compress makes lumberjack read and write backups by path; 1 MB rotates by size quickly.
				s := newSetupOn(t, Config{Compress: true, MaxSizeMB: 1}, tf.fs)
				require.NoError(t, s.handle(t, "acme", "open"))
				dir, err := s.h.CustomerDir("acme")
				require.NoError(t, err)
				out := newOutsideTarget(t, "file")
				link := filepath.Join(dir, backupName)
				require.NoError(t, os.Symlink(out.path, link))

				err = tc.rotate(t, s)
				require.ErrorIs(t, err, ErrSymlink)
				require.ErrorContains(t, err, link+" is a symbolic link")
				require.Never(t, func() bool { // lumberjack's clean-up runs in the background
					fi, err := os.Lstat(link)
					return err != nil || fi.Mode()&fs.ModeSymlink == 0 || listTree(t, out.dir)[0] != "target"
				}, 200*time.Millisecond, 20*time.Millisecond, "the link stays and is not compressed")
				out.requireUnchanged(t)
				require.Len(t, s.warnings(t), 1)
				names, err := os.ReadDir(dir)
				require.NoError(t, err)
				require.Len(t, names, 2, "worker.log and the link: nothing was rotated")

				require.NoError(t, os.Remove(link))
				require.NoError(t, s.h.Rotate("acme"))
				require.NoError(t, os.Symlink(out.path, link))
				require.ErrorIs(t, s.h.Rotate("acme"), ErrSymlink)
				require.Len(t, s.warnings(t), 2, "a new refusal is warned about again")
				out.requireUnchanged(t)
			})
		}
	}
}

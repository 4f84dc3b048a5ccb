package guest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// trees are the local trees to test: the platform's and the portable one.
var trees = []struct {
	name string
	tree tree
}{
	{"Default", defaultTree},
	{"Lstat", lstatTree{}},
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

// A link planted anywhere below the customer's directory fails the file
// and nothing is written outside the tree. A link swapped in between a check
// and the open is not tested: on Linux the openat(O_NOFOLLOW) walk has no
// such window (the lookup itself refuses the link), which is what it is for.
func TestSymlinksInTheLogTreeAreNotFollowed(t *testing.T) {
	t.Parallel()
	for _, tr := range trees {
		for _, tc := range []struct {
			name string
			link string // below the log dir
			// existing: the link's target exists (a directory, or for the
			// log file a file); else it dangles.
			existing bool
		}{
			{"CustomerDir", "acme", true},
			{"IntermediateDir", "acme/guests/acct-1", true},
			{"ServerDir", "acme/guests/acct-1/srv-1", true},
			{"LogFile", "acme/guests/acct-1/srv-1/syslog", true},
			{"DanglingLogFile", "acme/guests/acct-1/srv-1/syslog", false},
			{"DanglingCustomerDir", "acme", false},
		} {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				e.srv.Write(t, syslog, "secret\n")
				outside := t.TempDir()
				target := filepath.Join(outside, "target")
				isFile := filepath.Base(tc.link) == "syslog"
				if tc.existing && isFile {
					require.NoError(t, os.WriteFile(target, []byte("outside\n"), 0o600))
				} else if tc.existing {
					require.NoError(t, os.Mkdir(target, 0o700))
				}
				link := filepath.Join(e.logDir, filepath.FromSlash(tc.link))
				require.NoError(t, os.MkdirAll(filepath.Dir(link), 0o700))
				require.NoError(t, os.Symlink(target, link))
				before := listTree(t, outside)

				c := e.collector(t)
				c.tree = tr.tree
				r := c.Collect(t.Context(), []Guest{e.guest("srv-1")})[0]
				require.ErrorIs(t, r.Err, ErrSymlink)
				require.ErrorContains(t, r.Err, link+" is a symbolic link")
				require.ErrorContains(t, r.Err, "server srv-1")

				require.Equal(t, before, listTree(t, outside), "nothing created outside the tree")
				if tc.existing && isFile {
					b, err := os.ReadFile(target)
					require.NoError(t, err)
					require.Equal(t, "outside\n", string(b))
				}
				o, err := e.offsets.Get(t.Context(), GuestFile{"acct-1", "srv-1", syslog})
				require.NoError(t, err)
				require.Zero(t, o, "nothing was copied")
				fi, err := os.Lstat(link)
				require.NoError(t, err)
				require.NotZero(t, fi.Mode()&fs.ModeSymlink, "the link is left as it is")
			})
		}
	}
}

// The directory holding the customer directories is the operator's: it may
// be a link, as /var/log/stratus -> /data/logs would be.
func TestOutputDirMayLiveBehindALink(t *testing.T) {
	t.Parallel()
	for _, tr := range trees {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			real := t.TempDir()
			require.NoError(t, os.Symlink(real, e.logDir))
			e.srv.Write(t, syslog, "x\n")
			c := e.collector(t)
			c.tree = tr.tree
			collectOne(t, c, e.guest("srv-1"))
			b, err := os.ReadFile(filepath.Join(real, "acme", "guests", "acct-1", "srv-1", "syslog"))
			require.NoError(t, err)
			require.Equal(t, "x\n", string(b))
		})
	}
}

func TestLocalTreeRefusesOtherFiles(t *testing.T) {
	t.Parallel()
	for _, tr := range trees {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			l := localFile{base: base, dirs: []string{"acme", "guests"}, name: "syslog"}
			require.NoError(t, os.MkdirAll(filepath.Join(base, "acme"), 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(base, "acme", "guests"), nil, 0o600))
			_, err := tr.tree.open(l)
			require.ErrorContains(t, err, filepath.Join(base, "acme", "guests")+" is not a directory")
			_, _, err = tr.tree.stat(l)
			require.ErrorContains(t, err, "is not a directory")

			require.NoError(t, os.Remove(filepath.Join(base, "acme", "guests")))
			require.NoError(t, os.MkdirAll(filepath.Join(base, "acme", "guests", "syslog"), 0o700))
			_, err = tr.tree.open(l)
			require.ErrorContains(t, err, l.String()+" is not a regular file")
			_, _, err = tr.tree.stat(l)
			require.ErrorContains(t, err, "is not a regular file")
		})
	}
}

func TestLocalTreeCreatesAndStats(t *testing.T) {
	t.Parallel()
	for _, tr := range trees {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			base := filepath.Join(t.TempDir(), "logs") // created on demand
			l := localFile{base: base, dirs: []string{"acme", "guests", "a", "s"}, name: "syslog"}
			_, exists, err := tr.tree.stat(l)
			require.NoError(t, err)
			require.False(t, exists)

			f, err := tr.tree.open(l)
			require.NoError(t, err)
			_, err = f.WriteString("hello\n")
			require.NoError(t, err)
			require.NoError(t, f.Close())

			size, exists, err := tr.tree.stat(l)
			require.NoError(t, err)
			require.True(t, exists)
			require.EqualValues(t, 6, size)
			for i := range l.dirs {
				fi, err := os.Stat(l.dirPath(i + 1))
				require.NoError(t, err)
				require.Zero(t, fi.Mode().Perm()&^dirPerm)
			}
			fi, err := os.Stat(l.String())
			require.NoError(t, err)
			require.Zero(t, fi.Mode().Perm()&^filePerm)

			f, err = tr.tree.open(l) // existing: not truncated
			require.NoError(t, err)
			require.NoError(t, f.Close())
			size, _, err = tr.tree.stat(l)
			require.NoError(t, err)
			require.EqualValues(t, 6, size)
		})
	}
}

func TestLocalNamesStayInTheTree(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", ".", "..", "a/b", "../x", `a\b`, "a\x00b"} {
		l := localFile{base: "/logs", dirs: []string{"acme", name}, name: "syslog"}
		require.Error(t, l.check(), "dir %q", name)
		l = localFile{base: "/logs", dirs: []string{"acme"}, name: name}
		require.Error(t, l.check(), "file %q", name)
		for _, tr := range trees {
			_, err := tr.tree.open(l)
			require.ErrorContains(t, err, "is not a plain file name")
		}
	}
	require.NoError(t, localFile{base: "/logs", dirs: []string{"acme", "guests"}, name: "syslog"}.check())

	// Names the collector derives from ids and remote paths are plain.
	for _, remote := range []string{"/var/log/..", "/var/log/../../etc/passwd", "/a/b\\c", "/x/.hidden", "/x/-rf"} {
		l := localFile{base: "/logs", dirs: []string{"acme"}, name: localName(remote)}
		require.NoError(t, l.check(), "local name of %q", remote)
	}

	e := newEnv(t)
	c := e.collector(t)
	for _, tc := range []struct {
		name string
		out  string
	}{
		{"Root", "/"},
		{"Empty", ""},
		{"Dot", "."},
		{"DotDot", "logs/.."},
	} {
		t.Run("OutputDir"+tc.name, func(t *testing.T) {
			c.cfg.OutputDir = func(string) (string, error) { return tc.out, nil }
			_, err := c.guestDir(e.guest("srv-1"))
			require.ErrorContains(t, err, "is not a directory below another")
		})
	}
}

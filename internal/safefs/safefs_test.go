package safefs

import (
	"cmp"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// The walker itself (links, non-directories, FIFOs, creation, names) is
// tested through the guest collector, in cloud/guest/localfs*_test.go,
// against both file systems; these tests cover what only logging uses.

var filesystems = []struct {
	name string
	fs   FS
}{
	{"Default", Default},
	{"Lstat", Lstat{}},
}

// ReadDir reports each entry's own type: a link is a link, whatever it
// points to, and nothing is followed.
func TestReadDirDoesNotFollow(t *testing.T) {
	t.Parallel()
	for _, tf := range filesystems {
		t.Run(tf.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			dir := filepath.Join(base, "acme")
			outside := t.TempDir()
			require.NoError(t, os.Mkdir(dir, 0o700))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o600))
			require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, "to-dir")))
			require.NoError(t, os.Symlink(filepath.Join(outside, "missing"), filepath.Join(dir, "dangling")))

			entries, err := tf.fs.ReadDir(Path{Base: base, Dirs: []string{"acme"}, Name: "worker.log"})
			require.NoError(t, err)
			slices.SortFunc(entries, func(a, b Entry) int { return cmp.Compare(a.Name, b.Name) })
			require.Equal(t, []Entry{
				{"dangling", fs.ModeSymlink},
				{"file", 0},
				{"sub", fs.ModeDir},
				{"to-dir", fs.ModeSymlink},
			}, entries)
		})
	}
}

func TestReadDirRefusesALinkAbove(t *testing.T) {
	t.Parallel()
	for _, tf := range filesystems {
		t.Run(tf.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			outside := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), nil, 0o600))
			link := filepath.Join(base, "acme")
			require.NoError(t, os.Symlink(outside, link))

			entries, err := tf.fs.ReadDir(Path{Base: base, Dirs: []string{"acme"}, Name: "worker.log"})
			require.ErrorIs(t, err, ErrSymlink)
			require.EqualError(t, err, link+" is a symbolic link; links below the log directory are not followed")
			require.Empty(t, entries)

			entries, err = tf.fs.ReadDir(Path{Base: base, Dirs: []string{"missing"}, Name: "worker.log"})
			require.NoError(t, err, "a missing directory has no entries")
			require.Empty(t, entries)

			_, err = tf.fs.ReadDir(Path{Base: base, Dirs: []string{".."}, Name: "worker.log"})
			require.ErrorContains(t, err, "is not a plain file name")
		})
	}
}

// OpenRead, Create and Remove, which logging's retention uses, follow no
// link: in place of the file, or of a directory above it.
func TestReadCreateRemoveDoNotFollow(t *testing.T) {
	t.Parallel()
	for _, tf := range filesystems {
		t.Run(tf.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			outside := t.TempDir()
			target := filepath.Join(outside, "target")
			require.NoError(t, os.WriteFile(target, []byte("outside\n"), 0o600))
			require.NoError(t, os.Mkdir(filepath.Join(base, "acme"), 0o700))
			require.NoError(t, os.Symlink(target, filepath.Join(base, "acme", "link")))
			require.NoError(t, os.Symlink(filepath.Join(outside, "missing"), filepath.Join(base, "acme", "dangling")))
			require.NoError(t, os.Symlink(outside, filepath.Join(base, "linkdir")))
			at := func(dir, name string) Path { return Path{Base: base, Dirs: []string{dir}, Name: name} }

			for _, p := range []Path{at("acme", "link"), at("acme", "dangling"), at("linkdir", "target")} {
				_, err := tf.fs.OpenRead(p)
				require.ErrorIs(t, err, ErrSymlink, "OpenRead %s", p)
				_, err = tf.fs.Create(p, 0o640)
				require.ErrorIs(t, err, ErrSymlink, "Create %s", p)
			}
			require.ErrorIs(t, tf.fs.Remove(at("linkdir", "target")), ErrSymlink)
			_, err := tf.fs.OpenRead(at("acme", "missing"))
			require.ErrorIs(t, err, fs.ErrNotExist)

			// A link itself is removed, never its target.
			require.NoError(t, tf.fs.Remove(at("acme", "link")))
			b, err := os.ReadFile(target)
			require.NoError(t, err)
			require.Equal(t, "outside\n", string(b))
			_, err = os.Stat(filepath.Join(outside, "missing"))
			require.ErrorIs(t, err, fs.ErrNotExist, "nothing created through the dangling link")

			// Regular files work.
			f, err := tf.fs.Create(at("acme", "new"), 0o640)
			require.NoError(t, err)
			_, err = f.WriteString("new\n")
			require.NoError(t, err)
			require.NoError(t, f.Close())
			_, err = tf.fs.Create(at("acme", "new"), 0o640)
			require.ErrorIs(t, err, fs.ErrExist)
			f, err = tf.fs.OpenRead(at("acme", "new"))
			require.NoError(t, err)
			b, err = io.ReadAll(f)
			require.NoError(t, err)
			require.NoError(t, f.Close())
			require.Equal(t, "new\n", string(b))
			require.NoError(t, tf.fs.Remove(at("acme", "new")))
			require.ErrorIs(t, tf.fs.Remove(at("acme", "new")), fs.ErrNotExist)
		})
	}
}

package safefs

import (
	"cmp"
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

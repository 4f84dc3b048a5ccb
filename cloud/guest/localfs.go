package guest

import (
	"os"

	"github.com/stratusworks/worker/internal/safefs"
)

// ErrSymlink is matched (errors.Is) by the error of a local copy whose path
// below the output directory holds a symbolic link: the collector never
// follows one there, so a link planted in the log tree cannot make it write
// elsewhere. Nothing is written for that file. It is the same error as
// logging.ErrSymlink, which the customer log files report.
var ErrSymlink = safefs.ErrSymlink

// localFile is where a local copy lives. base is the directory holding the
// customer's directory (the parent of OutputDir(customer)), used as
// configured: it may be a symbolic link. dirs (the customer's directory,
// "guests", the account, the server) and name are single path elements, and
// none of them is followed if it is a symbolic link.
type localFile struct {
	base string
	dirs []string
	name string
}

func (l localFile) path() safefs.Path { return safefs.Path{Base: l.base, Dirs: l.dirs, Name: l.name} }

// String is the file's path.
func (l localFile) String() string { return l.path().String() }

// dirPath is the path of dirs[:n].
func (l localFile) dirPath(n int) string { return l.path().DirPath(n) }

// check refuses a localFile whose elements are not single, plain names, so
// that no element can climb out of the tree whatever produced it.
func (l localFile) check() error { return l.path().Check() }

// tree does the collector's file operations below the output directory
// without following symbolic links (see package internal/safefs).
// defaultTree is the best one this platform has.
type tree interface {
	// stat returns the size of the regular file; exists is false if it or
	// a directory above it is missing.
	stat(l localFile) (size int64, exists bool, err error)
	// open opens the regular file for writing, creating it (filePerm) and
	// missing directories (dirPerm); new entries are synced into their
	// directories before it returns.
	open(l localFile) (*os.File, error)
}

var defaultTree tree = fsTree{safefs.Default}

// fsTree is the tree of a safefs.FS.
type fsTree struct{ fs safefs.FS }

func (t fsTree) stat(l localFile) (int64, bool, error) { return t.fs.Stat(l.path()) }

func (t fsTree) open(l localFile) (*os.File, error) { return t.fs.Open(l.path(), dirPerm, filePerm) }

// lstatTree is the portable tree (safefs.Lstat), on every platform: the
// collector's tests run on it as well as on defaultTree.
type lstatTree struct{}

func (lstatTree) stat(l localFile) (int64, bool, error) { return fsTree{safefs.Lstat{}}.stat(l) }

func (lstatTree) open(l localFile) (*os.File, error) { return fsTree{safefs.Lstat{}}.open(l) }

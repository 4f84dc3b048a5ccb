package guest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrSymlink is matched (errors.Is) by the error of a local copy whose path
// below the output directory holds a symbolic link: the collector never
// follows one there, so a link planted in the log tree cannot make it write
// elsewhere. Nothing is written for that file.
var ErrSymlink = errors.New("guest: symbolic link in the local log tree")

// symlinkError names the link that was not followed.
type symlinkError struct{ path string }

func (e *symlinkError) Error() string {
	return e.path + " is a symbolic link; links under the output directory are not followed"
}

func (e *symlinkError) Is(target error) bool { return target == ErrSymlink }

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

// String is the file's path.
func (l localFile) String() string {
	return filepath.Join(append(append([]string{l.base}, l.dirs...), l.name)...)
}

// dirPath is the path of dirs[:n].
func (l localFile) dirPath(n int) string {
	return filepath.Join(append([]string{l.base}, l.dirs[:n]...)...)
}

// check refuses a localFile whose elements are not single, plain names, so
// that no element can climb out of the tree whatever produced it.
func (l localFile) check() error {
	if l.base == "" {
		return errors.New("empty output directory")
	}
	for _, e := range append(append([]string(nil), l.dirs...), l.name) {
		if e == "" || e == "." || e == ".." || len(e) > 255 || strings.ContainsAny(e, "/\\\x00") {
			return fmt.Errorf("%q is not a plain file name", e)
		}
	}
	return nil
}

// tree does the collector's file operations below the output directory
// without following symbolic links. defaultTree is the best one this
// platform has.
type tree interface {
	// stat returns the size of the regular file; exists is false if it or
	// a directory above it is missing.
	stat(l localFile) (size int64, exists bool, err error)
	// open opens the regular file for writing, creating it (filePerm) and
	// missing directories (dirPerm); new entries are synced into their
	// directories before it returns.
	open(l localFile) (*os.File, error)
}

// lstatTree is the portable tree: each element is checked with Lstat before
// it is used, and an opened file is checked to be the one that was checked.
// Between a check and the use another process could swap in a link; on Linux
// [atTree] leaves no such window.
type lstatTree struct{}

var _ tree = lstatTree{}

func (lstatTree) stat(l localFile) (int64, bool, error) {
	if err := l.check(); err != nil {
		return 0, false, err
	}
	for i := range l.dirs {
		if ok, err := lstatDir(l.dirPath(i + 1)); err != nil || !ok {
			return 0, false, err
		}
	}
	fi, err := lstatFile(l.String())
	if err != nil || fi == nil {
		return 0, false, err
	}
	return fi.Size(), true, nil
}

func (lstatTree) open(l localFile) (*os.File, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(l.base, dirPerm); err != nil {
		return nil, err
	}
	for i := range l.dirs {
		p := l.dirPath(i + 1)
		ok, err := lstatDir(p)
		if err != nil {
			return nil, err
		}
		if ok {
			continue
		}
		if err := os.Mkdir(p, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if err := syncDir(l.dirPath(i)); err != nil {
			return nil, err
		}
		if ok, err := lstatDir(p); err != nil || !ok { // swapped since
			return nil, errors.Join(err, fmt.Errorf("%s vanished while being created", p))
		}
	}
	p := l.String()
	before, err := lstatFile(p)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, filePerm)
	if err != nil {
		return nil, err
	}
	// The file opened must be the one at p, not a link's target.
	after, err := lstatFile(p)
	if err == nil && after == nil {
		err = fmt.Errorf("%s vanished while being opened", p)
	}
	if err == nil {
		var fi fs.FileInfo
		if fi, err = f.Stat(); err == nil && !os.SameFile(fi, after) {
			err = fmt.Errorf("%s was replaced while being opened", p)
		}
	}
	if err == nil && before == nil {
		err = syncDir(filepath.Dir(p))
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// lstatDir reports whether p is a directory; false if it is missing, an
// error if it is anything else.
func lstatDir(p string) (bool, error) {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return false, &symlinkError{path: p}
	case !fi.IsDir():
		return false, fmt.Errorf("%s is not a directory", p)
	}
	return true, nil
}

// lstatFile returns p's FileInfo if it is a regular file, nil if it is
// missing, an error if it is anything else.
func lstatFile(p string) (fs.FileInfo, error) {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, &symlinkError{path: p}
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return fi, nil
}

// syncDir makes new entries of a directory durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

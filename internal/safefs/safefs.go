package safefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrSymlink is matched (errors.Is) by the error of an operation that met a
// symbolic link below the base directory and did not follow it. The
// packages that use this one re-export it, as os re-exports
// fs.ErrNotExist.
var ErrSymlink = errors.New("symbolic link in the log tree")

// LinkError names a symbolic link that was not followed. It matches
// [ErrSymlink].
type LinkError struct {
	Path string // the link
}

func (e *LinkError) Error() string {
	return e.Path + " is a symbolic link; links below the log directory are not followed"
}

// Is reports whether target is [ErrSymlink].
func (e *LinkError) Is(target error) bool { return target == ErrSymlink }

// Path is a file below a base directory. Base is used as given: it is the
// operator's and may be a symbolic link. Dirs (the directories from Base down
// to the file) and Name are single path elements, none of which is followed
// if it is a symbolic link.
type Path struct {
	Base string
	Dirs []string
	Name string
}

// String is the path of the file.
func (p Path) String() string {
	return filepath.Join(append(append([]string{p.Base}, p.Dirs...), p.Name)...)
}

// DirPath is the path of Dirs[:n]: Base for 0, the directory holding the
// file for len(Dirs).
func (p Path) DirPath(n int) string {
	return filepath.Join(append([]string{p.Base}, p.Dirs[:n]...)...)
}

// Check refuses a Path whose elements are not single, plain names, so that
// no element can climb out of Base whatever produced it. Every [FS] method
// checks its Path first.
func (p Path) Check() error {
	if p.Base == "" {
		return errors.New("empty base directory")
	}
	for _, e := range append(append([]string(nil), p.Dirs...), p.Name) {
		if e == "" || e == "." || e == ".." || len(e) > 255 || strings.ContainsAny(e, "/\\\x00") {
			return fmt.Errorf("%q is not a plain file name", e)
		}
	}
	return nil
}

// Entry is a name in a directory and the type of what it names, not of
// what a symbolic link points to.
type Entry struct {
	Name string
	Type fs.FileMode // fs.ModeType bits: fs.ModeSymlink for a link, 0 for a regular file
}

// FS does file operations below a Path's Base without following symbolic
// links there.
type FS interface {
	// Stat returns the size of the regular file at p; exists is false if
	// it or a directory above it is missing.
	Stat(p Path) (size int64, exists bool, err error)

	// Open opens the regular file at p for writing (not appending, not
	// truncating), creating it with filePerm and missing directories,
	// Base included, with dirPerm. New entries are synced into their
	// directories before it returns. A FIFO or other non-regular file at p
	// fails the open without blocking, where the platform allows.
	Open(p Path, dirPerm, filePerm fs.FileMode) (*os.File, error)

	// ReadDir lists the directory holding p's file (p.DirPath(len(p.Dirs))),
	// in no particular order; nothing if it or a directory above it is
	// missing. The file p.Name itself need not exist.
	ReadDir(p Path) ([]Entry, error)

	// OpenRead opens the regular file at p for reading.
	OpenRead(p Path) (*os.File, error)

	// Create creates the regular file at p with perm and opens it for
	// writing. Its directories must exist, and nothing may be at p: not
	// even a symbolic link, which is neither followed nor replaced. The
	// new entry is synced into its directory before it returns.
	Create(p Path, perm fs.FileMode) (*os.File, error)

	// Remove removes the file at p; a symbolic link there is removed
	// itself, never what it points to.
	Remove(p Path) error
}

// Lstat is the portable [FS]: each element is checked with Lstat before it
// is used, and an opened file is checked to be the one that was checked.
// Between a check and the use another process could swap in a link; on
// Linux [At] leaves no such window.
type Lstat struct{}

var _ FS = Lstat{}

// Stat implements [FS].
func (Lstat) Stat(p Path) (int64, bool, error) {
	if err := p.Check(); err != nil {
		return 0, false, err
	}
	for i := range p.Dirs {
		if ok, err := lstatDir(p.DirPath(i + 1)); err != nil || !ok {
			return 0, false, err
		}
	}
	fi, err := lstatFile(p.String())
	if err != nil || fi == nil {
		return 0, false, err
	}
	return fi.Size(), true, nil
}

// Open implements [FS].
func (Lstat) Open(p Path, dirPerm, filePerm fs.FileMode) (*os.File, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.Base, dirPerm); err != nil {
		return nil, err
	}
	for i := range p.Dirs {
		dp := p.DirPath(i + 1)
		ok, err := lstatDir(dp)
		if err != nil {
			return nil, err
		}
		if ok {
			continue
		}
		if err := os.Mkdir(dp, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if err := syncDir(p.DirPath(i)); err != nil {
			return nil, err
		}
		if ok, err := lstatDir(dp); err != nil || !ok { // swapped since
			return nil, errors.Join(err, fmt.Errorf("%s vanished while being created", dp))
		}
	}
	name := p.String()
	before, err := lstatFile(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE, filePerm)
	if err != nil {
		return nil, err
	}
	// The file opened must be the one at name, not a link's target.
	after, err := lstatFile(name)
	if err == nil && after == nil {
		err = fmt.Errorf("%s vanished while being opened", name)
	}
	if err == nil {
		var fi fs.FileInfo
		if fi, err = f.Stat(); err == nil && !os.SameFile(fi, after) {
			err = fmt.Errorf("%s was replaced while being opened", name)
		}
	}
	if err == nil && before == nil {
		err = syncDir(filepath.Dir(name))
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// ReadDir implements [FS].
func (Lstat) ReadDir(p Path) ([]Entry, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	for i := range p.Dirs {
		if ok, err := lstatDir(p.DirPath(i + 1)); err != nil || !ok {
			return nil, err
		}
	}
	des, err := os.ReadDir(p.DirPath(len(p.Dirs)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(des))
	for i, de := range des {
		out[i] = Entry{Name: de.Name(), Type: de.Type()} // Type is that of the entry itself
	}
	return out, nil
}

// OpenRead implements [FS].
func (Lstat) OpenRead(p Path) (*os.File, error) {
	if err := lstatDirs(p); err != nil {
		return nil, err
	}
	name := p.String()
	before, err := lstatFile(name)
	if err != nil {
		return nil, err
	}
	if before == nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, before) {
		_ = f.Close()
		return nil, errors.Join(err, fmt.Errorf("%s was replaced while being opened", name))
	}
	return f, nil
}

// Create implements [FS]. O_EXCL fails on a symbolic link at p instead of
// following it, whenever it was planted.
func (Lstat) Create(p Path, perm fs.FileMode) (*os.File, error) {
	if err := lstatDirs(p); err != nil {
		return nil, err
	}
	name := p.String()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		if fi, lerr := os.Lstat(name); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, &LinkError{Path: name}
		}
		return nil, err
	}
	if err := syncDir(filepath.Dir(name)); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// Remove implements [FS].
func (Lstat) Remove(p Path) error {
	if err := lstatDirs(p); err != nil {
		return err
	}
	return os.Remove(p.String())
}

// lstatDirs checks p and that its directories exist and are no links.
func lstatDirs(p Path) error {
	if err := p.Check(); err != nil {
		return err
	}
	for i := range p.Dirs {
		dp := p.DirPath(i + 1)
		ok, err := lstatDir(dp)
		if err != nil {
			return err
		}
		if !ok {
			return &os.PathError{Op: "open", Path: dp, Err: fs.ErrNotExist}
		}
	}
	return nil
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
		return false, &LinkError{Path: p}
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
		return nil, &LinkError{Path: p}
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

package safefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Default is the best [FS] of this platform: [At].
var Default FS = At{}

// At walks the tree one element at a time from an open directory, with
// openat(O_NOFOLLOW) and mkdirat: each element is looked up in the directory
// already opened, and a symbolic link fails the lookup itself rather than
// being followed. So a link swapped in at any moment (after a check, between
// two elements, just before the file is opened) makes the operation fail; it
// can never redirect a write outside the tree. Only the base, which is the
// operator's, is opened by path.
type At struct{}

var _ FS = At{}

const (
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fileFlags = unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
)

// walk opens the directory holding p's file. With create, missing
// directories are created (dirPerm) and synced into their parents; without,
// a missing one gives fd -1 and no error.
func (At) walk(p Path, create bool, dirPerm fs.FileMode) (int, error) {
	if err := p.Check(); err != nil {
		return -1, err
	}
	fd, err := unix.Open(p.Base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) && create {
		if err = os.MkdirAll(p.Base, dirPerm); err == nil {
			fd, err = unix.Open(p.Base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		}
	}
	switch {
	case errors.Is(err, unix.ENOENT) && !create:
		return -1, nil
	case err != nil:
		return -1, &os.PathError{Op: "open", Path: p.Base, Err: err}
	}
	for i, name := range p.Dirs {
		next, err := unix.Openat(fd, name, dirFlags, 0)
		if errors.Is(err, unix.ENOENT) && create {
			err = unix.Mkdirat(fd, name, uint32(dirPerm))
			if err == nil {
				err = unix.Fsync(fd)
			}
			if err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat(fd, name, dirFlags, 0)
			}
		}
		if err != nil {
			err = classify(fd, name, p.DirPath(i+1), err, "a directory")
		}
		_ = unix.Close(fd)
		switch {
		case errors.Is(err, unix.ENOENT) && !create:
			return -1, nil
		case err != nil:
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// classify turns a failed openat of name in dir into an error naming path:
// a symbolic link, or not the kind of file wanted.
func classify(dir int, name, path string, err error, want string) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENXIO) {
		var st unix.Stat_t
		if unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				return &LinkError{Path: path}
			}
			return fmt.Errorf("%s is not %s", path, want)
		}
	}
	return &os.PathError{Op: "open", Path: path, Err: err}
}

// Stat implements [FS].
func (t At) Stat(p Path) (int64, bool, error) {
	dir, err := t.walk(p, false, 0)
	if err != nil || dir < 0 {
		return 0, false, err
	}
	defer unix.Close(dir)
	var st unix.Stat_t
	err = unix.Fstatat(dir, p.Name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return 0, false, nil
	case err != nil:
		return 0, false, &os.PathError{Op: "stat", Path: p.String(), Err: err}
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return 0, false, &LinkError{Path: p.String()}
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return 0, false, fmt.Errorf("%s is not a regular file", p.String())
	}
	return st.Size, true, nil
}

// Open implements [FS]. The file is opened with O_NOFOLLOW (a link at its
// name fails the open, even one swapped in after any check) and O_NONBLOCK (a
// FIFO planted there fails instead of blocking), then checked to be a regular
// file before it is returned.
func (t At) Open(p Path, dirPerm, filePerm fs.FileMode) (*os.File, error) {
	dir, err := t.walk(p, true, dirPerm)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	name := p.String()
	fd, err := unix.Openat(dir, p.Name, fileFlags, 0)
	created := false
	if errors.Is(err, unix.ENOENT) {
		fd, err = unix.Openat(dir, p.Name, fileFlags|unix.O_CREAT|unix.O_EXCL, uint32(filePerm))
		created = err == nil
		if errors.Is(err, unix.EEXIST) { // created meanwhile
			fd, err = unix.Openat(dir, p.Name, fileFlags, 0)
		}
	}
	if err != nil {
		return nil, classify(dir, p.Name, name, err, "a regular file")
	}
	err = regular(fd, name)
	if err == nil && created {
		err = unix.Fsync(dir)
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// regular checks that fd, opened O_NONBLOCK, is a regular file, and makes it
// blocking again.
func regular(fd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", name)
	}
	return unix.SetNonblock(fd, false)
}

// dirOf walks to the existing directory holding p's file.
func (t At) dirOf(p Path, op string) (int, error) {
	dir, err := t.walk(p, false, 0)
	if err == nil && dir < 0 {
		err = &os.PathError{Op: op, Path: p.String(), Err: fs.ErrNotExist}
	}
	return dir, err
}

// OpenRead implements [FS], with O_NOFOLLOW and O_NONBLOCK as [At.Open].
func (t At) OpenRead(p Path) (*os.File, error) {
	dir, err := t.dirOf(p, "open")
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	name := p.String()
	fd, err := unix.Openat(dir, p.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, classify(dir, p.Name, name, err, "a regular file")
	}
	if err := regular(fd, name); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Create implements [FS]. O_EXCL fails on a symbolic link at p instead of
// following it.
func (t At) Create(p Path, perm fs.FileMode) (*os.File, error) {
	dir, err := t.dirOf(p, "create")
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	name := p.String()
	fd, err := unix.Openat(dir, p.Name, fileFlags|unix.O_CREAT|unix.O_EXCL, uint32(perm))
	if err != nil {
		var st unix.Stat_t
		if errors.Is(err, unix.EEXIST) && unix.Fstatat(dir, p.Name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil, &LinkError{Path: name}
		}
		return nil, &os.PathError{Op: "create", Path: name, Err: err}
	}
	if err := unix.Fsync(dir); err != nil {
		_ = unix.Close(fd)
		return nil, &os.PathError{Op: "sync", Path: p.DirPath(len(p.Dirs)), Err: err}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// Remove implements [FS].
func (t At) Remove(p Path) error {
	dir, err := t.dirOf(p, "remove")
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	if err := unix.Unlinkat(dir, p.Name, 0); err != nil {
		return &os.PathError{Op: "remove", Path: p.String(), Err: err}
	}
	return nil
}

// ReadDir implements [FS]. Each entry's type comes from fstatat on the
// directory already opened, without following links.
func (t At) ReadDir(p Path) ([]Entry, error) {
	fd, err := t.walk(p, false, 0)
	if err != nil || fd < 0 {
		return nil, err
	}
	d := os.NewFile(uintptr(fd), p.DirPath(len(p.Dirs))) // owns fd
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(names))
	for _, name := range names {
		var st unix.Stat_t
		err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case errors.Is(err, unix.ENOENT): // removed meanwhile
			continue
		case err != nil:
			return nil, &os.PathError{Op: "stat", Path: p.DirPath(len(p.Dirs)) + string(os.PathSeparator) + name, Err: err}
		}
		out = append(out, Entry{Name: name, Type: fileType(st.Mode)})
	}
	return out, nil
}

// fileType is the fs.ModeType bits of a stat mode.
func fileType(mode uint32) fs.FileMode {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

package guest

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

var defaultTree tree = atTree{}

// atTree walks the tree one element at a time from an open directory, with
// openat(O_NOFOLLOW) and mkdirat: each element is looked up in the directory
// already opened, and a symbolic link fails the lookup itself rather than
// being followed. So a link swapped in at any moment (after a check, between
// two elements, just before the file is opened) makes the operation fail; it
// can never redirect a write outside the tree. Only the base, which is the
// operator's, is opened by path.
type atTree struct{}

var _ tree = atTree{}

const (
	dirFlags  = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fileFlags = unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
)

// walk opens the directory holding l's file. With create, missing
// directories are created and synced into their parents; without, a missing
// one gives fd -1 and no error.
func (atTree) walk(l localFile, create bool) (int, error) {
	if err := l.check(); err != nil {
		return -1, err
	}
	fd, err := unix.Open(l.base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) && create {
		if err = os.MkdirAll(l.base, dirPerm); err == nil {
			fd, err = unix.Open(l.base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		}
	}
	switch {
	case errors.Is(err, unix.ENOENT) && !create:
		return -1, nil
	case err != nil:
		return -1, &os.PathError{Op: "open", Path: l.base, Err: err}
	}
	for i, name := range l.dirs {
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
			err = classify(fd, name, l.dirPath(i+1), err, "a directory")
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
				return &symlinkError{path: path}
			}
			return fmt.Errorf("%s is not %s", path, want)
		}
	}
	return &os.PathError{Op: "open", Path: path, Err: err}
}

func (t atTree) stat(l localFile) (int64, bool, error) {
	dir, err := t.walk(l, false)
	if err != nil || dir < 0 {
		return 0, false, err
	}
	defer unix.Close(dir)
	var st unix.Stat_t
	err = unix.Fstatat(dir, l.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return 0, false, nil
	case err != nil:
		return 0, false, &os.PathError{Op: "stat", Path: l.String(), Err: err}
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return 0, false, &symlinkError{path: l.String()}
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return 0, false, fmt.Errorf("%s is not a regular file", l.String())
	}
	return st.Size, true, nil
}

// open opens the file with O_NOFOLLOW (a link at its name fails the open,
// even one swapped in after any check) and O_NONBLOCK (a FIFO planted there
// fails instead of blocking the collector), then makes sure it is a regular
// file before anything is written.
func (t atTree) open(l localFile) (*os.File, error) {
	dir, err := t.walk(l, true)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	p := l.String()
	fd, err := unix.Openat(dir, l.name, fileFlags, 0)
	created := false
	if errors.Is(err, unix.ENOENT) {
		fd, err = unix.Openat(dir, l.name, fileFlags|unix.O_CREAT|unix.O_EXCL, uint32(filePerm))
		created = err == nil
		if errors.Is(err, unix.EEXIST) { // created meanwhile
			fd, err = unix.Openat(dir, l.name, fileFlags, 0)
		}
	}
	if err != nil {
		return nil, classify(dir, l.name, p, err, "a regular file")
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	switch {
	case err != nil:
		err = &os.PathError{Op: "stat", Path: p, Err: err}
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("%s is not a regular file", p)
	default:
		err = unix.SetNonblock(fd, false)
	}
	if err == nil && created {
		err = unix.Fsync(dir)
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

package logging

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/stratusworks/worker/internal/safefs"
)

// ErrSymlink is matched (errors.Is) by the error of a customer record or
// [CustomerHandler.Rotate] refused because of a symbolic link below
// [Config.Dir]: in place of the customer's directory, of its file, or of one
// of its rotated files. The error names the link; nothing is written,
// renamed or removed through it, and the link is left as it is. The process
// log says so in one WARN line (until the customer's file is usable again)
// and keeps receiving every record. Config.Dir itself may be a link. It is
// the same error as guest.ErrSymlink.
var ErrSymlink = safefs.ErrSymlink

// neverBySize is a lumberjack MaxSize (in megabytes) never reached: the
// handler decides when to rotate, after checking the files.
const neverBySize = math.MaxInt32

// customerFile is one customer's log file. Lumberjack appends to it and
// rotates it; the handler does the rest (see [shared.write] and
// [shared.mill]).
type customerFile struct {
	customer string
	path     safefs.Path        // Config.Dir, the customer's directory, Config.FileName
	log      *lumberjack.Logger // rotates only when told, keeps and compresses nothing

	elem *list.Element // in shared.open; nil when closed (shared.mu)
	refs int           // writers using the file right now (shared.mu)
	// reopen asks release to close the file (Reopen found it busy).
	reopen bool // shared.mu

	mu   sync.Mutex // serialises the file's writes; guards what follows
	open bool       // lumberjack has the file open
	size int64      // bytes in the open file
	// refused is set when a check refused the file because of a link, and
	// the refusal was logged; a check that passes clears it. So a link is
	// warned about once, not once per record.
	refused bool
	// milling is set while a mill of this customer's backups runs; again
	// asks it for one more round.
	milling, again bool
}

// newCustomerFile is the file of a customer whose directory is dir.
func (s *shared) newCustomerFile(customer, dir string) *customerFile {
	return &customerFile{
		customer: customer,
		path:     safefs.Path{Base: filepath.Dir(dir), Dirs: []string{filepath.Base(dir)}, Name: s.cfg.FileName},
		log: &lumberjack.Logger{
			Filename: filepath.Join(dir, s.cfg.FileName),
			MaxSize:  neverBySize,
			// MaxBackups, MaxAge and Compress stay zero: lumberjack's
			// clean-up would run in the background by path, following
			// links; shared.mill does it without.
		},
	}
}

// write appends one record to f, rotating first if it does not fit in
// MaxSizeMB. warn reports an error that the process log is to be told
// about.
//
// Lumberjack opens and renames files by path, following symbolic links. So
// it is asked to only right after [checkFiles] found the customer's
// directory, file and rotated files to be what they seem, in the same
// critical section: the first write after the file was closed opens it, and
// a rotation renames it, only after a check. Lumberjack never rotates by
// itself (see neverBySize).
//
// One window remains: a link swapped in during the few microseconds between
// the check and lumberjack's open or rename is followed. That needs another
// process writing in the customer's directory (created 0o750, this process's
// user's) at that very moment; a link already in place is always refused.
func (s *shared) write(f *customerFile, p []byte) (warn bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, max := int64(len(p)), s.maxSize()
	if n > max {
		return false, fmt.Errorf("record of %d bytes exceeds the maximum file size of %d bytes", n, max)
	}
	opening := !f.open
	if opening || f.size+n > max { // lumberjack is about to open or rename
		size, warn, err := s.checkLocked(f)
		if err != nil {
			return warn, err
		}
		if opening {
			f.size = size
		}
	}
	rotating := f.size+n > max
	if rotating {
		if err := f.log.Rotate(); err != nil {
			_ = f.closeLocked()
			return false, err
		}
		f.size = 0
	}
	f.open = true // lumberjack opens it if it has not
	written, err := f.log.Write(p)
	f.size += int64(written)
	if err != nil {
		_ = f.closeLocked() // and check again before reopening
		return false, err
	}
	if opening || rotating {
		s.startMill(f)
	}
	return false, nil
}

// rotate starts a new file for f, keeping the current one as a backup.
func (s *shared) rotate(f *customerFile) (warn bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, warn, err := s.checkLocked(f); err != nil {
		return warn, err
	}
	if err := f.log.Rotate(); err != nil {
		_ = f.closeLocked()
		return false, err
	}
	f.open, f.size = true, 0
	s.startMill(f)
	return false, nil
}

// close closes the file; the next write checks and reopens it.
func (f *customerFile) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closeLocked()
}

func (f *customerFile) closeLocked() error {
	f.open = false
	return f.log.Close()
}

// checkLocked runs checkFiles on f, tracking refusals for warnings.
func (s *shared) checkLocked(f *customerFile) (size int64, warn bool, err error) {
	size, err = checkFiles(s.fs, f.path)
	switch {
	case err == nil:
		f.refused = false
	case errors.Is(err, ErrSymlink) && !f.refused:
		f.refused, warn = true, true
	}
	return size, warn, err
}

// checkFiles makes sure that what lumberjack opens and renames by path is
// what it seems, without following any link below p.Base: the customer's
// directory is a directory and its file a regular file (both created if
// missing, DirPerm and FilePerm). Its rotated files (see [backupOf]) must be
// regular files too, though lumberjack never opens them and shared.mill
// follows no link: a link planted there is refused as well, so that it is
// reported. It returns the file's size.
func checkFiles(fsys safefs.FS, p safefs.Path) (int64, error) {
	file, err := fsys.Open(p, DirPerm, FilePerm)
	if err != nil {
		return 0, err
	}
	fi, err := file.Stat()
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	entries, err := fsys.ReadDir(p)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if _, ok := backupOf(p.Name, e.Name); !ok || e.Type.IsDir() {
			continue
		}
		name := filepath.Join(p.DirPath(len(p.Dirs)), e.Name)
		switch {
		case e.Type&fs.ModeSymlink != 0:
			return 0, &safefs.LinkError{Path: name}
		case !e.Type.IsRegular():
			return 0, fmt.Errorf("%s is not a regular file", name)
		}
	}
	return fi.Size(), nil
}

package km

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// maxSymlinkHops bounds the symbolic links followed while checking a path,
// as the kernel does (ELOOP).
const maxSymlinkHops = 40

// checkSecurePath applies the rules of OpenSSH's StrictModes to a file that
// holds key material (what, e.g. "key file"): walking from / to the file,
// every directory and every symbolic link on the way, and the file itself,
// must be owned by the effective user or by root, and no directory may be
// writable by group or other users. One exception: a directory with the
// sticky bit set, such as /tmp, is accepted above the directory that holds
// the file (or the last symbolic link to it), because others cannot rename or
// remove the entries in it that they do not own, and the owner of each entry
// on the way is checked. The file's mode is checked by the caller. Errors match
// [ErrInsecureKeyFile] and say what to fix; they never contain file contents.
//
// Nothing is checked on Windows, whose permissions are not modes and owners.
func checkSecurePath(what, path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("km: %s %s: %w", what, path, err)
	}
	euid := os.Geteuid()
	checkOwner := func(p string, fi fs.FileInfo, kind string) error {
		uid, ok := fileOwner(fi)
		if ok && uid != 0 && uid != euid {
			return errorf(ErrInsecureKeyFile,
				"%s %s: %s %s is owned by uid %d, not by this process's user (uid %d) or root: another user could replace it; run chown to the service user or root",
				what, path, kind, p, uid, euid)
		}
		return nil
	}
	if err := checkDir(what, path, "/", len(splitPath(abs)) == 1, checkOwner); err != nil {
		return err
	}
	cur := "/"
	rest := splitPath(abs)
	for hops := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return fmt.Errorf("km: %s %s: %w", what, path, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if hops++; hops > maxSymlinkHops {
				return errorf(ErrInsecureKeyFile, "%s %s: too many symbolic links", what, path)
			}
			if err := checkOwner(next, fi, "symbolic link"); err != nil {
				return err
			}
			target, err := os.Readlink(next)
			if err != nil {
				return fmt.Errorf("km: %s %s: %w", what, path, err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(splitPath(target), rest...)
			continue
		}
		if len(rest) == 0 { // the file itself
			return checkOwner(next, fi, "file")
		}
		if !fi.IsDir() {
			return fmt.Errorf("km: %s %s: %s is not a directory", what, path, next)
		}
		// The directory holding the file must not be writable by others even
		// with the sticky bit: it is where a planted file would appear.
		if err := checkDir(what, path, next, len(rest) == 1, checkOwner); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

func checkDir(what, path, dir string, strict bool, checkOwner func(string, fs.FileInfo, string) error) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("km: %s %s: %w", what, path, err)
	}
	if err := checkOwner(dir, fi, "directory"); err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 || (!strict && fi.Mode()&fs.ModeSticky != 0) {
		return nil
	}
	return errorf(ErrInsecureKeyFile,
		"%s %s: directory %s has mode %04o, writable by group or other users, who could replace or plant key files in it; run chmod go-w %s",
		what, path, dir, uint32(perm), dir)
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

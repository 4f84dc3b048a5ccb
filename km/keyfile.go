package km

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
)

// MaxKeyFileSize bounds what [LoadKeyFile] reads.
const MaxKeyFileSize = 1 << 20

// LoadKeyFile reads master keys from a file, one per line:
//
//	# comment; blank lines are ignored
//	id:version:key
//	prod:1:8f0c…   (64 hex digits)
//	prod:2:jK3w…=  (standard or URL-safe base64 of 32 bytes, padded or not)
//
// The current key is the one with the highest version (see [Keyring]).
//
// The file must be a regular file readable only by its owner, in a place no
// other user can change, as OpenSSH's StrictModes requires of its key files.
// LoadKeyFile refuses, with [ErrInsecureKeyFile] and a message saying what to
// fix:
//   - a file whose mode grants any access to group or other (mode & 0o077 != 0);
//   - a file not owned by the effective user or root;
//   - a file below a directory, on the way from /, that is writable by group
//     or other users, or owned by another user (a sticky directory such as
//     /tmp is accepted above the file's own directory); symbolic links on the
//     way are followed, and each must be owned by the effective user or root.
//
// Errors about malformed lines give the path and line number but never any
// text of the line. The file's bytes are zeroed after parsing. (Permissions
// are not checked on Windows.)
//
// LoadKeyFile logs (Info, to [log/slog]'s default logger, never key material)
// the path, the number of keys and the current key, so that a key that
// appears in the file shows in the log as a change of the current key; see
// also [Keyring.SetLogger].
func LoadKeyFile(path string) (*Keyring, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, errorf(ErrInsecureKeyFile, "key file %s is not a regular file (mode %s)", path, fi.Mode())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("km: key file: %w", err)
	}
	defer f.Close()
	if err := checkKeyFile(path, f); err != nil {
		return nil, err
	}
	if err := checkSecurePath("key file", path); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, 4096)
	defer func() { clear(buf[:cap(buf)]) }()
	for {
		if len(buf) == cap(buf) {
			if len(buf) > MaxKeyFileSize {
				return nil, invalidf("key file %s is larger than %d bytes", path, MaxKeyFileSize)
			}
			grown := make([]byte, len(buf), 2*cap(buf))
			copy(grown, buf)
			clear(buf[:cap(buf)])
			buf = grown
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("km: key file %s: %w", path, err)
		}
	}
	keys, err := parseKeyLines(buf, "key file "+path)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, k := range keys {
			k.Key.Destroy()
		}
	}()
	if len(keys) == 0 {
		return nil, invalidf("key file %s holds no keys (expected lines id:version:key)", path)
	}
	kr, err := NewKeyring(keys...)
	if err != nil {
		return nil, fmt.Errorf("km: key file %s: %w", path, err)
	}
	cur := kr.Current()
	kr.logger().Info("km: master keys loaded", "path", path, "keys", len(keys),
		"current_key_id", cur.ID, "current_key_version", cur.Version)
	return kr, nil
}

func checkKeyFile(path string, f *os.File) error {
	fi, err := f.Stat() // the file actually opened, after following symlinks
	if err != nil {
		return fmt.Errorf("km: key file: %w", err)
	}
	target := path
	if li, err := os.Lstat(path); err == nil && li.Mode()&os.ModeSymlink != 0 {
		if real, err := filepath.EvalSymlinks(path); err == nil {
			target = real
		}
	}
	desc := path
	if target != path {
		desc = fmt.Sprintf("%s (a symlink to %s)", path, target)
	}
	if !fi.Mode().IsRegular() {
		return errorf(ErrInsecureKeyFile, "key file %s is not a regular file (mode %s)", desc, fi.Mode())
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if uid, ok := fileOwner(fi); ok && uid != 0 && uid != os.Geteuid() {
		return errorf(ErrInsecureKeyFile,
			"key file %s is owned by uid %d, not by this process's user (uid %d) or root: another user could have planted or could change it; run chown to the service user or root",
			desc, uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return errorf(ErrInsecureKeyFile,
			"key file %s has mode %04o, which gives group or other users access; master key files must be accessible by their owner only: run chmod 600 %s",
			desc, uint32(perm), target)
	}
	return nil
}

// KeyFromEnv reads one master key, in the form id:version:key of
// [LoadKeyFile], from the environment variable name. It does not unset the
// variable. Errors name the variable, never its value.
func KeyFromEnv(name string) (MasterKey, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return MasterKey{}, invalidf("environment variable %s is not set (expected id:version:key)", name)
	}
	b := []byte(v)
	defer clear(b)
	mk, err := parseKeyLine(bytes.TrimSpace(b))
	if err != nil {
		return MasterKey{}, invalidf("environment variable %s: %v", name, err)
	}
	return mk, nil
}

// ParseMasterKey parses one key in the form id:version:key of [LoadKeyFile].
// The caller may zero text afterwards. Errors never quote text.
func ParseMasterKey(text []byte) (MasterKey, error) {
	mk, err := parseKeyLine(bytes.TrimSpace(text))
	if err != nil {
		return MasterKey{}, invalidf("master key: %v", err)
	}
	return mk, nil
}

func parseKeyLines(data []byte, source string) ([]MasterKey, error) {
	var keys []MasterKey
	seen := map[KeyRef]int{}
	fail := func(err error) ([]MasterKey, error) {
		for _, k := range keys {
			k.Key.Destroy()
		}
		return nil, err
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		mk, err := parseKeyLine(line)
		if err != nil {
			return fail(invalidf("%s line %d: %v", source, i+1, err))
		}
		ref := KeyRef{ID: mk.ID, Version: mk.Version}
		if prev, dup := seen[ref]; dup {
			mk.Key.Destroy()
			return fail(invalidf("%s line %d: master key %s is already defined on line %d", source, i+1, ref, prev))
		}
		seen[ref] = i + 1
		keys = append(keys, mk)
	}
	return keys, nil
}

// parseKeyLine's errors never include any of the line's text.
func parseKeyLine(line []byte) (MasterKey, error) {
	parts := bytes.SplitN(line, []byte(":"), 3)
	if len(parts) != 3 {
		return MasterKey{}, fmt.Errorf("expected id:version:key, found %d colon-separated field(s)", len(parts))
	}
	id := string(bytes.TrimSpace(parts[0]))
	if !keyIDPattern.MatchString(id) {
		return MasterKey{}, fmt.Errorf("key id must match %s", keyIDPattern)
	}
	ver, err := strconv.ParseUint(string(bytes.TrimSpace(parts[1])), 10, 32)
	if err != nil || ver == 0 {
		return MasterKey{}, fmt.Errorf("version must be an integer in 1…%d", uint32(math.MaxUint32))
	}
	key, ok := decodeKey(bytes.TrimSpace(parts[2]))
	if !ok {
		return MasterKey{}, fmt.Errorf("key must be %d bytes encoded as %d hex digits or as base64", keySize, 2*keySize)
	}
	return MasterKey{ID: id, Version: int(ver), Key: adoptSecret(key)}, nil
}

// decodeKey decodes 32 bytes of hex or base64; on failure it zeroes what it
// decoded.
func decodeKey(text []byte) ([]byte, bool) {
	dst := make([]byte, 64)
	if len(text) == 2*keySize {
		if n, err := hex.Decode(dst, text); err == nil && n == keySize {
			clear(dst[keySize:])
			return dst[:keySize:keySize], true
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if enc.DecodedLen(len(text)) > len(dst) {
			continue
		}
		if n, err := enc.Decode(dst, text); err == nil && n == keySize {
			clear(dst[keySize:])
			return dst[:keySize:keySize], true
		}
	}
	clear(dst)
	return nil, false
}

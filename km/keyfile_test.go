package km_test

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/km"
)

var (
	hexKey1 = hex.EncodeToString(keyBytes(0x11))
	b64Key2 = base64.StdEncoding.EncodeToString(keyBytes(0x22))
)

func writeKeyFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.keys")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	require.NoError(t, os.Chmod(path, mode)) // not subject to umask
	return path
}

func TestLoadKeyFilePermissions(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not checked on Windows")
	}
	content := "prod:1:" + hexKey1 + "\n"
	cases := []struct {
		name string
		mode os.FileMode
		ok   bool
	}{
		{"Mode0600", 0o600, true},
		{"Mode0400", 0o400, true},
		{"Mode0640", 0o640, false},
		{"Mode0604", 0o604, false},
		{"Mode0644", 0o644, false},
		{"Mode0660", 0o660, false},
		{"Mode0601", 0o601, false},
		{"Mode0610", 0o610, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeKeyFile(t, content, tc.mode)
			kr, err := km.LoadKeyFile(path)
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, km.KeyRef{ID: "prod", Version: 1}, kr.Current())
				require.NoError(t, kr.Close())
				return
			}
			require.ErrorIs(t, err, km.ErrInsecureKeyFile)
			require.Nil(t, kr)
			msg := err.Error()
			require.Contains(t, msg, path)
			require.Contains(t, msg, fmt.Sprintf("%04o", uint32(tc.mode)))
			require.Contains(t, msg, "chmod 600 "+path)
			require.NotContains(t, msg, hexKey1)
		})
	}
}

func TestLoadKeyFileSymlinks(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not checked on Windows")
	}
	content := "prod:1:" + hexKey1 + "\n"
	t.Run("ToPrivateFile", func(t *testing.T) {
		t.Parallel()
		target := writeKeyFile(t, content, 0o600)
		link := filepath.Join(t.TempDir(), "link.keys")
		require.NoError(t, os.Symlink(target, link))
		kr, err := km.LoadKeyFile(link)
		require.NoError(t, err)
		require.NoError(t, kr.Close())
	})
	t.Run("ToReadableFile", func(t *testing.T) {
		t.Parallel()
		target := writeKeyFile(t, content, 0o644)
		link := filepath.Join(t.TempDir(), "link.keys")
		require.NoError(t, os.Symlink(target, link))
		_, err := km.LoadKeyFile(link)
		require.ErrorIs(t, err, km.ErrInsecureKeyFile)
		require.Contains(t, err.Error(), link)
		require.Contains(t, err.Error(), "0644")
		real, _ := filepath.EvalSymlinks(target)
		require.Contains(t, err.Error(), "chmod 600 "+real)
	})
	t.Run("Directory", func(t *testing.T) {
		t.Parallel()
		_, err := km.LoadKeyFile(t.TempDir())
		require.ErrorIs(t, err, km.ErrInsecureKeyFile)
		require.Contains(t, err.Error(), "not a regular file")
	})
	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		_, err := km.LoadKeyFile(filepath.Join(t.TempDir(), "nope"))
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}

func TestLoadKeyFileFormat(t *testing.T) {
	t.Parallel()
	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		content := strings.Join([]string{
			"# master keys",
			"",
			"  prod:1:" + hexKey1 + "  ",
			"prod:2:" + b64Key2 + "\r",
			"prod:3:" + base64.RawURLEncoding.EncodeToString(keyBytes(0x33)),
		}, "\n")
		kr, err := km.LoadKeyFile(writeKeyFile(t, content, 0o600))
		require.NoError(t, err)
		t.Cleanup(func() { _ = kr.Close() })
		require.Equal(t, []km.KeyRef{{"prod", 1}, {"prod", 2}, {"prod", 3}}, kr.Keys())
		require.Equal(t, km.KeyRef{ID: "prod", Version: 3}, kr.Current())

		// Keys loaded from the file are the bytes written there.
		ref := newKeyring(t, masterKey("prod", 2, 0x22))
		env, err := ref.Seal(testBinding, []byte("x"))
		require.NoError(t, err)
		_, err = kr.Open(testBinding, env)
		require.NoError(t, err)
	})

	secretish := "deadbeefcafe" + strings.Repeat("7", 40)
	cases := []struct {
		name    string
		content string
		line    int
		msg     string
	}{
		{"NoColons", "# c\n" + hexKey1, 2, "expected id:version:key"},
		{"TwoFields", "prod:" + hexKey1, 1, "expected id:version:key"},
		{"BadID", "pr od:1:" + hexKey1, 1, "key id"},
		{"BadVersion", "prod:one:" + hexKey1, 1, "version"},
		{"ZeroVersion", "prod:0:" + hexKey1, 1, "version"},
		{"ShortHexKey", "prod:1:" + hexKey1[:62], 1, "32 bytes"},
		{"LongKey", "prod:1:" + hexKey1 + "00", 1, "32 bytes"},
		{"NotEncoded", "prod:1:" + secretish + "!!", 1, "32 bytes"},
		{"Duplicate", "prod:1:" + hexKey1 + "\nprod:1:" + b64Key2, 2, "already defined on line 1"},
		{"SameVersionTwoIDs", "a:1:" + hexKey1 + "\nb:1:" + b64Key2, 0, "already held"},
		{"Empty", "# nothing\n\n", 0, "holds no keys"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeKeyFile(t, tc.content, 0o600)
			_, err := km.LoadKeyFile(path)
			require.ErrorIs(t, err, km.ErrInvalid)
			msg := err.Error()
			require.Contains(t, msg, path)
			require.Contains(t, msg, tc.msg)
			if tc.line > 0 {
				require.Contains(t, msg, fmt.Sprintf("line %d:", tc.line))
			}
			for _, k := range []string{hexKey1, hexKey1[:20], b64Key2, b64Key2[:20], secretish} {
				require.NotContains(t, msg, k, "error quotes key text")
			}
		})
	}
}

func TestKeyFromEnv(t *testing.T) {
	// t.Setenv forbids t.Parallel; each variable name is unique anyway.
	t.Run("Valid", func(t *testing.T) {
		t.Setenv("KM_TEST_KEY_VALID", "env:7:"+b64Key2)
		mk, err := km.KeyFromEnv("KM_TEST_KEY_VALID")
		require.NoError(t, err)
		require.Equal(t, "env", mk.ID)
		require.Equal(t, 7, mk.Version)
		require.Equal(t, keyBytes(0x22), mk.Key.Reveal())
		require.Equal(t, km.Redacted, fmt.Sprint(mk.Key))
		require.NotContains(t, fmt.Sprintf("%+v", mk), b64Key2)
	})
	t.Run("Unset", func(t *testing.T) {
		_, err := km.KeyFromEnv("KM_TEST_KEY_SURELY_UNSET")
		require.ErrorIs(t, err, km.ErrInvalid)
		require.Contains(t, err.Error(), "KM_TEST_KEY_SURELY_UNSET is not set")
	})
	t.Run("Malformed", func(t *testing.T) {
		t.Setenv("KM_TEST_KEY_BAD", "env:7:"+hexKey1[:50])
		_, err := km.KeyFromEnv("KM_TEST_KEY_BAD")
		require.ErrorIs(t, err, km.ErrInvalid)
		require.Contains(t, err.Error(), "KM_TEST_KEY_BAD")
		require.NotContains(t, err.Error(), hexKey1[:50])
	})
	t.Run("BareKeyRefused", func(t *testing.T) {
		t.Setenv("KM_TEST_KEY_BARE", hexKey1)
		_, err := km.KeyFromEnv("KM_TEST_KEY_BARE")
		require.ErrorIs(t, err, km.ErrInvalid)
		require.NotContains(t, err.Error(), hexKey1)
	})
}

func TestParseMasterKey(t *testing.T) {
	t.Parallel()
	mk, err := km.ParseMasterKey([]byte(" prod:3:" + hexKey1 + "\n"))
	require.NoError(t, err)
	require.Equal(t, 3, mk.Version)
	_, err = km.ParseMasterKey([]byte("prod:3"))
	require.ErrorIs(t, err, km.ErrInvalid)
}

// nobody is the uid the ownership attacks chown to.
const nobody = 65534

// TestLoadKeyFilePlanted is the attack of issue 18 (point 4): a key file an
// attacker could have planted or replaced (in a directory others can write,
// or owned by another user) is refused with a message naming what to fix.
func TestLoadKeyFilePlanted(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("owners and modes are not checked on Windows")
	}
	content := "prod:1:" + hexKey1 + "\n"
	// layout makes base/a/b/master.keys (0600) with a and b 0700, then lets
	// the case change it; it returns the path to load.
	layout := func(t *testing.T, change func(t *testing.T, base, a, b, file string) string) string {
		base := t.TempDir()
		a := filepath.Join(base, "a")
		b := filepath.Join(a, "b")
		require.NoError(t, os.MkdirAll(b, 0o700))
		file := filepath.Join(b, "master.keys")
		require.NoError(t, os.WriteFile(file, []byte(content), 0o600))
		if change == nil {
			return file
		}
		return change(t, base, a, b, file)
	}
	chmod := func(t *testing.T, p string, mode os.FileMode) {
		require.NoError(t, os.Chmod(p, mode))
	}
	chown := func(t *testing.T, p string) {
		if os.Geteuid() != 0 {
			t.Skip("chown to another user needs root")
		}
		require.NoError(t, os.Lchown(p, nobody, nobody))
	}
	cases := []struct {
		name   string
		change func(t *testing.T, base, a, b, file string) string
		want   []string // in the message; "" = accepted
	}{
		{"Private", nil, nil},
		{"WorldWritableDirectory", func(t *testing.T, _, _, b, file string) string {
			chmod(t, b, 0o777)
			return file
		}, []string{"directory", "0777", "chmod go-w"}},
		{"StickyWorldWritableDirectoryHoldingTheFile", func(t *testing.T, _, _, b, file string) string {
			chmod(t, b, 0o777|os.ModeSticky)
			return file
		}, []string{"directory", "0777", "chmod go-w"}},
		{"GroupWritableAncestor", func(t *testing.T, _, a, _, file string) string {
			chmod(t, a, 0o770)
			return file
		}, []string{"directory", "0770", "chmod go-w"}},
		{"StickyAncestorIsFine", func(t *testing.T, _, a, _, file string) string {
			chmod(t, a, 0o777|os.ModeSticky)
			return file
		}, nil},
		{"FileOwnedByAnotherUser", func(t *testing.T, _, _, _, file string) string {
			chown(t, file)
			return file
		}, []string{"owned by uid 65534", "chown"}},
		{"DirectoryOwnedByAnotherUser", func(t *testing.T, _, _, b, file string) string {
			chown(t, b)
			return file
		}, []string{"directory", "owned by uid 65534"}},
		{"SymlinkOwnedByAnotherUser", func(t *testing.T, base, _, _, file string) string {
			link := filepath.Join(base, "link.keys")
			require.NoError(t, os.Symlink(file, link))
			chown(t, link)
			return link
		}, []string{"symbolic link", "owned by uid 65534"}},
		{"SymlinkIntoWorldWritableDirectory", func(t *testing.T, base, _, b, file string) string {
			link := filepath.Join(base, "link.keys")
			require.NoError(t, os.Symlink(file, link))
			chmod(t, b, 0o777)
			return link
		}, []string{"0777", "chmod go-w"}},
		{"RelativeSymlinkToPrivateFile", func(t *testing.T, base, _, _, _ string) string {
			link := filepath.Join(base, "link.keys")
			require.NoError(t, os.Symlink("a/b/master.keys", link))
			return link
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := layout(t, tc.change)
			kr, err := km.LoadKeyFile(path)
			if tc.want == nil {
				require.NoError(t, err)
				require.NoError(t, kr.Close())
				return
			}
			require.ErrorIs(t, err, km.ErrInsecureKeyFile)
			require.Nil(t, kr)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.Contains(t, err.Error(), path)
			require.NotContains(t, err.Error(), hexKey1)
		})
	}
}

// TestCurrentKeyChangeIsLogged: a key added to the file (or the keyring)
// shows in the log as the current key, by id and version, without key
// material. Not parallel: it swaps log/slog's default logger.
func TestCurrentKeyChangeIsLogged(t *testing.T) {
	var buf syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	kr, err := km.LoadKeyFile(writeKeyFile(t, "prod:1:"+hexKey1+"\nprod:7:"+b64Key2+"\n", 0o600))
	require.NoError(t, err)
	t.Cleanup(func() { _ = kr.Close() })
	require.Contains(t, buf.String(), `"msg":"km: master keys loaded"`)
	require.Contains(t, buf.String(), `"keys":2,"current_key_id":"prod","current_key_version":7`)

	var own syncBuffer
	kr.SetLogger(slog.New(slog.NewJSONHandler(&own, nil)))
	require.NoError(t, kr.Add(masterKey("prod", 3, 0x33)))
	require.Empty(t, own.String(), "an older version does not change the current key")
	require.NoError(t, kr.Add(masterKey("next", 8, 0x44)))
	require.Contains(t, own.String(), `"msg":"km: current master key changed","previous_key_id":"prod","previous_key_version":7,"current_key_id":"next","current_key_version":8`)
	for _, text := range []string{buf.String(), own.String()} {
		requireNoLeak(t, text, string(keyBytes(0x22)), "log")
		requireNoLeak(t, text, string(keyBytes(0x44)), "log")
		require.NotContains(t, text, hexKey1)
		require.NotContains(t, text, b64Key2)
	}
}

package km_test

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
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

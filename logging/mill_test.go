package logging

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// backupAt is the name lumberjack gives a backup of worker.log made at t.
func backupAt(t time.Time) string {
	return "worker-" + t.UTC().Format(backupTimeFormat) + ".log"
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	b, err := io.ReadAll(zr)
	require.NoError(t, err)
	return string(b)
}

// Retention and compression of rotated files work as lumberjack's did: the
// newest MaxBackups are kept (a file and its compressed copy count once),
// older than MaxAgeDays are removed, and with Compress the rest are gzipped.
// They run when the file is opened and after each rotation; Close waits.
func TestRetentionAndCompression(t *testing.T) {
	t.Parallel()
	now := time.Now()
	b1, b2, b3, b4 := backupAt(now.Add(-1*time.Hour)), backupAt(now.Add(-2*time.Hour)), backupAt(now.Add(-3*time.Hour)), backupAt(now.Add(-4*time.Hour))
	old := backupAt(now.Add(-31 * 24 * time.Hour))
	for _, tf := range filesystems {
		for _, tc := range []struct {
			name    string
			cfg     Config
			planted map[string]string // rotated files and their content
			want    []string          // rotated files left
		}{
			{"Defaults", Config{}, map[string]string{b1: b1, b2: b2, old: old}, []string{b1, b2}},
			// Two, to see the third newest go; b3 and its .gz count as one.
			{"MaxBackups", Config{MaxBackups: 2}, map[string]string{b1: b1, b2: b2, b3: b3, b3 + ".gz": "", b4: b4}, []string{b1, b2}},
			// Negative retention keeps everything.
			{"Unlimited", Config{MaxBackups: -1, MaxAgeDays: -1}, map[string]string{b1: b1, b2: b2, old: old}, []string{b1, b2, old}},
			// Compress gzips what is kept; b1.gz was left half-done and is replaced.
			{"Compress", Config{Compress: true}, map[string]string{b1: b1, b1 + ".gz": "half-done", b2 + ".gz": gzipped(t, b2), old: old},
				[]string{b1 + ".gz", b2 + ".gz"}},
		} {
			t.Run(tf.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				s := newSetupOn(t, tc.cfg, tf.fs)
				dir, err := s.h.CustomerDir("acme")
				require.NoError(t, err)
				require.NoError(t, os.MkdirAll(dir, 0o750))
				for name, content := range tc.planted {
					require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640))
				}
				require.NoError(t, s.handle(t, "acme", "opens the file"))
				require.NoError(t, s.h.Close())
				require.Equal(t, sorted(append(tc.want, "worker.log")), dirNames(t, dir))
				if tc.cfg.Compress {
					for _, b := range []string{b1, b2} {
						require.Equal(t, b, gunzip(t, filepath.Join(dir, b+".gz")))
					}
					fi, err := os.Stat(filepath.Join(dir, b1+".gz"))
					require.NoError(t, err)
					require.Zero(t, fi.Mode().Perm()&^FilePerm)
				}
				require.Empty(t, s.warnings(t))
			})
		}
	}
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.String()
}

// The names the handler parses are those lumberjack gives: rotating three
// times keeps MaxBackups of them, the newest.
func TestRetentionOfLumberjackBackups(t *testing.T) {
	t.Parallel()
	s := newSetup(t, Config{MaxBackups: 1}) // one backup, to see the others go
	for _, msg := range []string{"one", "two", "three"} {
		require.NoError(t, s.handle(t, "acme", msg))
		require.NoError(t, s.h.Rotate("acme"))
		time.Sleep(2 * time.Millisecond) // backup names have millisecond precision
	}
	require.NoError(t, s.h.Close())
	dir, err := s.h.CustomerDir("acme")
	require.NoError(t, err)
	names := dirNames(t, dir)
	require.Len(t, names, 2, "worker.log and one backup: %v", names)
	_, ok := backupOf(DefaultFileName, names[0])
	require.True(t, ok, names[0])
	require.Equal(t, "three", readLines(t, filepath.Join(dir, names[0]))[0]["msg"])
}

// Retention follows no link: one found in place of a rotated file, or of
// its compressed copy, is left alone, and nothing outside the tree is read or
// written. (The next open or rotation refuses it: TestPlantedLinksAreNotFollowed.)
func TestMillLeavesLinksAlone(t *testing.T) {
	t.Parallel()
	for _, tf := range filesystems {
		t.Run(tf.name, func(t *testing.T) {
			t.Parallel()
			// Compress reads rotated files and writes their copies.
			s := newSetupOn(t, Config{Compress: true}, tf.fs)
			require.NoError(t, s.handle(t, "acme", "x"))
			require.NoError(t, s.h.Close()) // no mill under way: the one below is the test's
			dir, err := s.h.CustomerDir("acme")
			require.NoError(t, err)
			out := newOutsideTarget(t, "file")
			recent := backupAt(time.Now().Add(-time.Hour))
			require.NoError(t, os.WriteFile(filepath.Join(dir, recent), []byte("real\n"), 0o640))
			require.NoError(t, os.Symlink(out.path, filepath.Join(dir, recent+".gz")))
			tooOld := backupAt(time.Now().Add(-40 * 24 * time.Hour))
			require.NoError(t, os.Symlink(out.path, filepath.Join(dir, tooOld)))
			toCompress := backupAt(time.Now().Add(-2 * time.Hour))
			require.NoError(t, os.Symlink(out.path, filepath.Join(dir, toCompress)))

			s.h.st.mu.Lock()
			f := s.h.st.files["acme"]
			s.h.st.mu.Unlock()
			err = s.h.st.mill(f)
			require.ErrorIs(t, err, ErrSymlink, "the copy of %s cannot be created over a link", recent)
			require.ErrorContains(t, err, filepath.Join(dir, recent+".gz")+" is a symbolic link")
			out.requireUnchanged(t)
			require.Equal(t, sorted([]string{recent, recent + ".gz", toCompress, tooOld, "worker.log"}), dirNames(t, dir))
			b, err := os.ReadFile(filepath.Join(dir, recent))
			require.NoError(t, err)
			require.Equal(t, "real\n", string(b), "left uncompressed")
		})
	}
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

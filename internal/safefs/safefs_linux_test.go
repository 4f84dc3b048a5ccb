package safefs

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestReadDirReportsAFIFO(t *testing.T) {
	t.Parallel()
	for _, tf := range filesystems {
		t.Run(tf.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			require.NoError(t, unix.Mkfifo(filepath.Join(base, "fifo"), 0o600))
			entries, err := tf.fs.ReadDir(Path{Base: base, Name: "worker.log"})
			require.NoError(t, err)
			require.Equal(t, []Entry{{"fifo", fs.ModeNamedPipe}}, entries)

			_, err = tf.fs.Open(Path{Base: base, Name: "fifo"}, 0o750, 0o640)
			require.EqualError(t, err, filepath.Join(base, "fifo")+" is not a regular file")
			_, statErr := os.Lstat(filepath.Join(base, "fifo"))
			require.NoError(t, statErr)
		})
	}
}

func TestOpenReadRefusesAFIFO(t *testing.T) {
	t.Parallel()
	for _, tf := range filesystems {
		t.Run(tf.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			require.NoError(t, unix.Mkfifo(filepath.Join(base, "fifo"), 0o600))
			_, err := tf.fs.OpenRead(Path{Base: base, Name: "fifo"})
			require.EqualError(t, err, filepath.Join(base, "fifo")+" is not a regular file")
		})
	}
}

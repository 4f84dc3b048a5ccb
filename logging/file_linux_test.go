package logging

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A FIFO planted as the customer's file or as a backup refuses the record
// instead of blocking the logger on open, and names the FIFO. It is not a
// link, so no WARN: like any other failure, the caller gets the error.
func TestPlantedFIFOIsRefused(t *testing.T) {
	t.Parallel()
	for _, tf := range filesystems {
		for _, tc := range []struct{ name, fifo string }{
			{"LogFile", "acme/worker.log"},
			{"Backup", "acme/" + backupName},
		} {
			t.Run(tf.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				s := newSetupOn(t, Config{}, tf.fs)
				fifo := filepath.Join(s.dir, filepath.FromSlash(tc.fifo))
				require.NoError(t, os.MkdirAll(filepath.Dir(fifo), 0o700))
				require.NoError(t, unix.Mkfifo(fifo, 0o600))

				done := make(chan error, 1)
				go func() { done <- s.handle(t, "acme", "x") }()
				select {
				case err := <-done:
					require.ErrorContains(t, err, `logging: customer "acme": `+fifo+" is not a regular file")
					require.NotErrorIs(t, err, ErrSymlink)
				case <-time.After(10 * time.Second):
					t.Fatal("the record blocked on the FIFO")
				}
				fi, err := os.Lstat(fifo)
				require.NoError(t, err)
				require.NotZero(t, fi.Mode()&os.ModeNamedPipe, "the FIFO is left as it is")
				require.Empty(t, s.warnings(t))
				require.Len(t, s.proc.lines(t), 1)
			})
		}
	}
}

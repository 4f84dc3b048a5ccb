package guest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A FIFO planted as the log file fails the collection instead of blocking it
// forever on open.
func TestLocalTreeRefusesAFIFO(t *testing.T) {
	t.Parallel()
	for _, tr := range trees {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			l := localFile{base: base, dirs: []string{"acme"}, name: "syslog"}
			require.NoError(t, os.Mkdir(filepath.Join(base, "acme"), 0o700))
			require.NoError(t, unix.Mkfifo(l.String(), 0o600))
			_, err := tr.tree.open(l)
			require.ErrorContains(t, err, l.String()+" is not a regular file")
		})
	}
}

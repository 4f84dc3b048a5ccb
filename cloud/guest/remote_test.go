package guest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/internal/sshtest"
)

// logLines returns numbered lines of varied lengths, at least n bytes.
func logLines(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %07d %s\n", i, strings.Repeat("x", i%97))
	}
	return b.String()
}

func TestFloodingGuestIsCutOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		flood sshtest.Flood
		want  string
		// whole: all the log data within the limit arrives. Closing the
		// connection over stderr can cut off log data still buffered.
		whole bool
	}{
		{"Stdout", sshtest.FloodStdout, fmt.Sprintf("guest sent more than the %d bytes of log data asked for; closed the connection", DefaultMaxReadBytes), true},
		{"Stderr", sshtest.FloodStderr, fmt.Sprintf("guest sent more than %d bytes on standard error; closed the connection", MaxStderrBytes), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			healthy := e.addServer(t)
			content := logLines(DefaultMaxReadBytes + 1<<20) // more than one collection reads
			e.srv.Write(t, syslog, content)
			healthy.Write(t, syslog, content)
			e.srv.Flood(syslog, tc.flood)
			// One slot: the healthy guest gets it only once the flooding one
			// has released it.
			c := e.collector(t, func(c *CollectorConfig) { c.Concurrency = 1 })
			bad, good := e.guest("flood"), e.guestAt(healthy, "healthy")

			res := c.Collect(t.Context(), []Guest{bad, good})

			// The healthy guest read as much as the flooding one was sent
			// within the limit: its duration is the time to read the limit.
			require.NoError(t, res[1].Err, "the next guest got the slot")
			readCap := res[1].Duration
			t.Logf("flooding guest: %v; reading %d bytes from a healthy one: %v", res[0].Duration, DefaultMaxReadBytes, readCap)
			require.Less(t, res[0].Duration, 10*readCap+2*time.Second, "cut off once over the limit")
			require.Less(t, res[0].Duration, DefaultTimeout/3, "far from holding the slot for the whole timeout")

			require.ErrorIs(t, res[0].Err, ErrOutputLimit)
			require.ErrorContains(t, res[0].Err, "server flood at "+e.srv.Addr)
			require.ErrorContains(t, res[0].Err, "read "+syslog)
			require.ErrorContains(t, res[0].Err, tc.want)
			require.NotContains(t, res[0].Err.Error(), "exit status")
			require.Len(t, res[0].Files, 1, "the other file waits for the next collection")

			// Only complete lines, and only those within the limit.
			within := string(completeLines([]byte(content[:DefaultMaxReadBytes]), DefaultMaxReadBytes))
			require.Equal(t, within, e.local(t, "healthy", "syslog"), "the healthy guest read as much")
			got := e.local(t, "flood", "syslog")
			require.LessOrEqual(t, len(got), len(within))
			require.Equal(t, within[:len(got)], got)
			if got != "" {
				require.Equal(t, byte('\n'), got[len(got)-1])
			}
			if tc.whole {
				require.Equal(t, len(within), len(got))
			}
			fr := fileResult(t, res[0], syslog)
			require.EqualValues(t, len(got), fr.Bytes)
			require.EqualValues(t, len(content)-len(got), fr.Pending)

			// Once it behaves, the next collection continues from the offset.
			e.srv.Flood(syslog, sshtest.NoFlood)
			collectOne(t, c, bad)
			require.Equal(t, content, e.local(t, "flood", "syslog"))
		})
	}
}

// A guest that floods the reads of a rotated file keeps what it sent within
// the limit, and the offset stays on the rotated file until it is read.
func TestFloodingGuestWhileRotated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.collector(t)
	g := e.guest("srv-1")
	e.srv.Write(t, syslog, "a\n")
	collectOne(t, c, g)

	more := logLines(DefaultMaxReadBytes + 1<<20)
	e.srv.Append(t, syslog, more)
	rotated := syslog + DefaultRotatedSuffix
	require.NoError(t, os.Rename(e.srv.Path(syslog), e.srv.Path(rotated)))
	e.srv.Write(t, syslog, "new\n")
	e.srv.Flood(rotated, sshtest.FloodStdout)

	r := c.Collect(t.Context(), []Guest{g})[0]
	require.ErrorIs(t, r.Err, ErrOutputLimit)
	require.ErrorContains(t, r.Err, "read "+rotated)
	want := "a\n" + string(completeLines([]byte(more[:DefaultMaxReadBytes]), DefaultMaxReadBytes))
	require.Equal(t, want, e.local(t, "srv-1", "syslog"))

	e.srv.Flood(rotated, sshtest.NoFlood)
	r = collectOne(t, c, g)
	require.True(t, fileResult(t, r, syslog).Rotated)
	require.Equal(t, "a\n"+more+"new\n", e.local(t, "srv-1", "syslog"))
	collectOne(t, c, g)
	require.Equal(t, "a\n"+more+"new\n", e.local(t, "srv-1", "syslog"))
}

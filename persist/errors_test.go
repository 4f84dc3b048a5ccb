package persist

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
)

// codedError stands for the sqlite driver's *Error.
type codedError int

func (e codedError) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e codedError) Code() int     { return int(e) }

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want error // ErrUnavailable, ErrInvalid or nil
	}{
		{"BadConn", driver.ErrBadConn, ErrUnavailable},
		{"InvalidConn", fmt.Errorf("x: %w", mysql.ErrInvalidConn), ErrUnavailable},
		{"Refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ErrUnavailable},
		{"Reset", fmt.Errorf("read: %w", syscall.ECONNRESET), ErrUnavailable},
		{"IOTimeout", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), ErrUnavailable},
		{"ReadOnly", &mysql.MySQLError{Number: 1290, Message: "running with --read-only"}, ErrUnavailable},
		{"ReadOnlyMode", &mysql.MySQLError{Number: 1836, Message: "running in read-only mode"}, ErrUnavailable},
		{"TooManyConnections", &mysql.MySQLError{Number: 1040, Message: "Too many connections"}, ErrUnavailable},
		{"UserConnections", &mysql.MySQLError{Number: 1203, Message: "max_user_connections"}, ErrUnavailable},
		{"Shutdown", &mysql.MySQLError{Number: 1053, Message: "Server shutdown in progress"}, ErrUnavailable},
		{"SQLiteReadOnly", codedError(8), ErrUnavailable},
		{"SQLiteReadOnlyExtended", codedError(8 | 3<<8), ErrUnavailable}, // SQLITE_READONLY_ROLLBACK
		{"SQLiteBusy", codedError(5), ErrUnavailable},
		{"SQLiteFull", codedError(13), ErrUnavailable},
		{"Handshake", &unavailableError{msg: "no MySQL server answered"}, ErrUnavailable},
		{"IncorrectString", &mysql.MySQLError{Number: 1366, Message: "Incorrect string value"}, ErrInvalid},
		{"TooLong", &mysql.MySQLError{Number: 1406, Message: "Data too long"}, ErrInvalid},
		{"PacketTooLarge", &mysql.MySQLError{Number: 1153, Message: "Got a packet bigger than 'max_allowed_packet'"}, ErrInvalid},
		{"ClientPacketTooLarge", mysql.ErrPktTooLarge, ErrInvalid},
		{"Duplicate", &mysql.MySQLError{Number: 1062, Message: "Duplicate entry"}, nil},
		{"NoSuchTable", &mysql.MySQLError{Number: 1146, Message: "Table doesn't exist"}, nil},
		{"AccessDenied", &mysql.MySQLError{Number: 1045, Message: "Access denied"}, nil},
		{"SQLiteConstraint", codedError(19), nil},
		{"Canceled", context.Canceled, nil},
		{"Deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), nil},
		{"CanceledWhileLost", errors.Join(mysql.ErrInvalidConn, context.Canceled), nil},
		{"Other", errors.New("boom"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := classify(tt.err)
			require.Equal(t, tt.err.Error(), err.Error(), "the text is unchanged")
			require.ErrorIs(t, err, tt.err, "the cause stays in the chain")
			require.Equal(t, tt.want == ErrUnavailable, errors.Is(err, ErrUnavailable))
			require.Equal(t, tt.want == ErrInvalid, errors.Is(err, ErrInvalid))
		})
	}
	require.NoError(t, classify(nil))
}

// TestRetryUnavailable: retry returns classified errors, does not retry a
// read-only database, and retries a lost connection only when it was lost
// at once.
func TestRetryUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	calls := 0
	err := retry(ctx, func() error { calls++; return &mysql.MySQLError{Number: 1290, Message: "read-only"} })
	require.ErrorIs(t, err, ErrUnavailable)
	require.Equal(t, 1, calls, "read-only is not retried")

	calls = 0
	err = retry(ctx, func() error { calls++; return codedError(8) })
	require.ErrorIs(t, err, ErrUnavailable)
	require.Equal(t, 1, calls, "a read-only SQLite database is not retried")

	calls = 0
	err = retry(ctx, func() error { calls++; return mysql.ErrInvalidConn })
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "gave up after 5 attempts")
	require.Equal(t, maxAttempts, calls, "a connection lost at once is retried")

	calls = 0
	err = retry(ctx, func() error {
		calls++
		time.Sleep(quickFailure + 50*time.Millisecond) // a read timeout, in short
		return mysql.ErrInvalidConn
	})
	require.ErrorIs(t, err, ErrUnavailable)
	require.Equal(t, 1, calls, "a connection lost after a wait is not retried")

	err = retry(ctx, func() error { return &mysql.MySQLError{Number: 1366, Message: "Incorrect string value"} })
	require.ErrorIs(t, err, ErrInvalid)
}

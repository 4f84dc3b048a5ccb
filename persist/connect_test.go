package persist

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeServer listens on a free local port and serves every connection with
// serve until the test ends; it returns host:port.
func fakeServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// silent reads whatever the client sends and never answers.
func silent(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// mysqlPacket frames payload as MySQL protocol packet number seq.
func mysqlPacket(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// mysqlGreeting is a protocol-10 server greeting offering
// mysql_native_password, as a MySQL 5.7 server sends it.
func mysqlGreeting() []byte {
	var p bytes.Buffer
	p.WriteByte(10)
	p.WriteString("5.7.99-fake\x00")
	p.Write([]byte{1, 0, 0, 0})   // connection id
	p.WriteString("abcdefgh\x00") // scramble, part 1, and filler
	caps := uint32(0x0001 | 0x0004 | 0x0008 | 0x0200 | 0x2000 | 0x8000 | 0x80000)
	_ = binary.Write(&p, binary.LittleEndian, uint16(caps))
	p.WriteByte(0x21)           // utf8_general_ci
	p.Write([]byte{0x02, 0x00}) // status: autocommit
	_ = binary.Write(&p, binary.LittleEndian, uint16(caps>>16))
	p.WriteByte(21)                   // scramble length
	p.Write(make([]byte, 10))         // reserved
	p.WriteString("ijklmnopqrst\x00") // scramble, part 2
	p.WriteString("mysql_native_password\x00")
	return mysqlPacket(0, p.Bytes())
}

// readPacket reads one client packet.
func readPacket(c net.Conn) error {
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return err
	}
	_, err := io.CopyN(io.Discard, c, int64(h[0])|int64(h[1])<<8|int64(h[2])<<16)
	return err
}

// greetAndAccept completes a MySQL handshake (any password is accepted),
// then reads and never answers: a server that froze after connecting.
func greetAndAccept(c net.Conn) {
	if _, err := c.Write(mysqlGreeting()); err != nil {
		return
	}
	if readPacket(c) != nil {
		return
	}
	if _, err := c.Write(mysqlPacket(2, []byte{0, 0, 0, 2, 0, 0, 0})); err != nil { // OK
		return
	}
	silent(c)
}

// recordHandler keeps every record logged through it.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// reset forgets the records so far.
func (h *recordHandler) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = nil
}

// above returns the messages logged at level or higher.
func (h *recordHandler) above(level slog.Level) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		if r.Level >= level {
			out = append(out, r.Level.String()+" "+r.Message)
		}
	}
	return out
}

// TestOpenNotMySQL opens MySQL DSNs that point at servers that are not
// MySQL, or not answering: each fails within the connect timeout (the
// default, 5s; the bound asserted is generous, since it is a bound and not a
// timing), names host:port and the timeout, matches ErrUnavailable, keeps
// the password out, and logs nothing above Debug.
func TestOpenNotMySQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		serve func(net.Conn)
	}{
		{name: "Garbage", serve: func(c net.Conn) { // what an AMQP broker says to a stranger
			_, _ = c.Write([]byte("AMQP\x00\x00\x09\x01"))
			silent(c)
		}},
		{name: "HTTP", serve: func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
			_ = c.Close()
		}},
		{name: "HugePacketHeader", serve: func(c net.Conn) { // a 16 MiB packet that never comes
			_, _ = c.Write([]byte{0xff, 0xff, 0xfe, 0})
			silent(c)
		}},
		{name: "NeverAnswers", serve: silent},
		{name: "ClosesAtOnce", serve: func(c net.Conn) { _ = c.Close() }},
		{name: "GreetsThenNeverAuthenticates", serve: func(c net.Conn) {
			_, _ = c.Write(mysqlGreeting())
			silent(c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeServer(t, tt.serve)
			logs := &recordHandler{}
			start := time.Now()
			_, err := Open(context.Background(), Config{
				Provisioning: DBConfig{Driver: MySQL, DSN: "app:Canary-7f3a9@tcp(" + addr + ")/x"},
				Logger:       slog.New(logs),
			})
			elapsed := time.Since(start)
			require.Error(t, err)
			t.Logf("after %s: %v", elapsed.Round(time.Millisecond), err)
			require.Less(t, elapsed, 3*defaultMySQLConnectTimeout)
			require.ErrorIs(t, err, ErrUnavailable)
			require.ErrorContains(t, err, "persist: connect to mysql app@"+addr+"/x: no MySQL server answered at "+addr+" within the 5s connect timeout")
			require.NotContains(t, err.Error(), "Canary-7f3a9")
			require.NotContains(t, err.Error(), "bad connection")
			require.Empty(t, logs.above(slog.LevelInfo))
		})
	}
}

// TestOpenTimeoutFromDSN: the DSN's timeout parameter is the connect timeout.
func TestOpenTimeoutFromDSN(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, silent)
	start := time.Now()
	_, err := Open(context.Background(), Config{
		Provisioning: DBConfig{Driver: MySQL, DSN: "app@tcp(" + addr + ")/x?timeout=1s"},
		Logger:       testLogger(t),
	})
	require.Less(t, time.Since(start), 3*time.Second)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "within the 1s connect timeout")
}

// TestOpenCanceled: the caller's context ends the handshake, and the error is
// the context's.
func TestOpenCanceled(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, silent)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Open(ctx, Config{Provisioning: DBConfig{Driver: MySQL, DSN: "app@tcp(" + addr + ")/x"}, Logger: testLogger(t)})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NotErrorIs(t, err, ErrUnavailable)
}

// TestReadTimeout: a server that completes the handshake and then stops
// answering (a frozen database) fails the first statement within the read
// timeout.
func TestReadTimeout(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, greetAndAccept)
	logs := &recordHandler{}
	start := time.Now()
	_, err := Open(context.Background(), Config{
		Provisioning: DBConfig{Driver: MySQL, DSN: "app:Canary-7f3a9@tcp(" + addr + ")/x",
			ReadTimeout: time.Second}, // the default, 30s, would make the test slow
		Logger: slog.New(logs),
	})
	elapsed := time.Since(start)
	require.Error(t, err)
	t.Logf("after %s: %v", elapsed.Round(time.Millisecond), err)
	require.Less(t, elapsed, 3*time.Second)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "did not answer within the 1s read timeout")
	require.NotContains(t, err.Error(), "Canary-7f3a9")
	require.Empty(t, logs.above(slog.LevelInfo))
}

// TestMySQLConfigTimeouts: the timeouts reach the driver's configuration:
// the DSN's, else the fields', else the defaults.
func TestMySQLConfigTimeouts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		cfg                 DBConfig
		connect, read, writ time.Duration
	}{
		{name: "Defaults", cfg: DBConfig{DSN: "u@tcp(h)/d"}, connect: 5 * time.Second, read: 30 * time.Second, writ: 30 * time.Second},
		{name: "Fields", cfg: DBConfig{DSN: "u@tcp(h)/d", ConnectTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 3 * time.Second},
			connect: time.Second, read: 2 * time.Second, writ: 3 * time.Second},
		{name: "DSN", cfg: DBConfig{DSN: "u@tcp(h)/d?timeout=4s&readTimeout=5s&writeTimeout=6s"},
			connect: 4 * time.Second, read: 5 * time.Second, writ: 6 * time.Second},
		{name: "SameInBoth", cfg: DBConfig{DSN: "u@tcp(h)/d?readTimeout=5s", ReadTimeout: 5 * time.Second},
			connect: 5 * time.Second, read: 5 * time.Second, writ: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.Driver = MySQL
			require.NoError(t, Config{Provisioning: tt.cfg}.Validate())
			mc, err := tt.cfg.mysqlConfig(slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			require.Equal(t, tt.connect, mc.Timeout)
			require.Equal(t, tt.read, mc.ReadTimeout)
			require.Equal(t, tt.writ, mc.WriteTimeout)
			require.True(t, mc.ParseTime)
			require.False(t, mc.ClientFoundRows)
		})
	}
}

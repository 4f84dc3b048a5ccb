package guest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// The only commands run on guests: POSIX sh with coreutils or BusyBox.
//
//	stat:  if [ -e 'P' ]; then stat -L -c '%d:%i %s' -- 'P'; else echo absent; fi
//	read:  tail -c +N -- 'P' | head -c M      (M bytes from offset N-1)

// shellQuote quotes s as one sh word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func statCommand(p string) string {
	q := shellQuote(p)
	return "if [ -e " + q + " ]; then stat -L -c '%d:%i %s' -- " + q + "; else echo absent; fi"
}

func readCommand(p string, offset, n int64) string {
	return "tail -c +" + strconv.FormatInt(offset+1, 10) + " -- " + shellQuote(p) + " | head -c " + strconv.FormatInt(n, 10)
}

// remoteFile is what stat says about a remote file.
type remoteFile struct {
	absent   bool
	identity string // "device:inode"
	size     int64
}

// MaxStderrBytes is the most a guest command may write to its standard
// error; only an excerpt of it ever reaches an error.
const MaxStderrBytes = 4 << 10

// ErrOutputLimit is matched (errors.Is) by the error of a guest that sent
// more than a command may: more log data than it was asked for (it ignored
// head -c), more than a stat prints, or more than [MaxStderrBytes] on
// standard error. The collector closes the guest's connection at once, so
// the guest holds its collection slot no longer; the complete lines read
// within the limit are kept, and the guest's other files wait for the next
// collection.
var ErrOutputLimit = errors.New("guest: output limit exceeded")

// outputLimitError says which limit a guest exceeded.
type outputLimitError struct {
	limit int
	what  string // a format for limit, e.g. "the %d bytes of log data asked for"
}

func (e *outputLimitError) Error() string {
	return "guest sent more than " + fmt.Sprintf(e.what, e.limit) + "; closed the connection"
}

func (e *outputLimitError) Is(target error) bool { return target == ErrOutputLimit }

// limited keeps at most limit bytes. At the first byte beyond it, it calls
// over, which closes the connection, and fails: guests are not trusted to
// honour head -c, or to stop writing to stderr.
type limited struct {
	buf   bytes.Buffer
	limit int
	over  func()
}

func (w *limited) Write(p []byte) (int, error) {
	if room := w.limit - w.buf.Len(); len(p) > room {
		w.buf.Write(p[:room])
		w.over()
		return room, errOverLimit
	}
	return w.buf.Write(p)
}

var errOverLimit = errors.New("output limit exceeded")

// run runs one command in a new session and returns its standard output,
// failing on a non-zero exit with (a quoted excerpt of) its standard error.
// Standard output beyond maxOut bytes (what describes them, a format for
// maxOut), or standard error beyond MaxStderrBytes, closes the client's
// connection at once and fails with an [ErrOutputLimit] error; the output
// read within the limit is returned with it.
func run(client *ssh.Client, cmd string, maxOut int, what string) ([]byte, error) {
	s, err := client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	defer s.Close()
	var once sync.Once
	var limitErr error // set once, by the first stream over its limit
	exceed := func(e *outputLimitError) func() {
		return func() {
			once.Do(func() {
				limitErr = e
				// Closing the session alone would leave Wait waiting for
				// an exit status that such a guest may never send.
				_ = client.Close()
			})
		}
	}
	stdout := &limited{limit: maxOut}
	stdout.over = exceed(&outputLimitError{limit: maxOut, what: what})
	stderr := &limited{limit: MaxStderrBytes}
	stderr.over = exceed(&outputLimitError{limit: MaxStderrBytes, what: "%d bytes on standard error"})
	s.Stdout, s.Stderr = stdout, stderr
	err = s.Run(cmd)
	// Run has waited for both copies: the buffers and limitErr are settled.
	if limitErr != nil {
		return stdout.buf.Bytes(), limitErr
	}
	if err != nil {
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			msg := stderr.buf.String()
			if len(msg) > 200 {
				msg = msg[:200]
			}
			return nil, fmt.Errorf("remote command exited with status %d: %s", exit.ExitStatus(), strconv.Quote(strings.TrimSpace(msg)))
		}
		return nil, err
	}
	return stdout.buf.Bytes(), nil
}

func remoteStat(client *ssh.Client, p string) (remoteFile, error) {
	out, err := run(client, statCommand(p), 128, "the %d bytes of a stat")
	if err != nil {
		return remoteFile{}, fmt.Errorf("stat %s: %w", p, err)
	}
	line := strings.TrimSpace(string(out))
	if line == "absent" {
		return remoteFile{absent: true}, nil
	}
	id, sizeStr, ok := strings.Cut(line, " ")
	dev, ino, ok2 := strings.Cut(id, ":")
	size, err := strconv.ParseInt(sizeStr, 10, 64)
	if !ok || !ok2 || err != nil || size < 0 || !digits(dev) || !digits(ino) {
		return remoteFile{}, fmt.Errorf("stat %s: unexpected output %s", p, strconv.Quote(line))
	}
	return remoteFile{identity: id, size: size}, nil
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// remoteRead returns up to n bytes of p from offset. With an
// [ErrOutputLimit] error it also returns what was read within the limit.
func remoteRead(client *ssh.Client, p string, offset, n int64) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	out, err := run(client, readCommand(p, offset, n), int(n), "the %d bytes of log data asked for")
	if err != nil {
		return out, fmt.Errorf("read %s: %w", p, err)
	}
	return out, nil
}

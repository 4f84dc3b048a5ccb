package guest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

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

// errOutputTooLong is returned when a guest sends more than was asked for.
var errOutputTooLong = errors.New("guest sent more output than requested")

// capped collects at most limit bytes and fails beyond: guests are not
// trusted to honour head -c.
type capped struct {
	buf   bytes.Buffer
	limit int
}

func (c *capped) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.limit {
		return 0, errOutputTooLong
	}
	return c.buf.Write(p)
}

// run runs one command in a new session and returns its standard output,
// failing on a non-zero exit with (a quoted excerpt of) its standard error.
func run(client *ssh.Client, cmd string, maxOut int) ([]byte, error) {
	s, err := client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	defer s.Close()
	stdout := &capped{limit: maxOut}
	stderr := &capped{limit: 512}
	s.Stdout, s.Stderr = stdout, stderr
	if err := s.Run(cmd); err != nil {
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
	out, err := run(client, statCommand(p), 128)
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

// remoteRead returns up to n bytes of p from offset.
func remoteRead(client *ssh.Client, p string, offset, n int64) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	out, err := run(client, readCommand(p, offset, n), int(n))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return out, nil
}

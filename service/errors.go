package service

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidConfig is matched (errors.Is) by every [*ConfigError].
var ErrInvalidConfig = errors.New("service: invalid config")

// ConfigError is a problem with one key of the configuration: which file
// (and line, when known), which key (a path such as "mq.url" or
// "accounts[1].customer"), the environment variable that set it if any,
// the value (redacted when the key holds a secret) and what is expected.
// Its message reads
//
//	worker.yaml:4: mq.url: "amqx://mq:5672/" is not an amqp:// or amqps:// URL
type ConfigError struct {
	File    string // the file's name as given to Load; "" for a Config built in code
	Line    int    // 1-based; 0 when unknown
	Key     string // the key path
	Env     string // the WORKER_* variable the value came from, if any
	Value   string // the value as shown: secrets are redacted
	Problem string // what is wrong and what is expected
}

// Redacted stands for a secret's value in messages and in [Check].
const Redacted = "<redacted>"

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Key)
	if e.Env != "" {
		b.WriteString(" (from " + e.Env + ")")
	}
	b.WriteString(": ")
	b.WriteString(quote(e.Value))
	b.WriteString(" ")
	b.WriteString(e.Problem)
	return b.String()
}

// Is makes a *ConfigError match ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// quote shows a value on one line, shortened.
func quote(v string) string {
	if v == Redacted {
		return v
	}
	if len(v) > 120 {
		v = v[:117] + "..."
	}
	return strconv.Quote(strings.ToValidUTF8(v, "?"))
}

// fail builds a ConfigError for key of c (file, line and env from where
// the key was read).
func (c *Config) fail(key, value, problem string, args ...any) *ConfigError {
	e := &ConfigError{Key: key, Value: value, Problem: fmt.Sprintf(problem, args...)}
	if isSecretKey(key) && value != "" {
		e.Value = Redacted
	}
	if m := c.meta; m != nil {
		e.File = m.file
		e.Line = m.lineOf(key)
		e.Env = m.env[key]
		if e.Env != "" {
			e.Line = 0 // the value is not the file's
		}
	}
	return e
}

package logging

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Defaults of [Config]. DefaultKey is also the attribute key that this
// module's components log the customer under.
const (
	DefaultKey        = "customer"
	DefaultFileName   = "worker.log"
	DefaultMaxSizeMB  = 100
	DefaultMaxBackups = 10
	DefaultMaxAgeDays = 30
	DefaultMaxOpen    = 64
)

// Permissions of what the package creates.
const (
	DirPerm  os.FileMode = 0o750
	FilePerm os.FileMode = 0o640
)

// Config configures a [CustomerHandler]. The zero value of every field but
// Dir means its default.
type Config struct {
	// Dir is the root of the customer log directories. Required. It is
	// created (mode 0o750) if missing.
	Dir string

	// Key is the attribute key that names the customer. Default
	// "customer" ([DefaultKey]), which is the key this module's own
	// components (the worker, cloud/guest) name the customer with: with
	// another Key, their records are not routed to customer files.
	Key string

	// FileName is the name of each customer's log file inside its
	// directory: a plain file name, no path. Default "worker.log".
	FileName string

	// MaxSizeMB is the size in megabytes at which a file is rotated.
	// Default 100.
	MaxSizeMB int

	// MaxBackups is how many rotated files are kept per customer. Default
	// 10; negative keeps them all (subject to MaxAgeDays).
	MaxBackups int

	// MaxAgeDays is how many days rotated files are kept. Default 30;
	// negative keeps them regardless of age (subject to MaxBackups).
	MaxAgeDays int

	// Compress gzips rotated files. Default false.
	Compress bool

	// MaxOpen is how many customer files may be open at once. Default 64.
	MaxOpen int

	// Level is the minimum level written to customer files, whatever the
	// process handler's level. Default slog.LevelInfo.
	Level slog.Leveler

	// ReplaceAttr, if set, rewrites attributes of customer files as in
	// [log/slog.HandlerOptions]; use it to redact. The process handler is
	// not affected.
	ReplaceAttr func(groups []string, a slog.Attr) slog.Attr
}

func (c *Config) setDefaults() {
	if c.Key == "" {
		c.Key = DefaultKey
	}
	if c.FileName == "" {
		c.FileName = DefaultFileName
	}
	if c.MaxSizeMB == 0 {
		c.MaxSizeMB = DefaultMaxSizeMB
	}
	if c.MaxBackups == 0 {
		c.MaxBackups = DefaultMaxBackups
	}
	if c.MaxAgeDays == 0 {
		c.MaxAgeDays = DefaultMaxAgeDays
	}
	if c.MaxOpen == 0 {
		c.MaxOpen = DefaultMaxOpen
	}
	if c.Level == nil {
		c.Level = slog.LevelInfo
	}
}

// Validate reports the first invalid field, by name. It creates Dir (mode
// 0o750) if missing, since a directory that cannot be created is invalid.
// Zero values are valid: they mean the defaults.
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return invalidConfig{err}
	}
	return nil
}

func (c Config) validate() error {
	if c.Dir == "" {
		return errors.New("logging: Config.Dir is required")
	}
	if strings.ContainsRune(c.Dir, 0) {
		return errors.New("logging: Config.Dir contains a NUL byte")
	}
	if err := os.MkdirAll(c.Dir, DirPerm); err != nil {
		return fmt.Errorf("logging: Config.Dir %q cannot be created: %w", c.Dir, err)
	}
	if fi, err := os.Stat(c.Dir); err != nil {
		return fmt.Errorf("logging: Config.Dir %q: %w", c.Dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("logging: Config.Dir %q is not a directory", c.Dir)
	}
	if c.FileName != "" {
		if c.FileName != filepath.Base(c.FileName) || strings.ContainsAny(c.FileName, `/\`) ||
			strings.HasPrefix(c.FileName, ".") || strings.ContainsRune(c.FileName, 0) {
			return fmt.Errorf("logging: Config.FileName %q must be a plain file name, not starting with '.'", c.FileName)
		}
	}
	if c.MaxSizeMB < 0 {
		return fmt.Errorf("logging: Config.MaxSizeMB must not be negative, got %d", c.MaxSizeMB)
	}
	if c.MaxOpen < 0 {
		return fmt.Errorf("logging: Config.MaxOpen must not be negative, got %d", c.MaxOpen)
	}
	return nil
}

// ErrInvalidConfig is matched (errors.Is) by every error of Validate: the
// message names the field and the value.
var ErrInvalidConfig = errors.New("logging: invalid config")

// invalidConfig is a Validate error: its own text, matching ErrInvalidConfig
// and what it wraps.
type invalidConfig struct{ err error }

func (e invalidConfig) Error() string   { return e.err.Error() }
func (e invalidConfig) Unwrap() []error { return []error{ErrInvalidConfig, e.err} }

package guest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stratusworks/worker/logging"
)

// Defaults of [CollectorConfig].
const (
	DefaultTimeout       = 30 * time.Second
	DefaultConcurrency   = 8
	DefaultPort          = 22
	DefaultMaxReadBytes  = 4 << 20
	DefaultRotatedSuffix = ".1"
)

// DefaultFiles are the remote files collected when [CollectorConfig.Files]
// is empty: the system log of Debian/Ubuntu and of Red Hat-like systems.
// A guest that lacks one simply skips it.
var DefaultFiles = []string{"/var/log/syslog", "/var/log/messages"}

// Credentials gives the SSH login for a guest. Key management implements it.
type Credentials interface {
	SSHAuth(ctx context.Context, customer, account, serverID string) (user string, auth []ssh.AuthMethod, err error)
}

// CredentialsFunc adapts a function to [Credentials].
type CredentialsFunc func(ctx context.Context, customer, account, serverID string) (string, []ssh.AuthMethod, error)

// SSHAuth implements [Credentials].
func (f CredentialsFunc) SSHAuth(ctx context.Context, customer, account, serverID string) (string, []ssh.AuthMethod, error) {
	return f(ctx, customer, account, serverID)
}

// CollectorConfig configures a [Collector]. Zero values mean the defaults.
type CollectorConfig struct {
	// SourceCIDR is where connections to guests come from (the classic
	// source_cidr): every connection binds to an address of this host inside
	// it. Required. A single loopback address (e.g. 127.0.0.2/32) is used
	// as it is when a loopback network of this host contains it.
	SourceCIDR netip.Prefix

	// HostKeys checks each guest's host key: [KnownHostsFile],
	// [PinnedKeys] or another callback. Required; there is no insecure
	// default.
	HostKeys ssh.HostKeyCallback

	// HostKeyAlgorithms, if set, restricts the host key types accepted,
	// in order of preference; useful with pinned keys of one type.
	HostKeyAlgorithms []string

	// Credentials gives the login for each guest. Required.
	Credentials Credentials

	// Offsets stores how far each file was copied. Required: it must be
	// durable for restarts to neither duplicate nor skip lines
	// ([NewMemoryOffsets] for tests).
	Offsets Offsets

	// Files are the absolute remote paths to collect. Files absent on a
	// guest are skipped. Two files must not share a base name, because the
	// base name names the local copy. Default [DefaultFiles].
	Files []string

	// RotatedSuffix names the rotated file: when a file was rotated, the
	// lines written to it after the last collection are read from
	// path+RotatedSuffix, if that is the same file. Default ".1".
	RotatedSuffix string

	// Timeout bounds the work on one guest: dial, handshake, commands and
	// reads. Default 30s.
	Timeout time.Duration

	// Concurrency is how many guests are contacted at once. Default 8.
	Concurrency int

	// MaxReadBytes bounds what is read from one file in one collection;
	// the rest is read next time. A line longer than this is split. A guest
	// that sends more than it is asked for has its connection closed at once
	// ([ErrOutputLimit]). Default 4 MiB.
	MaxReadBytes int64

	// OutputDir returns the directory of a customer's files, one per
	// customer; collected logs go under <OutputDir(customer)>/guests/.
	// Typically (*logging.CustomerHandler).CustomerDir. Symbolic links are
	// never followed from that directory down ([ErrSymlink]); its parent is
	// used as it is. If nil, LogDir is used.
	OutputDir func(customer string) (string, error)

	// LogDir, used when OutputDir is nil, is the root log directory:
	// customer files go to logging.CustomerDir(LogDir, customer).
	LogDir string

	// Port is the SSH port of guests whose Address has none. Default 22.
	Port int

	// Logger receives a line per guest and collection, with "customer"
	// (logging.DefaultKey) and "account" attributes so a
	// logging.CustomerHandler with the default Config.Key also files it
	// under the customer. Default slog.Default().
	Logger *slog.Logger
}

func (c *CollectorConfig) setDefaults() {
	if len(c.Files) == 0 {
		c.Files = DefaultFiles
	}
	c.Files = append([]string(nil), c.Files...)
	if c.RotatedSuffix == "" {
		c.RotatedSuffix = DefaultRotatedSuffix
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxReadBytes == 0 {
		c.MaxReadBytes = DefaultMaxReadBytes
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.OutputDir == nil && c.LogDir != "" {
		dir := c.LogDir
		c.OutputDir = func(customer string) (string, error) { return logging.CustomerDir(dir, customer) }
	}
}

// Validate reports the first invalid field, by name. Zero values that have
// defaults are valid. It does not look for a source address: NewCollector
// does.
func (c CollectorConfig) Validate() error {
	if err := c.validate(); err != nil {
		return invalidConfig{err}
	}
	return nil
}

func (c CollectorConfig) validate() error {
	switch {
	case !c.SourceCIDR.IsValid():
		return errors.New("guest: CollectorConfig.SourceCIDR is required")
	case c.HostKeys == nil:
		return errors.New("guest: CollectorConfig.HostKeys is required (use KnownHostsFile or PinnedKeys)")
	case c.Credentials == nil:
		return errors.New("guest: CollectorConfig.Credentials is required")
	case c.Offsets == nil:
		return errors.New("guest: CollectorConfig.Offsets is required")
	case c.OutputDir == nil && c.LogDir == "":
		return errors.New("guest: CollectorConfig.OutputDir or CollectorConfig.LogDir is required")
	case c.Timeout < 0:
		return fmt.Errorf("guest: CollectorConfig.Timeout must not be negative, got %v", c.Timeout)
	case c.Concurrency < 0:
		return fmt.Errorf("guest: CollectorConfig.Concurrency must not be negative, got %d", c.Concurrency)
	case c.MaxReadBytes < 0:
		return fmt.Errorf("guest: CollectorConfig.MaxReadBytes must not be negative, got %d", c.MaxReadBytes)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("guest: CollectorConfig.Port %d is out of range", c.Port)
	}
	if strings.ContainsAny(c.RotatedSuffix, "/\x00\n") {
		return fmt.Errorf("guest: CollectorConfig.RotatedSuffix %q must not contain '/', NUL or newline", c.RotatedSuffix)
	}
	seen := map[string]string{}
	for _, f := range c.Files {
		if err := checkRemotePath(f); err != nil {
			return fmt.Errorf("guest: CollectorConfig.Files: %w", err)
		}
		name := strings.ToLower(localName(f))
		if other, dup := seen[name]; dup {
			return fmt.Errorf("guest: CollectorConfig.Files: %q and %q would share the local file %q", other, f, name)
		}
		seen[name] = f
	}
	return nil
}

func checkRemotePath(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%q is not a clean absolute path to a file", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", p)
		}
	}
	return nil
}

// localName is the local file name of a remote path: its base name if that is
// plainly safe, or else logging.SafeName of it.
func localName(remote string) string {
	base := path.Base(remote)
	ok := len(base) <= 64 && base != "" && base[0] != '.' && base[0] != '-'
	for i := 0; ok && i < len(base); i++ {
		b := base[i]
		ok = b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-'
	}
	if ok {
		return base
	}
	name, err := logging.SafeName(base)
	if err != nil { // unreachable: base is never empty
		return "file"
	}
	return name
}

// sourceAddr picks this host's address inside cidr.
func sourceAddr(cidr netip.Prefix, addrs []net.Addr) (netip.Addr, error) {
	cidr = cidr.Masked()
	var nets []netip.Prefix
	var have []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := ipn.Mask.Size()
		nets = append(nets, netip.PrefixFrom(ip, ones))
		have = append(have, netip.PrefixFrom(ip, ones).String())
		if cidr.Contains(ip) {
			return ip, nil
		}
	}
	// Linux answers for a whole loopback network (127.0.0.0/8), not just the
	// address configured on lo, so a single loopback address inside it can
	// be bound.
	if ip := cidr.Addr(); cidr.IsSingleIP() && ip.IsLoopback() {
		for _, n := range nets {
			if n.Addr().IsLoopback() && n.Masked().Contains(ip) {
				return ip, nil
			}
		}
	}
	if len(have) == 0 {
		have = []string{"none"}
	}
	return netip.Addr{}, fmt.Errorf("guest: CollectorConfig.SourceCIDR %s: no address of this host is inside it (this host has %s)",
		cidr, strings.Join(have, ", "))
}

// ErrInvalidConfig is matched (errors.Is) by every error of Validate: the
// message names the field and the value.
var ErrInvalidConfig = errors.New("guest: invalid config")

// invalidConfig is a Validate error: its own text, matching ErrInvalidConfig
// and what it wraps.
type invalidConfig struct{ err error }

func (e invalidConfig) Error() string   { return e.err.Error() }
func (e invalidConfig) Unwrap() []error { return []error{ErrInvalidConfig, e.err} }

package guest

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Host key errors of [PinnedKeys]. Errors of [KnownHostsFile] are
// knownhosts.KeyError and knownhosts.RevokedError, which callers can match
// with errors.As.
var (
	ErrHostKeyMismatch = errors.New("guest: host key does not match the pinned key")
	ErrUnknownHost     = errors.New("guest: no pinned host key for this host")
)

// KnownHostsFile returns a host key callback that accepts only the keys
// listed for a host in the OpenSSH known_hosts files (hashed host names,
// markers and "[host]:port" entries included).
func KnownHostsFile(files ...string) (ssh.HostKeyCallback, error) {
	if len(files) == 0 {
		return nil, errors.New("guest: KnownHostsFile needs at least one file")
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("guest: known_hosts: %w", err)
	}
	return cb, nil
}

// PinnedKeys returns a host key callback that accepts, for each address, only
// the key pinned for it. An address is looked up as dialled ("host:port"),
// then as the host alone, so a key pinned for "10.0.0.5" applies on any
// port. An address without a pinned key is refused with [ErrUnknownHost]; a
// different key with [ErrHostKeyMismatch]. The map is copied.
//
// The guest must present a key of the pinned type: set
// [CollectorConfig.HostKeyAlgorithms] if guests have several host keys.
func PinnedKeys(keys map[string]ssh.PublicKey) ssh.HostKeyCallback {
	pinned := make(map[string][]byte, len(keys))
	for addr, k := range keys {
		if k != nil {
			pinned[addr] = k.Marshal()
		}
	}
	return func(hostname string, _ net.Addr, key ssh.PublicKey) error {
		want, ok := pinned[hostname]
		if !ok {
			if host, _, err := net.SplitHostPort(hostname); err == nil {
				want, ok = pinned[host]
			}
		}
		if !ok {
			return fmt.Errorf("%w: %s", ErrUnknownHost, hostname)
		}
		if !bytes.Equal(want, key.Marshal()) {
			return fmt.Errorf("%w: %s presented %s %s", ErrHostKeyMismatch, hostname, key.Type(), ssh.FingerprintSHA256(key))
		}
		return nil
	}
}

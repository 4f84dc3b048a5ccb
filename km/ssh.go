package km

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Defaults of [SSHLogins].
const (
	DefaultSSHCredential = "ssh"  // credential name looked up per account
	DefaultSSHUser       = "root" // login when the credential has no MetaUser
)

// MetaUser is the [Credential.Meta] key holding an SSH credential's login name.
const MetaUser = "user"

// SSHLogins gives guest SSH logins from a [Store]: for a server of an
// account it reads the account's credential named Name, of Kind [KindSSH],
// whose [FieldPrivateKey] (optionally protected by [FieldPassphrase]) or
// [FieldPassword] is the login secret and whose Meta[MetaUser] is the login
// name. Its SSHAuth method has the signature of the guest log collector's
// Credentials interface, so an SSHLogins plugs into it as is; put a [Cache]
// in front of a remote store so collections do not fetch the key every time.
//
// The credential's bytes are wiped as soon as the key is parsed. The parsed
// key (an [ssh.Signer]) and a password (a Go string) stay in memory until the
// SSH client that uses them is garbage: Go offers no way to wipe those.
type SSHLogins struct {
	// Store holds the credentials. Required.
	Store Store
	// Name is the credential name looked up in each account. Default "ssh".
	Name string
	// DefaultUser is the login when the credential has no Meta[MetaUser].
	// Default "root".
	DefaultUser string
}

// SSHAuth returns the login name and auth methods for a server of the
// customer's account. Errors name the credential, never its contents: a
// missing credential matches [ErrNotFound], an unusable one [ErrInvalid].
func (l SSHLogins) SSHAuth(ctx context.Context, customer, account, serverID string) (string, []ssh.AuthMethod, error) {
	if l.Store == nil {
		return "", nil, invalidf("SSHLogins.Store is nil")
	}
	name := l.Name
	if name == "" {
		name = DefaultSSHCredential
	}
	where := fmt.Sprintf("ssh login for server %q: credential %s/%s/%s", serverID, customer, account, name)
	cred, err := l.Store.Get(ctx, customer, account, name)
	if err != nil {
		// The store's errors name the credential already.
		return "", nil, fmt.Errorf("km: ssh login for server %q: %w", serverID, err)
	}
	defer cred.Destroy()
	if cred.Kind != KindSSH {
		return "", nil, invalidf("%s has kind %q, want %q", where, cred.Kind, KindSSH)
	}
	user := cred.Meta[MetaUser]
	if user == "" {
		user = l.DefaultUser
	}
	if user == "" {
		user = DefaultSSHUser
	}

	var methods []ssh.AuthMethod
	if key := cred.Field(FieldPrivateKey); !key.IsZero() {
		signer, err := parseSigner(key, cred.Field(FieldPassphrase))
		if err != nil {
			return "", nil, invalidf("%s: field %s: %s", where, FieldPrivateKey, err)
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	if pw := cred.Field(FieldPassword); !pw.IsZero() {
		password := string(pw.Reveal())
		methods = append(methods, ssh.Password(password))
	}
	if len(methods) == 0 {
		return "", nil, invalidf("%s has neither a %s nor a %s field", where, FieldPrivateKey, FieldPassword)
	}
	return user, methods, nil
}

// parseSigner parses a PEM or OpenSSH private key. Its error says what is
// wrong in general terms only: parser errors are not passed on, so no part of
// the key can reach a log through them.
func parseSigner(key, passphrase Secret) (ssh.Signer, error) {
	var signer ssh.Signer
	err := key.Use(func(k []byte) error {
		var err error
		if passphrase.IsZero() {
			signer, err = ssh.ParsePrivateKey(k)
		} else {
			err = passphrase.Use(func(p []byte) error {
				signer, err = ssh.ParsePrivateKeyWithPassphrase(k, p)
				return err
			})
		}
		return err
	})
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case errors.As(err, &missing):
		return nil, fmt.Errorf("the key is encrypted and the credential has no %s field", FieldPassphrase)
	case errors.Is(err, x509.IncorrectPasswordError):
		return nil, fmt.Errorf("the %s does not decrypt the key", FieldPassphrase)
	default:
		return nil, errors.New("not a PEM or OpenSSH private key that golang.org/x/crypto/ssh can parse")
	}
}

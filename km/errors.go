package km

import (
	"errors"
	"fmt"
)

// Errors callers can branch on with [errors.Is]. Their messages, and the
// messages of every error this package returns, name credentials and master
// keys only by their identifiers (customer, account, name, key id and
// version); they never contain secret values or key material.
var (
	// ErrNotFound means the credential does not exist.
	ErrNotFound = errors.New("km: credential not found")
	// ErrWrongKey means the keyring holds a master key with the id and version
	// recorded in the envelope, but it is not the key that sealed it (its key
	// check value differs): the keyring was loaded from the wrong file or
	// environment.
	ErrWrongKey = errors.New("km: wrong master key")
	// ErrTampered means an envelope or a sealed payload failed authentication:
	// its bytes were modified, it is malformed, or it was moved to another
	// credential (customer, account or name differ from those it was sealed
	// for).
	ErrTampered = errors.New("km: authentication failed (tampered or moved)")
	// ErrUnknownKey means an envelope names a master key id and version that
	// the keyring does not hold.
	ErrUnknownKey = errors.New("km: unknown master key")
	// ErrInsecureKeyFile means a file holding key material (a master key
	// file, a certificate's private key) is not a regular file, is
	// accessible by group or other users, is owned by another user than the
	// effective user or root, or lies below a directory (or symbolic link)
	// that another user could change: it could have been planted or
	// replaced.
	ErrInsecureKeyFile = errors.New("km: insecure key file")
	// ErrUnauthorized means the key service refused the client's
	// authentication (certificate missing, expired, revoked, not from its
	// CA; with the payload layer also a wrong key, a stale timestamp or a
	// replay), or the key service's own certificate failed the client's
	// verification.
	ErrUnauthorized = errors.New("km: unauthorized")
	// ErrInvalid marks input or configuration this package rejects; the
	// message names the bad field. Retrying the same call cannot succeed.
	ErrInvalid = errors.New("km: invalid")
	// ErrClosed means the keyring (or a store using it) has been closed.
	ErrClosed = errors.New("km: closed")
	// ErrConflict means a conditional write ([ConditionalStore.PutIf],
	// [ConditionalStore.DeleteIf]) found the credential at another revision
	// than the one given (or present when revision 0 asked for its absence).
	ErrConflict = errors.New("km: revision conflict")
	// ErrSchema means the database lacks the km tables, or has them in
	// another shape than this package needs (for example a collation that
	// ignores case or trailing spaces): run the provisioning database's
	// migrations (persist.Migrate). km never creates or alters tables.
	ErrSchema = errors.New("km: database schema missing or not as expected")
	// ErrForbidden means the key service authenticated the client but its
	// identity is not allowed the operation on that customer.
	ErrForbidden = errors.New("km: forbidden")
)

// invalidError is a validation message that matches [ErrInvalid] without
// repeating its text.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: "km: " + fmt.Sprintf(format, args...)}
}

// sentinelError carries its own message and matches one sentinel, so messages
// can be specific ("master key prod version 3 …") without repeating the
// sentinel's text.
type sentinelError struct {
	msg      string
	sentinel error
}

func (e *sentinelError) Error() string        { return e.msg }
func (e *sentinelError) Is(target error) bool { return target == e.sentinel }

func errorf(sentinel error, format string, args ...any) error {
	return &sentinelError{msg: "km: " + fmt.Sprintf(format, args...), sentinel: sentinel}
}

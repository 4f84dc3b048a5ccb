package cloud

import (
	"errors"
	"fmt"
	"time"
)

// Errors of the taxonomy. Providers wrap them (fmt.Errorf("…: %w", ErrX)) so
// callers branch with errors.Is.
var (
	ErrNotFound       = errors.New("cloud: not found")
	ErrAuthentication = errors.New("cloud: authentication failed")
	ErrCapacity       = errors.New("cloud: insufficient capacity")
	ErrQuota          = errors.New("cloud: quota exceeded")
	ErrCommunication  = errors.New("cloud: communication failure")
	ErrNotSupported   = errors.New("cloud: not supported by this provider")
	// ErrInvalidRequest means the request itself is wrong (a launch without an
	// image, a malformed rule or page token): retrying it cannot help.
	ErrInvalidRequest = errors.New("cloud: invalid request")
)

// ThrottledError means the provider refused the call for rate; try again after RetryAfter.
type ThrottledError struct {
	API        string        // the call that was throttled, e.g. "ListServers"
	RetryAfter time.Duration // how long to wait; 0 if the provider did not say
}

func (e *ThrottledError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("cloud: %s throttled, retry after %v", e.API, e.RetryAfter)
	}
	return fmt.Sprintf("cloud: %s throttled", e.API)
}

// RetryAfter returns how long err asks the caller to wait, and whether err is
// a throttling error at all.
func RetryAfter(err error) (time.Duration, bool) {
	var t *ThrottledError
	if errors.As(err, &t) {
		return t.RetryAfter, true
	}
	return 0, false
}

// IsTransient reports whether retrying the same call later can succeed:
// throttling, communication failures and capacity shortages are transient;
// not found, authentication, quota, not supported and invalid requests are permanent. Unknown
// errors are treated as transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := RetryAfter(err); ok {
		return true
	}
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrAuthentication),
		errors.Is(err, ErrQuota), errors.Is(err, ErrNotSupported), errors.Is(err, ErrInvalidRequest):
		return false
	}
	return true
}

// NotSupported returns a [*NotSupportedError] (matching ErrNotSupported)
// naming the provider and service.
func NotSupported(provider, service string) error {
	return &NotSupportedError{Provider: provider, Service: service}
}

// NotSupportedError is what a provider answers for a service it does not
// offer, and what the service helpers ([ImagesOf], [DNSOf], …) return for
// a provider without the service's accessor. It matches ErrNotSupported.
type NotSupportedError struct {
	Provider string // the provider's Name, e.g. "vsphere"
	Service  string // the service, e.g. ServiceDNS
}

func (e *NotSupportedError) Error() string {
	return fmt.Sprintf("%v: %s has no %s service", ErrNotSupported, e.Provider, e.Service)
}

// Is makes errors.Is(err, ErrNotSupported) true.
func (e *NotSupportedError) Is(target error) bool { return target == ErrNotSupported }

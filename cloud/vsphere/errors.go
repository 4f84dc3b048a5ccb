package vsphere

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// classify maps a vSphere fault or transport error to the cloud error
// taxonomy. It returns nil when err fits none of the sentinels (an unknown
// fault stays a plain error, which cloud.IsTransient treats as transient).
//
//	InvalidLogin, NotAuthenticated, NoPermission, SecurityError  -> ErrAuthentication
//	ManagedObjectNotFound, NotFound                               -> ErrNotFound
//	InsufficientResourcesFault (and subtypes), NoDiskSpace        -> ErrCapacity
//	NotEnoughLicenses                                             -> ErrQuota
//	InvalidArgument (and subtypes), DuplicateName, InvalidName    -> ErrInvalidRequest
//	HostCommunication (and subtypes), refused/reset/timed-out
//	connections, TLS failures, non-SOAP HTTP statuses             -> ErrCommunication
//	HTTP 429                                                      -> *cloud.ThrottledError
func classify(op string, err error) error {
	var found error
	if isFault(err) {
		fault.In(err, func(f types.BaseMethodFault, _ string, _ []types.LocalizableMessage) bool {
			found = classifyFault(f)
			return found != nil
		})
		if found != nil {
			return found
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) && strings.HasPrefix(ue.Err.Error(), "429") {
		return &cloud.ThrottledError{API: op}
	}
	var (
		netErr   net.Error
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
	)
	switch {
	case errors.As(err, &ue), errors.As(err, &netErr),
		errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &hostErr),
		errors.As(err, &recErr), errors.As(err, &alertErr),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return cloud.ErrCommunication
	}
	return nil
}

// isFault reports whether err carries a vSphere fault somewhere in its tree.
func isFault(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case types.HasLocalizedMethodFault, types.BaseMethodFault, interface{ Fault() types.BaseMethodFault }:
		return true
	case interface{ Unwrap() error }:
		return isFault(e.Unwrap())
	case interface{ Unwrap() []error }:
		return slices.ContainsFunc(e.Unwrap(), isFault)
	}
	return false
}

func classifyFault(f types.BaseMethodFault) error {
	switch f.(type) {
	case types.BaseInvalidLogin, types.BaseNoPermission, types.BaseSecurityError:
		// NotAuthenticated is a NoPermission.
		return cloud.ErrAuthentication
	case *types.ManagedObjectNotFound, *types.NotFound:
		return cloud.ErrNotFound
	case types.BaseInsufficientResourcesFault, *types.NoDiskSpace:
		return cloud.ErrCapacity
	case types.BaseNotEnoughLicenses:
		return cloud.ErrQuota
	case types.BaseHostCommunication:
		return cloud.ErrCommunication
	case types.BaseInvalidArgument, *types.DuplicateName, *types.InvalidName:
		return cloud.ErrInvalidRequest
	}
	return nil
}

// faultName is the vSphere fault's type name, e.g. "DuplicateName".
func faultName(f types.BaseMethodFault) string {
	t := reflect.TypeOf(f)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// wrap turns an error from govmomi into the error a caller of op sees:
// prefixed with "vsphere: op", matching the cloud sentinel it maps to, and
// still unwrapping to the original (so fault.As works on it). Errors already
// in the taxonomy pass through with the prefix only.
func wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// The caller gave up: that is not the cloud's fault.
		return fmt.Errorf("vsphere: %s: %w", op, err)
	}
	if inTaxonomy(err) {
		return fmt.Errorf("vsphere: %s: %w", op, err)
	}
	if sentinel := classify(op, err); sentinel != nil {
		var te *cloud.ThrottledError
		if errors.As(sentinel, &te) {
			return fmt.Errorf("vsphere: %s: %w (%w)", op, sentinel, err)
		}
		return fmt.Errorf("vsphere: %s: %w: %w", op, sentinel, err)
	}
	return fmt.Errorf("vsphere: %s: %w", op, err)
}

func inTaxonomy(err error) bool {
	if _, ok := cloud.RetryAfter(err); ok {
		return true
	}
	for _, s := range []error{cloud.ErrNotFound, cloud.ErrAuthentication, cloud.ErrCapacity,
		cloud.ErrQuota, cloud.ErrCommunication, cloud.ErrNotSupported, cloud.ErrInvalidRequest} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// isNotAuthenticated reports whether the session behind the call has expired.
func isNotAuthenticated(err error) bool {
	return err != nil && isFault(err) && fault.Is(err, &types.NotAuthenticated{})
}

// isFaultType reports whether err carries a fault of f's type.
func isFaultType(err error, f types.BaseMethodFault) bool {
	return err != nil && isFault(err) && fault.Is(err, f)
}

// asFault finds a fault of type T in err's tree.
func asFault[T types.BaseMethodFault](err error) (T, bool) {
	var t T
	if err == nil || !isFault(err) {
		return t, false
	}
	_, ok := fault.As(err, &t)
	return t, ok
}

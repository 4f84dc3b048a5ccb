package km

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sync"
	"time"
)

// TLSConfig is one side's material for the mutual TLS (1.3) connection
// between [Client]s and the key service ([Server]).
//
// Both sides pin a private CA: CA (or CAFile) holds the only certificates
// the other side's chain may lead to; the system's roots are never used.
// During a CA rotation, put the old and the new CA in the bundle. Each
// worker has a client certificate of its own, whose subject CommonName is
// its identity (see [Grant]); the key service has a server certificate for
// its DNS name. The roles are kept apart: a client certificate must carry the
// client-authentication extended key usage and not the server one, and a
// server certificate the reverse, so that no worker's certificate can pose
// as the key service, nor the key service's as a worker.
type TLSConfig struct {
	// CA is the PEM bundle of the pinned private CA certificate(s). Required,
	// unless CAFile is set.
	CA []byte
	// CAFile is a file holding CA, read once by NewClient or NewServer.
	CAFile string
	// Certificate returns this side's certificate chain and private key. It
	// is called for every handshake, so a renewed certificate takes effect
	// without a restart. Required, unless CertFile and KeyFile are set.
	Certificate func() (*tls.Certificate, error)
	// CertFile and KeyFile are PEM files of this side's certificate chain
	// and private key, used when Certificate is nil (see [CertificateFiles]:
	// they are reread when they change, and KeyFile must be private as a
	// master key file must).
	CertFile, KeyFile string
}

// resolved returns the CA pool and the certificate source; field names the
// config field in errors.
func (c TLSConfig) resolved(field string) (*x509.CertPool, []*x509.Certificate, func() (*tls.Certificate, error), error) {
	caPEM := c.CA
	if len(caPEM) == 0 && c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, nil, nil, invalidf("%s.CAFile: %v", field, err)
		}
		caPEM = b
	}
	if len(caPEM) == 0 {
		return nil, nil, nil, invalidf("%s.CA (or CAFile) is required: the private CA that issues the key service's and the workers' certificates", field)
	}
	cas, err := parseCertificates(caPEM)
	if err != nil {
		return nil, nil, nil, invalidf("%s.CA: %v", field, err)
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		if !ca.IsCA {
			return nil, nil, nil, invalidf("%s.CA: certificate %q is not a CA certificate", field, ca.Subject.CommonName)
		}
		pool.AddCert(ca)
	}
	get := c.Certificate
	if get == nil {
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, nil, nil, invalidf("%s.Certificate (or CertFile and KeyFile) is required", field)
		}
		get = CertificateFiles(c.CertFile, c.KeyFile)
	}
	return pool, cas, get, nil
}

func parseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("unparsable certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// CertificateFiles returns a certificate source for [TLSConfig] that reads a
// PEM certificate chain and its private key from files, and reads them again
// whenever either file's size or modification time changes, so a renewed
// certificate is picked up at the next handshake. The key file is checked as
// [LoadKeyFile] checks master key files (mode 0600 or stricter, owned by the
// effective user or root, in no directory others can write); errors name the
// files, never their contents.
func CertificateFiles(certFile, keyFile string) func() (*tls.Certificate, error) {
	var mu sync.Mutex
	var cached *tls.Certificate
	var stamp [4]int64
	return func() (*tls.Certificate, error) {
		ci, err := os.Stat(certFile)
		if err != nil {
			return nil, fmt.Errorf("km: certificate file: %w", err)
		}
		ki, err := os.Stat(keyFile)
		if err != nil {
			return nil, fmt.Errorf("km: certificate key file: %w", err)
		}
		now := [4]int64{ci.Size(), ci.ModTime().UnixNano(), ki.Size(), ki.ModTime().UnixNano()}
		mu.Lock()
		defer mu.Unlock()
		if cached != nil && now == stamp {
			return cached, nil
		}
		if err := checkPrivateFile("certificate key file", keyFile); err != nil {
			return nil, err
		}
		certPEM, err := os.ReadFile(certFile)
		if err != nil {
			return nil, fmt.Errorf("km: certificate file: %w", err)
		}
		keyPEM, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("km: certificate key file: %w", err)
		}
		defer clear(keyPEM)
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// The parser's message is not passed on: keep key text out of logs.
			return nil, invalidf("certificate %s and key %s do not form a valid PEM certificate and private key pair", certFile, keyFile)
		}
		cached, stamp = &cert, now
		return cached, nil
	}
}

// checkPrivateFile applies LoadKeyFile's rules to a file holding a private
// key.
func checkPrivateFile(what, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("km: %s: %w", what, err)
	}
	defer f.Close()
	if err := checkKeyFile(path, f); err != nil {
		return err
	}
	return checkSecurePath(what, path)
}

// StaticCertificate returns a [TLSConfig] certificate source that always
// returns cert.
func StaticCertificate(cert tls.Certificate) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) { return &cert, nil }
}

// identityPattern is what a client identity (its certificate's CommonName)
// and the server's identity look like.
var identityPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$`)

func hasEKU(c *x509.Certificate, u x509.ExtKeyUsage) bool { return slices.Contains(c.ExtKeyUsage, u) }

// Reasons a peer certificate is refused; they are what the audit log and
// the server's log record (fixed texts: nothing from the certificate).
const (
	reasonNoCert        = "no client certificate"
	reasonExpired       = "certificate expired or not yet valid"
	reasonUnknownCA     = "certificate not issued by the pinned CA"
	reasonBadUsage      = "certificate lacks the client authentication usage"
	reasonServerAsCl    = "a server certificate cannot authenticate a client"
	reasonRevoked       = "certificate revoked"
	reasonBadIdentity   = "certificate has no valid client identity (CommonName)"
	reasonVerifyFailed  = "certificate verification failed"
	reasonSameAsServer  = "client identity equals the server's identity"
	reasonNotServerCert = "the key service's certificate lacks the server authentication usage, or also carries the client one"
)

// verifyClientChain verifies a client's certificate chain against the
// pinned pool at now: it returns the client's identity, or why it is
// refused.
func verifyClientChain(chain []*x509.Certificate, roots *x509.CertPool, now time.Time, revoked func(*x509.Certificate) bool) (string, string) {
	if len(chain) == 0 {
		return "", reasonNoCert
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case err == nil:
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "", reasonExpired
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return "", reasonBadUsage
	case errors.As(err, &unknown):
		return "", reasonUnknownCA
	default:
		return "", reasonVerifyFailed
	}
	if !hasEKU(leaf, x509.ExtKeyUsageClientAuth) {
		return "", reasonBadUsage // no EKU at all passes Verify as "any usage"
	}
	if hasEKU(leaf, x509.ExtKeyUsageServerAuth) || hasEKU(leaf, x509.ExtKeyUsageAny) {
		return "", reasonServerAsCl
	}
	if revoked != nil && revoked(leaf) {
		return "", reasonRevoked
	}
	id := leaf.Subject.CommonName
	if !identityPattern.MatchString(id) {
		return "", reasonBadIdentity
	}
	return id, ""
}

// CRLRevoked returns a revocation check for [ServerConfig].Revoked from a
// certificate revocation list (PEM or DER) issued by one of the CA
// certificates in caPEM: a certificate is revoked when the CRL lists its
// serial number (and the CRL's issuer issued it). The CRL's signature is checked here; reload the server's
// configuration (or have Revoked read a fresh CRL) to publish new
// revocations.
func CRLRevoked(crl, caPEM []byte) (func(*x509.Certificate) bool, error) {
	der := crl
	if block, _ := pem.Decode(crl); block != nil {
		der = block.Bytes
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, invalidf("revocation list: unparsable: %v", err)
	}
	cas, err := parseCertificates(caPEM)
	if err != nil {
		return nil, invalidf("revocation list CA: %v", err)
	}
	signed := false
	for _, ca := range cas {
		if list.CheckSignatureFrom(ca) == nil {
			signed = true
			break
		}
	}
	if !signed {
		return nil, invalidf("revocation list is not signed by any of the given CA certificates")
	}
	serials := map[string]bool{}
	for _, e := range list.RevokedCertificateEntries {
		serials[e.SerialNumber.String()] = true
	}
	issuer := list.RawIssuer
	return func(c *x509.Certificate) bool {
		return serials[c.SerialNumber.String()] && bytes.Equal(c.RawIssuer, issuer)
	}, nil
}

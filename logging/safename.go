package logging

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// ErrEmptyCustomer is returned for an empty customer id.
var ErrEmptyCustomer = errors.New("logging: empty customer id")

const (
	maxPlainName  = 64 // longest id kept as it is
	maxPrefixName = 32 // longest readable prefix of a hashed name
)

// reserved are device names that Windows refuses as file names, with or
// without an extension; refusing them everywhere keeps log directories
// portable.
var reserved = map[string]bool{
	"con": true, "prn": true, "aux": true, "nul": true,
	"com1": true, "com2": true, "com3": true, "com4": true, "com5": true,
	"com6": true, "com7": true, "com8": true, "com9": true,
	"lpt1": true, "lpt2": true, "lpt3": true, "lpt4": true, "lpt5": true,
	"lpt6": true, "lpt7": true, "lpt8": true, "lpt9": true,
}

var hashEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func plainByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-'
}

// SafeName turns a customer id into a name that is safe as one directory
// name on any common file system: only [a-z0-9_.-], no leading dot, at most
// 64 bytes, never a reserved device name, never "." or "..". An id that is
// already such a name (and contains no '.') is returned as it is; any other
// id becomes a sanitised prefix of at most 32 bytes, '.', and 16 characters of
// the base32 SHA-256 of the id. Distinct ids give distinct names, also when
// compared case-insensitively. The empty id is an error.
func SafeName(customer string) (string, error) {
	if customer == "" {
		return "", ErrEmptyCustomer
	}
	plain := len(customer) <= maxPlainName && !reserved[customer]
	for i := 0; plain && i < len(customer); i++ {
		plain = plainByte(customer[i])
	}
	if plain {
		return customer, nil
	}
	var b strings.Builder
	for _, r := range customer {
		if b.Len() >= maxPrefixName {
			break
		}
		switch {
		case r < 0x80 && plainByte(byte(r)):
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r - 'A' + 'a')
		default:
			b.WriteByte('_')
		}
	}
	prefix := b.String()
	if reserved[prefix] {
		prefix += "_"
	}
	sum := sha256.Sum256([]byte(customer))
	return prefix + "." + hashEncoding.EncodeToString(sum[:10]), nil
}

// CustomerDir returns the directory of a customer's logs under dir:
// filepath.Join(dir, SafeName(customer)). It checks that the result is a
// direct child of dir and creates nothing.
func CustomerDir(dir, customer string) (string, error) {
	if dir == "" {
		return "", errors.New("logging: empty log directory")
	}
	name, err := SafeName(customer)
	if err != nil {
		return "", err
	}
	root := filepath.Clean(dir)
	p := filepath.Join(root, name)
	rel, err := filepath.Rel(root, p)
	if err != nil || rel != name || rel == "." || rel == ".." || strings.ContainsAny(rel, `/\`) {
		return "", fmt.Errorf("logging: customer %q: directory %q escapes %q", customer, p, root)
	}
	return p, nil
}

package km

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind says what a credential is for.
type Kind string

// Credential kinds.
const (
	KindCloud Kind = "cloud" // cloud provider API credentials for one account
	KindSSH   Kind = "ssh"   // an SSH key for guest VMs
)

// Conventional field names. Any non-empty name is accepted.
const (
	FieldAccessKeyID = "access_key_id" // cloud API key id
	FieldSecretKey   = "secret_key"    // cloud API secret
	FieldPrivateKey  = "private_key"   // SSH private key (PEM / OpenSSH)
	FieldPassphrase  = "passphrase"    // passphrase of FieldPrivateKey
	FieldPassword    = "password"
)

// Limits enforced by [Credential.Validate] (they keep identifiers indexable
// in MySQL with utf8mb4).
const (
	MaxIDLen    = 191 // Customer, Account, Name, Provider
	MaxFieldLen = 64  // field and metadata names
	MaxFields   = 64  // secret fields per credential
)

// Credential is one customer's secret for one cloud account: cloud API keys
// (Kind "cloud") or a guest SSH key (Kind "ssh"). It is identified by
// (Customer, Account, Name).
//
// Printing, logging or JSON-marshalling a Credential shows its identifiers,
// metadata and field names, never the field values.
type Credential struct {
	Customer string // tenant; required
	Account  string // cloud account; required
	Provider string // e.g. "aws", "vsphere"; optional
	Kind     Kind   // KindCloud or KindSSH; required
	Name     string // e.g. "default", "deploy-key"; required
	// Fields holds the secret values by name (see FieldAccessKeyID …); at
	// least one is required.
	Fields map[string]Secret
	// Meta holds non-secret metadata (region, SSH user, key fingerprint).
	// It is stored in the clear for listing, and also authenticated.
	Meta map[string]string
	// CreatedAt and UpdatedAt are set by the store; ignored by Put.
	CreatedAt, UpdatedAt time.Time
	// Revision is set by the store: 1 when the credential is created, one
	// more on every write. Put ignores it; [ConditionalStore.PutIf] takes the
	// revision to replace as an argument.
	Revision int64
}

// CredentialInfo describes a stored credential without its secrets.
type CredentialInfo struct {
	Customer   string            `json:"customer"`
	Account    string            `json:"account"`
	Provider   string            `json:"provider,omitempty"`
	Kind       Kind              `json:"kind"`
	Name       string            `json:"name"`
	FieldNames []string          `json:"field_names"` // sorted
	Meta       map[string]string `json:"meta,omitempty"`
	KeyID      string            `json:"key_id,omitempty"`      // master key that wraps it, if known
	KeyVersion int               `json:"key_version,omitempty"` // its version
	CreatedAt  time.Time         `json:"created_at,omitzero"`
	UpdatedAt  time.Time         `json:"updated_at,omitzero"`
	Revision   int64             `json:"revision,omitempty"` // see Credential.Revision
}

// Binding returns the identifiers the credential's envelope is bound to.
func (c Credential) Binding() Binding {
	return Binding{Customer: c.Customer, Account: c.Account, Name: c.Name}
}

// Field returns the named secret field (an empty Secret if absent).
func (c Credential) Field(name string) Secret { return c.Fields[name] }

// FieldNames returns the sorted names of the secret fields.
func (c Credential) FieldNames() []string { return slices.Sorted(maps.Keys(c.Fields)) }

// Info returns the credential's description without secrets.
func (c Credential) Info() CredentialInfo {
	return CredentialInfo{
		Customer: c.Customer, Account: c.Account, Provider: c.Provider, Kind: c.Kind, Name: c.Name,
		FieldNames: c.FieldNames(), Meta: maps.Clone(c.Meta),
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Revision: c.Revision,
	}
}

// Clone returns a deep copy whose secrets are independent of c's: destroying
// one does not affect the other.
func (c Credential) Clone() Credential {
	out := c
	out.Meta = maps.Clone(c.Meta)
	if c.Fields != nil {
		out.Fields = make(map[string]Secret, len(c.Fields))
		for k, v := range c.Fields {
			out.Fields[k] = v.Clone()
		}
	}
	return out
}

// Destroy wipes every secret field (see [Secret.Destroy]).
func (c Credential) Destroy() {
	for _, s := range c.Fields {
		s.Destroy()
	}
}

// Validate checks the credential before it is stored and names the bad
// field. Errors match [ErrInvalid].
func (c Credential) Validate() error {
	if err := validateKey(c.Customer, c.Account, c.Name); err != nil {
		return err
	}
	if len(c.Provider) > MaxIDLen {
		return invalidf("invalid credential: Provider is longer than %d bytes", MaxIDLen)
	}
	switch c.Kind {
	case KindCloud, KindSSH:
	case "":
		return invalidf("invalid credential: Kind is required (%q or %q)", KindCloud, KindSSH)
	default:
		return invalidf("invalid credential: Kind %.32q is not %q or %q", c.Kind, KindCloud, KindSSH)
	}
	if len(c.Fields) == 0 {
		return invalidf("invalid credential: Fields is empty (at least one secret field is required)")
	}
	if len(c.Fields) > MaxFields {
		return invalidf("invalid credential: Fields has %d entries (max %d)", len(c.Fields), MaxFields)
	}
	for name, s := range c.Fields {
		if err := validateFieldName("Fields", name); err != nil {
			return err
		}
		if s.IsZero() {
			return invalidf("invalid credential: Fields[%q] is empty", name)
		}
	}
	if len(c.Meta) > MaxFields {
		return invalidf("invalid credential: Meta has %d entries (max %d)", len(c.Meta), MaxFields)
	}
	for name := range c.Meta {
		if err := validateFieldName("Meta", name); err != nil {
			return err
		}
	}
	return nil
}

// validateKey checks the identifiers of a credential. They are compared byte
// for byte everywhere (the database stores keyed hashes of the exact bytes),
// so that "acme " or "ACME" name other credentials than "acme"; to keep
// such look-alikes from being created at all, identifiers must be valid
// UTF-8 without leading or trailing white space and without control or
// invisible formatting characters.
func validateKey(customer, account, name string) error {
	for _, f := range []struct{ field, v string }{{"Customer", customer}, {"Account", account}, {"Name", name}} {
		if err := validateID(f.field, f.v); err != nil {
			return err
		}
	}
	return nil
}

func validateID(field, v string) error {
	if v == "" {
		return invalidf("invalid credential: %s is required", field)
	}
	if len(v) > MaxIDLen {
		return invalidf("invalid credential: %s is longer than %d bytes", field, MaxIDLen)
	}
	if !utf8.ValidString(v) {
		return invalidf("invalid credential: %s is not valid UTF-8", field)
	}
	first, _ := utf8.DecodeRuneInString(v)
	last, _ := utf8.DecodeLastRuneInString(v)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return invalidf("invalid credential: %s %.64q has leading or trailing white space", field, v)
	}
	if strings.ContainsFunc(v, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
		return invalidf("invalid credential: %s %.64q contains control or invisible formatting characters", field, v)
	}
	return nil
}

func validateFieldName(where, name string) error {
	if name == "" {
		return invalidf("invalid credential: %s has an empty name", where)
	}
	if len(name) > MaxFieldLen {
		return invalidf("invalid credential: %s has a name longer than %d bytes", where, MaxFieldLen)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalidf("invalid credential: %s has a name with control characters", where)
	}
	return nil
}

// String describes the credential with its secrets redacted.
func (c Credential) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "credential %s/%s/%s (provider %q, kind %q; fields:", c.Customer, c.Account, c.Name, c.Provider, c.Kind)
	for _, n := range c.FieldNames() {
		fmt.Fprintf(&b, " %s=%s", n, Redacted)
	}
	b.WriteString(")")
	return b.String()
}

// GoString is like [Credential.String], in Go syntax, for %#v.
func (c Credential) GoString() string {
	var b strings.Builder
	fmt.Fprintf(&b, "km.Credential{Customer:%q, Account:%q, Provider:%q, Kind:%q, Name:%q, Fields:map[string]km.Secret{",
		c.Customer, c.Account, c.Provider, c.Kind, c.Name)
	for i, n := range c.FieldNames() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q:%s", n, Redacted)
	}
	fmt.Fprintf(&b, "}, Meta:%#v}", c.Meta)
	return b.String()
}

// Format writes [Credential.GoString] for %#v and [Credential.String] for
// every other verb, so secrets never print.
func (c Credential) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, c.GoString())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// LogValue logs identifiers and field names, never field values.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("customer", c.Customer),
		slog.String("account", c.Account),
		slog.String("provider", c.Provider),
		slog.String("kind", string(c.Kind)),
		slog.String("name", c.Name),
		slog.Any("fields", c.FieldNames()),
	)
}

// MarshalJSON encodes the credential with every field value [Redacted].
func (c Credential) MarshalJSON() ([]byte, error) {
	type redacted struct {
		CredentialInfo
		Fields map[string]Secret `json:"fields"`
	}
	return json.Marshal(redacted{CredentialInfo: c.Info(), Fields: c.Fields})
}

// Interface checks.
var (
	_ fmt.Formatter  = Credential{}
	_ slog.LogValuer = Credential{}
	_ json.Marshaler = Credential{}
)

package accounts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on an account's fields. Identifiers are compared byte for byte.
const (
	MaxIDLen          = 128      // Account.ID
	MaxCustomerLen    = 128      // Account.Customer
	MaxProviderLen    = 64       // Account.Provider
	MaxCredentialLen  = 128      // Account.Credential
	MaxSettingsBytes  = 64 << 10 // Account.Settings
	MaxLabels         = 64       // entries in Account.Labels
	MaxLabelKeyLen    = 63
	MaxLabelValueLen  = 255
	MaxIntervals      = 64 // entries in Account.Intervals
	MaxPausedReason   = 1024
	MinInterval       = time.Second
	MaxIntervalLength = 31 * 24 * time.Hour
)

// Account is one cloud account of one customer: where its cloud is, how to
// reach it and how often to poll it. It holds no secret: Credential names
// the account's credential in the key manager (package km), where it is kept
// encrypted under (Customer, ID, Credential).
type Account struct {
	// ID identifies the account; it is the account every poll, launch, job
	// and stored resource of this account carries. Required: at most
	// MaxIDLen bytes of printable UTF-8 without leading or trailing space.
	ID string `json:"id"`
	// Customer is the tenant the account belongs to. Required, same rules.
	Customer string `json:"customer"`
	// Provider is the provider type that builds the account's cloud
	// provider: "sim", "vsphere" or a type the host registered. Empty means
	// the worker's own provider (worker.Config.Cloud), or pollers that bring
	// their own.
	Provider string `json:"provider,omitempty"`
	// Settings are the provider's settings (a JSON object: endpoint,
	// datacenter or region, launch placement). The provider type validates
	// them; they must not hold secrets, and a key that looks like one
	// (password, secret, token, private key) is refused.
	Settings json.RawMessage `json:"settings,omitempty"`
	// Credential is the name of the account's credential in the key
	// manager, e.g. "default". Empty means none.
	Credential string `json:"credential,omitempty"`
	// Paused stops the account's polls until it is resumed; PausedReason
	// says why.
	Paused       bool   `json:"paused,omitempty"`
	PausedReason string `json:"paused_reason,omitempty"`
	// Intervals overrides the poll interval of a kind for this account (e.g.
	// "firewall": 5s); kinds not listed keep their registered interval. Each
	// is between MinInterval and MaxIntervalLength. In JSON, durations are
	// strings such as "5s" or "1h".
	Intervals map[string]time.Duration `json:"-"`
	// Labels are the host's own key/value pairs (team, environment).
	Labels map[string]string `json:"labels,omitempty"`

	// Set by the registry; ignored by Put (except Revision, see Put).
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// Revision is 1 when the account is created and one more on every
	// write. A Put with a non-zero Revision replaces only that revision.
	Revision int64 `json:"revision,omitempty"`
	// DeletedAt is set on the record of a deleted account, which only
	// [Store.AccountChanges] returns.
	DeletedAt time.Time `json:"deleted_at,omitzero"`
}

// Deleted reports whether a is the record of a deleted account.
func (a Account) Deleted() bool { return !a.DeletedAt.IsZero() }

// Clone returns a deep copy of a.
func (a Account) Clone() Account {
	a.Settings = bytes.Clone(a.Settings)
	a.Intervals = maps.Clone(a.Intervals)
	a.Labels = maps.Clone(a.Labels)
	return a
}

// accountJSON is Account's JSON form: Intervals as duration strings.
type accountJSON struct {
	accountAlias
	Intervals map[string]string `json:"intervals,omitempty"`
}

type accountAlias Account

// MarshalJSON encodes a with its intervals as duration strings ("5s").
func (a Account) MarshalJSON() ([]byte, error) {
	j := accountJSON{accountAlias: accountAlias(a)}
	if len(a.Intervals) > 0 {
		j.Intervals = make(map[string]string, len(a.Intervals))
		for k, d := range a.Intervals {
			j.Intervals[k] = d.String()
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes an account; unknown fields are refused, and an
// interval that does not parse is an error naming its kind.
func (a *Account) UnmarshalJSON(b []byte) error {
	var j accountJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	out := Account(j.accountAlias)
	if len(j.Intervals) > 0 {
		out.Intervals = make(map[string]time.Duration, len(j.Intervals))
		for k, s := range j.Intervals {
			d, err := time.ParseDuration(s)
			if err != nil {
				return invalid("intervals."+k, s, "is not a duration such as \"5s\" or \"1h\"")
			}
			out.Intervals[k] = d
		}
	}
	*a = out
	return nil
}

// Validate checks a as Put would, and returns an error matching ErrInvalid
// that names the first bad field and its value.
func (a Account) Validate() error {
	if err := checkName("id", a.ID, MaxIDLen, true); err != nil {
		return err
	}
	if err := checkName("customer", a.Customer, MaxCustomerLen, true); err != nil {
		return err
	}
	if a.Provider != "" && !validToken(a.Provider, MaxProviderLen) {
		return invalid("provider", a.Provider, "must be a-z 0-9 . _ - (at most %d bytes), such as \"vsphere\"", MaxProviderLen)
	}
	if err := checkSettings(a.Settings); err != nil {
		return err
	}
	if err := checkName("credential", a.Credential, MaxCredentialLen, false); err != nil {
		return err
	}
	if len(a.PausedReason) > MaxPausedReason || !utf8.ValidString(a.PausedReason) {
		return invalid("paused_reason", a.PausedReason, "must be valid UTF-8 of at most %d bytes", MaxPausedReason)
	}
	if len(a.Intervals) > MaxIntervals {
		return invalid("intervals", fmt.Sprint(len(a.Intervals)), "has more than %d kinds", MaxIntervals)
	}
	for _, k := range slices.Sorted(maps.Keys(a.Intervals)) {
		if !validToken(k, MaxProviderLen) {
			return invalid("intervals", k, "is not a kind (a-z 0-9 . _ -)")
		}
		if d := a.Intervals[k]; d < MinInterval || d > MaxIntervalLength {
			return invalid("intervals."+k, d.String(), "must be between %v and %v", MinInterval, MaxIntervalLength)
		}
	}
	if len(a.Labels) > MaxLabels {
		return invalid("labels", fmt.Sprint(len(a.Labels)), "has more than %d labels", MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		if !labelKey.MatchString(k) {
			return invalid("labels", k, "is not a label key (1–%d of a-z 0-9 . _ / -, starting with a letter or digit)", MaxLabelKeyLen)
		}
		if v := a.Labels[k]; len(v) > MaxLabelValueLen || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return invalid("labels."+k, v, "must be printable UTF-8 of at most %d bytes", MaxLabelValueLen)
		}
	}
	return nil
}

var labelKey = regexp.MustCompile(`^[a-z0-9][a-z0-9._/-]{0,62}$`)

// checkName checks an identifier: printable UTF-8, no surrounding space.
func checkName(field, v string, maxLen int, required bool) error {
	switch {
	case v == "" && required:
		return invalid(field, v, "is required")
	case v == "":
		return nil
	case len(v) > maxLen:
		return invalid(field, v, "is %d bytes, at most %d", len(v), maxLen)
	case !utf8.ValidString(v):
		return invalid(field, v, "is not valid UTF-8")
	case strings.ContainsFunc(v, unicode.IsControl):
		return invalid(field, v, "contains a control character")
	case strings.TrimSpace(v) != v:
		return invalid(field, v, "has leading or trailing white space")
	}
	return nil
}

// validToken: a-z 0-9 . _ - , starting with a letter or digit.
func validToken(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// secretKey matches settings keys that name a secret.
var secretKey = regexp.MustCompile(`(?i)(^|[_.-])pass(wd)?$|password|passphrase|secret|token|private[_.-]?key|api[_.-]?key|access[_.-]?key|^credentials?$`)

// checkSettings: a JSON object, bounded, with no secret-looking key at its
// top level (nested maps are the provider's data, such as template names).
func checkSettings(raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	if len(raw) > MaxSettingsBytes {
		return invalid("settings", fmt.Sprintf("%d bytes", len(raw)), "is larger than %d bytes", MaxSettingsBytes)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return invalid("settings", string(raw), "is not valid JSON: %v", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return invalid("settings", string(raw), "must be a JSON object")
	}
	for _, k := range slices.Sorted(maps.Keys(v.(map[string]any))) {
		if secretKey.MatchString(k) {
			return invalid("settings."+k, "(not shown)", "looks like a secret: keep credentials in the key manager (km) and name them in credential")
		}
	}
	return nil
}

// ErrInvalid is matched by every validation error; *FieldError says which
// field.
var ErrInvalid = errors.New("accounts: invalid account")

// FieldError is a validation error: the field (its JSON name, with a path
// for nested keys), the value (shortened) and what is expected.
type FieldError struct {
	Field, Value, Problem string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("accounts: invalid account: %s %q %s", e.Field, e.Value, e.Problem)
}

// Is makes a *FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, value, problem string, args ...any) error {
	if len(value) > 64 {
		value = value[:61] + "..."
	}
	return &FieldError{Field: field, Value: strings.ToValidUTF8(value, "?"), Problem: fmt.Sprintf(problem, args...)}
}

package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/stratusworks/worker/internal/text"
)

// WireVersion is the version of the message format this package writes. A
// subscriber rejects (poisons) messages with a newer version than it knows.
const WireVersion = 1

// Metadata keys. The JSON body is the source of truth; the metadata copies
// let logs and middleware see what a message is without decoding it. On
// RabbitMQ a published action carries none of them as a header (every
// header costs the broker work on every message); in process the
// publisher sets the version and the type, and the [Subscriber] fills in
// all of them from the body before any middleware runs.
const (
	MetaVersion       = "worker_version"    // wire format version, "1"
	MetaType          = "action_type"       // Action.Type
	MetaCustomer      = "customer"          // Action.Customer
	MetaAccount       = "account"           // Action.Account
	MetaKey           = "idempotency_key"   // Action.Key
	MetaCorrelationID = "correlation_id"    // Action.CorrelationID (Watermill's own key)
	MetaAttempt       = "worker_attempt"    // delivery attempt of a retried action, "2", "3", …
	MetaReplayOf      = "worker_replay_of"  // set on a replayed poison action: the poison record id
	MetaNotBefore     = "worker_not_before" // RFC 3339 time before which a deferred retry should not run
	maxFieldLen       = 255                 // ID, Customer, Account, Resource, Key, CorrelationID
	maxTypeLen        = 128                 // Type
	defaultMaxPayload = 1 << 20             // Config.MaxPayloadBytes default
)

// Action is one unit of work on the queue: "poll", "server.launch", or a type
// the host defines. Publish fills ID, Key and CreatedAt when they are empty.
type Action struct {
	// ID identifies this message; a UUID by default.
	ID string `json:"id"`
	// Type selects the handler, e.g. "server.launch". Required: lower-case
	// letters, digits and . _ - ; at most 128 bytes.
	Type string `json:"type"`
	// Customer is the tenant the action is for (customer logs, credentials).
	Customer string `json:"customer,omitempty"`
	// Account is the cloud account the action touches.
	Account string `json:"account,omitempty"`
	// Resource is the provider's id of the resource the action is about, if any.
	Resource string `json:"resource,omitempty"`
	// Key is the idempotency key: two actions with the same Key must have one
	// effect. Defaults to ID.
	Key string `json:"key,omitempty"`
	// CorrelationID ties the action to the request or workflow that caused it.
	CorrelationID string `json:"correlation_id,omitempty"`
	// CreatedAt is when the action was first published (UTC).
	CreatedAt time.Time `json:"created_at"`
	// Payload is the type-specific body: any JSON value, or empty.
	Payload json.RawMessage `json:"payload,omitempty"`

	// Attempt is the delivery attempt as the subscriber counts it: 1 the first
	// time, more when retried. It is not part of the body.
	Attempt int `json:"-"`
}

// NewAction returns an action of the given type with payload marshalled to JSON
// (a nil payload leaves Payload empty), a fresh ID and CreatedAt set to now.
func NewAction(actionType string, payload any) (Action, error) {
	a := Action{ID: uuid.NewString(), Type: actionType, CreatedAt: time.Now().UTC()}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return Action{}, fmt.Errorf("%w: payload of %q does not marshal to JSON: %v", ErrInvalidAction, actionType, err)
		}
		a.Payload = b
	}
	a.Key = a.ID
	return a, a.Validate()
}

// Decode unmarshals the action's JSON payload into v.
func (a Action) Decode(v any) error {
	if len(a.Payload) == 0 {
		return fmt.Errorf("%w: action %s (%s) has no payload", ErrInvalidAction, a.ID, a.Type)
	}
	if err := json.Unmarshal(a.Payload, v); err != nil {
		return fmt.Errorf("%w: payload of action %s (%s): %v", ErrInvalidAction, a.ID, a.Type, err)
	}
	return nil
}

// Validate checks the action and returns a *[ValidationError] naming the first
// bad field. It does not fill defaults.
func (a Action) Validate() error {
	if err := a.validateFields(); err != nil {
		return err
	}
	if len(a.Payload) > 0 && !json.Valid(a.Payload) {
		return &ValidationError{Field: "Payload", Value: shorten(string(a.Payload)), Reason: "is not valid JSON"}
	}
	return nil
}

// validateFields is Validate without the payload check, for decoded actions
// whose payload the decoder has already checked.
func (a Action) validateFields() error {
	if a.Type == "" {
		return &ValidationError{Field: "Type", Reason: "is required"}
	}
	if !validType(a.Type) {
		return &ValidationError{Field: "Type", Value: shorten(a.Type), Reason: "must be 1-128 bytes of a-z 0-9 . _ - starting with a letter or digit"}
	}
	for _, f := range [...]struct{ name, v string }{
		{"ID", a.ID}, {"Customer", a.Customer}, {"Account", a.Account},
		{"Resource", a.Resource}, {"Key", a.Key}, {"CorrelationID", a.CorrelationID},
	} {
		if len(f.v) > maxFieldLen {
			return &ValidationError{Field: f.name, Value: shortenHeader(f.v), Reason: fmt.Sprintf("is %d bytes, longer than %d", len(f.v), maxFieldLen)}
		}
		if !utf8.ValidString(f.v) {
			return &ValidationError{Field: f.name, Value: shortenHeader(f.v), Reason: "is not valid UTF-8"}
		}
	}
	return nil
}

func validType(s string) bool {
	if len(s) == 0 || len(s) > maxTypeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// shorten is s cut for an error or a log line (text.Shorten).
func shorten(s string) string { return text.Shorten(s) }

// wireAction is the JSON body of a message.
type wireAction struct {
	V int `json:"v"`
	Action
}

// encode validates a (already defaulted) action and builds its message.
func encode(a Action, maxBytes int) (*message.Message, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(wireAction{V: WireVersion, Action: a})
	if err != nil {
		return nil, fmt.Errorf("%w: encode action %s: %v", ErrInvalidAction, a.ID, err)
	}
	if len(body) > maxBytes {
		return nil, fmt.Errorf("%w: action %s (%s) encodes to %d bytes, limit is %d (Config.MaxPayloadBytes)", ErrPayloadTooLarge, a.ID, a.Type, len(body), maxBytes)
	}
	m := message.NewMessage(a.ID, body)
	m.Metadata = message.Metadata{MetaVersion: strconv.Itoa(WireVersion), MetaType: a.Type}
	return m, nil
}

// sentAsHeader reports whether metadata key k goes on the RabbitMQ wire as a
// header. None of the copies of the body's fields does — version, type,
// customer, account, key, correlation id: the body says them all, and each
// header costs the broker time on every message (two headers cut RabbitMQ's
// confirmed persistent publishes by about 40% on the benchmark machine).
// What does travel is the worker's own state of a retried, parked or
// replayed action (MetaAttempt, MetaRetrySince, MetaNotBefore,
// MetaReplayOf, the poison reason) and any header a host's middleware set.
func sentAsHeader(k string) bool {
	switch k {
	case MetaVersion, MetaType, MetaCustomer, MetaAccount, MetaKey, MetaCorrelationID:
		return false
	}
	return true
}

// fillMetadata sets the metadata copies of the action's fields (version,
// type, customer, account, key, correlation id) from the body, so that
// middleware, logs and the poison and deferred stores see every action alike
// and see what the body says (a header that disagrees is overwritten: the
// body is the truth). A message whose body does not decode is left as it is:
// dispatch poisons it with the reason.
func fillMetadata(m *message.Message, maxBytes int) {
	a, err := decode(m, maxBytes)
	if err != nil {
		return
	}
	if m.Metadata == nil {
		m.Metadata = message.Metadata{}
	}
	for _, f := range [...]struct{ k, v string }{
		{MetaVersion, strconv.Itoa(WireVersion)}, {MetaType, a.Type}, {MetaCustomer, a.Customer},
		{MetaAccount, a.Account}, {MetaKey, a.Key}, {MetaCorrelationID, a.CorrelationID},
	} {
		if f.v != "" {
			m.Metadata[f.k] = f.v
		} else {
			delete(m.Metadata, f.k)
		}
	}
}

// decode turns a delivered message back into an Action. Every failure wraps
// ErrInvalidAction (or ErrPayloadTooLarge) and is permanent: retrying cannot fix it.
func decode(m *message.Message, maxBytes int) (Action, error) {
	if len(m.Payload) > maxBytes {
		return Action{}, fmt.Errorf("%w: message %s is %d bytes, limit is %d (Config.MaxPayloadBytes)", ErrPayloadTooLarge, m.UUID, len(m.Payload), maxBytes)
	}
	if len(bytes.TrimSpace(m.Payload)) == 0 {
		return Action{}, fmt.Errorf("%w: message %s has an empty body", ErrInvalidAction, m.UUID)
	}
	if !utf8.Valid(m.Payload) {
		return Action{}, fmt.Errorf("%w: message %s body is not valid UTF-8 (first bad byte at offset %d)", ErrInvalidAction, m.UUID, invalidUTF8At(m.Payload))
	}
	var w wireAction
	lone, err := unmarshalWire(m.Payload, &w)
	if err != nil {
		return Action{}, fmt.Errorf("%w: message %s body is not a JSON action: %v", ErrInvalidAction, m.UUID, err)
	}
	if lone >= 0 { // encoding/json would have made it U+FFFD without a word
		return Action{}, fmt.Errorf("%w: message %s body has an escaped lone UTF-16 surrogate at offset %d (not a Unicode character)", ErrInvalidAction, m.UUID, lone)
	}
	if w.V != WireVersion {
		return Action{}, fmt.Errorf("%w: message %s has wire version %d, this worker reads version %d", ErrInvalidAction, m.UUID, w.V, WireVersion)
	}
	if err := checkOwnHeaders(m, w.V, w.Type); err != nil {
		return Action{}, fmt.Errorf("%w: message %s: %v", ErrInvalidAction, m.UUID, err)
	}
	a := w.Action
	if a.ID == "" {
		a.ID = m.UUID
	}
	if a.Key == "" {
		a.Key = a.ID
	}
	// The payload is valid JSON: the whole body was checked while decoding.
	if err := a.validateFields(); err != nil {
		return Action{}, fmt.Errorf("message %s: %w", m.UUID, err)
	}
	a.Attempt = attemptOf(m)
	return a, nil
}

// checkOwnHeaders checks the metadata this package owns, where present; any
// other header (a foreign client's, the broker's own x-death) is left alone.
// The copies of the body's customer, account, key and correlation id are not
// checked: fillMetadata overwrites them from the body.
func checkOwnHeaders(m *message.Message, v int, typ string) error {
	if len(m.Metadata) == 0 {
		return nil
	}
	if h, ok := m.Metadata[MetaVersion]; ok && h != strconv.Itoa(v) {
		return fmt.Errorf("header %s %q does not match the body's wire version %d", MetaVersion, shortenHeader(h), v)
	}
	if h, ok := m.Metadata[MetaType]; ok && h != typ {
		return fmt.Errorf("header %s %q does not match the body's type %q", MetaType, shortenHeader(h), typ)
	}
	if h, ok := m.Metadata[MetaAttempt]; ok {
		if n, err := strconv.Atoi(h); err != nil || n < 1 {
			return fmt.Errorf("header %s %q is not a positive integer", MetaAttempt, shortenHeader(h))
		}
	}
	for _, k := range [...]string{MetaRetrySince, MetaNotBefore} {
		if h, ok := m.Metadata[k]; ok {
			if _, err := time.Parse(time.RFC3339Nano, h); err != nil {
				return fmt.Errorf("header %s %q is not an RFC 3339 time", k, shortenHeader(h))
			}
		}
	}
	if h, ok := m.Metadata[MetaReplayOf]; ok {
		if _, err := strconv.ParseInt(h, 10, 64); err != nil {
			return fmt.Errorf("header %s %q is not a poison record id", MetaReplayOf, shortenHeader(h))
		}
	}
	return nil
}

// shortenHeader makes a header value fit an error message: shortened, and
// valid UTF-8.
func shortenHeader(h string) string { return strings.ToValidUTF8(shorten(h), "\uFFFD") }

// invalidUTF8At returns the offset of the first byte of b that is not part of
// valid UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

func attemptOf(m *message.Message) int {
	v := m.Metadata.Get(MetaAttempt)
	if v == "" {
		return 1
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n
	}
	return 1
}

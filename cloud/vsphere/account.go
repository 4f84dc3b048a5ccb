package vsphere

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/km"
)

// CheckAccountSettings validates the settings of a "vsphere" account of
// the registry (see ParseSettings); errors match accounts.ErrInvalid.
func CheckAccountSettings(raw json.RawMessage) error {
	if _, err := ParseSettings(raw); err != nil {
		return fmt.Errorf("%w: %w", accounts.ErrInvalid, err)
	}
	return nil
}

// NewAccountProvider builds the provider of an account of the built-in
// provider type "vsphere" of the account registry (the worker registers it
// as "vsphere"). An account's Settings are [Settings] (no secret: ParseSettings
// refuses credential-like keys); its credential in km is a
// km.KindCloud credential whose Meta[km.MetaUser] is the vCenter user and
// whose km.FieldPassword field is the password. The provider logs in when
// the account is first used, logs out when it is replaced (the entry or the
// credential changed) or the account is deleted, and spans every
// datacenter of the vCenter unless the settings restrict it.
func NewAccountProvider(ctx context.Context, a accounts.Account, cred *km.Credential) (cloud.Provider, error) {
	s, err := ParseSettings(a.Settings)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", accounts.ErrInvalid, err)
	}
	if cred == nil {
		return nil, fmt.Errorf("%w: vsphere account %q names no credential (a km credential with Meta[%q] and a %q field)",
			cloud.ErrAuthentication, a.ID, km.MetaUser, km.FieldPassword)
	}
	user := cred.Meta[km.MetaUser]
	if user == "" {
		return nil, fmt.Errorf("%w: vsphere account %q: credential %q has no Meta[%q] (the vCenter user)",
			cloud.ErrAuthentication, a.ID, a.Credential, km.MetaUser)
	}
	var password Secret
	if err := cred.Field(km.FieldPassword).Use(func(b []byte) error {
		password = NewSecret(string(b))
		return nil
	}); err != nil || password.IsZero() {
		return nil, fmt.Errorf("%w: vsphere account %q: credential %q has no %q field",
			cloud.ErrAuthentication, a.ID, a.Credential, km.FieldPassword)
	}
	return New(ctx, s.Config(a.ID, user, password))
}

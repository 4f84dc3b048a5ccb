package vsphere

import "context"

// Internals for the tests in package vsphere_test.

const (
	KindLaunch    = kindLaunch
	KindTerminate = kindTerminate
)

var CompareIDs = compareIDs

// ExpireSession logs p's session out, as if vCenter had expired it.
func ExpireSession(ctx context.Context, p *Provider) error { return p.sm.Logout(ctx) }

package cloud

import (
	"context"
	"time"
)

// The Identity and Admin services after Dasein Cloud: SSL certificates, and
// the account's subscriptions and their invoices.

// Certificate is an SSL/TLS server certificate held by the cloud (for load
// balancers and CDN distributions). States: PENDING (awaiting validation),
// ACTIVE (issued), EXPIRED, REVOKED, ERROR.
type Certificate struct {
	ID       string        `json:"id"`
	Account  string        `json:"account"`
	Name     string        `json:"name"`
	Domain   string        `json:"domain"`
	SANs     []string      `json:"sans,omitempty"` // subject alternative names
	Issuer   string        `json:"issuer,omitempty"`
	NotAfter time.Time     `json:"not_after"`
	State    ResourceState `json:"state"`
}

// Certificates lists SSL certificates.
type Certificates interface {
	ListCertificates(ctx context.Context, account string, opts ListOptions) (Page[Certificate], error)
}

// Subscription is a plan the account pays for. States: ACTIVE, SUSPENDED,
// CANCELLED.
type Subscription struct {
	ID       string        `json:"id"`
	Account  string        `json:"account"`
	Name     string        `json:"name"`
	Plan     string        `json:"plan"`
	Quantity int           `json:"quantity"` // seats, units
	State    ResourceState `json:"state"`
}

// Invoice is a bill of a subscription for one period. States: OPEN, PAID,
// OVERDUE.
type Invoice struct {
	ID           string        `json:"id"`
	Account      string        `json:"account"`
	Subscription string        `json:"subscription"`
	Period       string        `json:"period"` // e.g. "2026-11"
	Amount       float64       `json:"amount"`
	Currency     string        `json:"currency"`
	State        ResourceState `json:"state"`
}

// Subscriptions lists the account's subscriptions and invoices.
type Subscriptions interface {
	ListSubscriptions(ctx context.Context, account string, opts ListOptions) (Page[Subscription], error)
	ListInvoices(ctx context.Context, account string, opts ListOptions) (Page[Invoice], error)
}

func (c Certificate) resourceID() string { return c.ID }
func (c Certificate) attributes() attrs {
	return attrs{"name": c.Name, "domain": c.Domain, "sans": sorted(c.SANs), "issuer": c.Issuer,
		"not_after": c.NotAfter, "state": c.State}
}

func (s Subscription) resourceID() string { return s.ID }
func (s Subscription) attributes() attrs {
	return attrs{"name": s.Name, "plan": s.Plan, "quantity": s.Quantity, "state": s.State}
}

func (i Invoice) resourceID() string { return i.ID }
func (i Invoice) attributes() attrs {
	return attrs{"subscription": i.Subscription, "period": i.Period, "amount": i.Amount, "currency": i.Currency, "state": i.State}
}

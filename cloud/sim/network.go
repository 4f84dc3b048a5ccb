package sim

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/stratusworks/worker/cloud"
)

type firewall struct {
	id, name string
	rules    []cloud.Rule
}

func (f *firewall) export(accountID string) cloud.Firewall {
	return cloud.Firewall{ID: f.id, Name: f.name, Account: accountID, Rules: slices.Clone(f.rules)}
}

// same reports whether two normalized rules allow the same traffic.
func same(a, b cloud.Rule) bool {
	return a.Direction == b.Direction && a.Protocol == b.Protocol &&
		a.FromPort == b.FromPort && a.ToPort == b.ToPort && a.CIDR == b.CIDR
}

func (f *firewall) match(r cloud.Rule) int {
	return slices.IndexFunc(f.rules, func(x cloud.Rule) bool { return same(x, r) })
}

// normalizeRule validates a rule and returns it in canonical form: Direction
// "" becomes ingress, Protocol lower case, CIDR as netip prints it. Errors
// match ErrInvalidRequest.
func normalizeRule(r cloud.Rule) (cloud.Rule, error) {
	bad := func(format string, args ...any) (cloud.Rule, error) {
		return cloud.Rule{}, fmt.Errorf("invalid rule: "+format+": %w", append(args, ErrInvalidRequest)...)
	}
	switch r.Direction {
	case "":
		r.Direction = cloud.Ingress
	case cloud.Ingress, cloud.Egress:
	default:
		return bad("direction %q is not %q or %q", r.Direction, cloud.Ingress, cloud.Egress)
	}
	r.Protocol = strings.ToLower(r.Protocol)
	switch r.Protocol {
	case "tcp", "udp":
		if r.FromPort < 0 || r.ToPort > 65535 || r.FromPort > r.ToPort {
			return bad("ports %d-%d: want 0 <= from <= to <= 65535", r.FromPort, r.ToPort)
		}
	case "icmp", "all":
		if r.FromPort != 0 || r.ToPort != 0 {
			return bad("protocol %q takes no ports, got %d-%d", r.Protocol, r.FromPort, r.ToPort)
		}
	case "":
		return bad("protocol is required (tcp, udp, icmp or all)")
	default:
		return bad("protocol %q is not tcp, udp, icmp or all", r.Protocol)
	}
	if r.CIDR == "" {
		return bad("CIDR is required")
	}
	p, err := netip.ParsePrefix(r.CIDR)
	if err != nil {
		return bad("CIDR %q: %v", r.CIDR, err)
	}
	if m := p.Masked(); m != p {
		return bad("CIDR %q has host bits set (did you mean %q?)", r.CIDR, m.String())
	}
	r.CIDR = p.String()
	return r, nil
}

func (a *account) firewall(id string) *firewall {
	i, ok := slices.BinarySearchFunc(a.firewalls, id, func(f *firewall, id string) int { return cmp.Compare(f.id, id) })
	if !ok {
		return nil
	}
	return a.firewalls[i]
}

// ListFirewalls returns one page of the account's firewalls in id order.
func (c *Cloud) ListFirewalls(ctx context.Context, accountID string, opts cloud.ListOptions) (cloud.FirewallPage, error) {
	a, _, err := c.begin(ctx, apiListFirewalls, accountID)
	if err != nil {
		return cloud.FirewallPage{}, err
	}
	size, after, err := c.pageArgs(apiListFirewalls, opts)
	if err != nil {
		return cloud.FirewallPage{}, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	i := 0
	if after != "" {
		i = sort.Search(len(a.firewalls), func(i int) bool { return a.firewalls[i].id > after })
	}
	end := min(i+size, len(a.firewalls))
	var page cloud.FirewallPage
	for _, f := range a.firewalls[i:end] {
		page.Firewalls = append(page.Firewalls, f.export(accountID))
	}
	if end < len(a.firewalls) {
		page.NextToken = encodeToken(a.firewalls[end-1].id)
	}
	return page, nil
}

// Authorize adds a rule to a firewall and returns it with its ID; a rule
// identical to an existing one (after normalization: Direction "" is
// ingress, Protocol is case-insensitive) returns the existing rule. Invalid
// rules fail with an error matching ErrInvalidRequest, an unknown firewall
// with one matching cloud.ErrNotFound.
func (c *Cloud) Authorize(ctx context.Context, accountID, firewallID string, r cloud.Rule) (cloud.Rule, error) {
	a, _, err := c.begin(ctx, apiAuthorize, accountID)
	if err != nil {
		return cloud.Rule{}, err
	}
	r, err = normalizeRule(r)
	if err != nil {
		return cloud.Rule{}, fmt.Errorf("sim: Authorize: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.firewall(firewallID)
	if f == nil {
		return cloud.Rule{}, fmt.Errorf("sim: Authorize: firewall %q in account %q: %w", firewallID, accountID, cloud.ErrNotFound)
	}
	if i := f.match(r); i >= 0 {
		return f.rules[i], nil
	}
	r.ID = newID("r-", &c.ruleSeq)
	f.rules = append(f.rules, r)
	return r, nil
}

// Revoke removes a rule from a firewall; an unknown rule is not an error, an
// unknown firewall is (matching cloud.ErrNotFound).
func (c *Cloud) Revoke(ctx context.Context, accountID, firewallID, ruleID string) error {
	a, _, err := c.begin(ctx, apiRevoke, accountID)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.firewall(firewallID)
	if f == nil {
		return fmt.Errorf("sim: Revoke: firewall %q in account %q: %w", firewallID, accountID, cloud.ErrNotFound)
	}
	f.rules = slices.DeleteFunc(f.rules, func(x cloud.Rule) bool { return x.ID == ruleID })
	return nil
}

// AddFirewall stores a firewall for seeding tests, creating the account if
// needed, and returns it as stored: ID (if empty), Name (the ID if empty),
// Account and rule IDs are filled, rules are validated and normalized, and
// duplicates dropped. An ID already in the account is an error.
func (c *Cloud) AddFirewall(accountID string, fw cloud.Firewall) (cloud.Firewall, error) {
	f := &firewall{id: fw.ID, name: fw.Name}
	for _, r := range fw.Rules {
		r, err := normalizeRule(r)
		if err != nil {
			return cloud.Firewall{}, fmt.Errorf("sim: AddFirewall: %w", err)
		}
		if f.match(r) >= 0 {
			continue
		}
		if r.ID == "" {
			r.ID = newID("r-", &c.ruleSeq)
		}
		f.rules = append(f.rules, r)
	}
	a, err := c.ensureAccount(accountID)
	if err != nil {
		return cloud.Firewall{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if f.id == "" {
		for f.id == "" || a.firewall(f.id) != nil {
			f.id = newID("fw-", &c.fwSeq)
		}
	} else if a.firewall(f.id) != nil {
		return cloud.Firewall{}, fmt.Errorf("sim: AddFirewall: firewall %q already exists in account %q: %w", f.id, accountID, ErrInvalidRequest)
	}
	if f.name == "" {
		f.name = f.id
	}
	i, _ := slices.BinarySearchFunc(a.firewalls, f.id, func(x *firewall, id string) int { return cmp.Compare(x.id, id) })
	a.firewalls = slices.Insert(a.firewalls, i, f)
	return f.export(accountID), nil
}

// Firewalls returns every firewall of the account, in id order.
func (c *Cloud) Firewalls(accountID string) []cloud.Firewall {
	a := c.lookup(accountID)
	if a == nil {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]cloud.Firewall, 0, len(a.firewalls))
	for _, f := range a.firewalls {
		out = append(out, f.export(accountID))
	}
	return out
}

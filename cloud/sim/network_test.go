package sim_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/sim"
)

func TestAuthorizeIdempotent(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	ctx := context.Background()
	fw, err := c.AddFirewall("acct", cloud.Firewall{Name: "web"})
	require.NoError(t, err)

	r, err := c.Authorize(ctx, "acct", fw.ID, cloud.Rule{Protocol: "tcp", FromPort: 443, ToPort: 443, CIDR: "0.0.0.0/0"})
	require.NoError(t, err)
	require.NotEmpty(t, r.ID)
	require.Equal(t, cloud.Ingress, r.Direction)

	same, err := c.Authorize(ctx, "acct", fw.ID, cloud.Rule{Direction: cloud.Ingress, Protocol: "TCP", FromPort: 443, ToPort: 443, CIDR: "0.0.0.0/0"})
	require.NoError(t, err)
	require.Equal(t, r, same, "an identical rule returns the existing one")

	egress, err := c.Authorize(ctx, "acct", fw.ID, cloud.Rule{Direction: cloud.Egress, Protocol: "tcp", FromPort: 443, ToPort: 443, CIDR: "0.0.0.0/0"})
	require.NoError(t, err)
	require.NotEqual(t, r.ID, egress.ID)
	v6, err := c.Authorize(ctx, "acct", fw.ID, cloud.Rule{Protocol: "all", CIDR: "2001:db8::/32"})
	require.NoError(t, err)
	require.Len(t, c.Firewalls("acct")[0].Rules, 3)

	require.NoError(t, c.Revoke(ctx, "acct", fw.ID, r.ID))
	require.NoError(t, c.Revoke(ctx, "acct", fw.ID, r.ID), "revoking twice is fine")
	require.NoError(t, c.Revoke(ctx, "acct", fw.ID, "r-never"))
	require.Equal(t, []cloud.Rule{egress, v6}, c.Firewalls("acct")[0].Rules)

	_, err = c.Authorize(ctx, "acct", "fw-missing", r)
	require.ErrorIs(t, err, cloud.ErrNotFound)
	require.ErrorContains(t, err, "fw-missing")
	require.ErrorIs(t, c.Revoke(ctx, "acct", "fw-missing", r.ID), cloud.ErrNotFound)
}

func TestAuthorizeValidation(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	fw, err := c.AddFirewall("acct", cloud.Firewall{})
	require.NoError(t, err)
	tests := []struct {
		name    string
		rule    cloud.Rule
		wantErr string // "" = valid
	}{
		{"ValidTCPRange", cloud.Rule{Protocol: "tcp", FromPort: 8000, ToPort: 8080, CIDR: "10.0.0.0/8"}, ""},
		{"ValidUDPAllPorts", cloud.Rule{Protocol: "udp", FromPort: 0, ToPort: 65535, CIDR: "192.168.1.7/32"}, ""},
		{"ValidICMP", cloud.Rule{Direction: cloud.Egress, Protocol: "icmp", CIDR: "::/0"}, ""},
		{"BadDirection", cloud.Rule{Direction: "sideways", Protocol: "tcp", FromPort: 1, ToPort: 1, CIDR: "10.0.0.0/8"}, "direction"},
		{"MissingProtocol", cloud.Rule{FromPort: 1, ToPort: 1, CIDR: "10.0.0.0/8"}, "protocol is required"},
		{"UnknownProtocol", cloud.Rule{Protocol: "sctp", FromPort: 1, ToPort: 1, CIDR: "10.0.0.0/8"}, "sctp"},
		{"PortsReversed", cloud.Rule{Protocol: "tcp", FromPort: 90, ToPort: 80, CIDR: "10.0.0.0/8"}, "ports 90-80"},
		{"PortTooHigh", cloud.Rule{Protocol: "tcp", FromPort: 1, ToPort: 70000, CIDR: "10.0.0.0/8"}, "65535"},
		{"NegativePort", cloud.Rule{Protocol: "udp", FromPort: -1, ToPort: 10, CIDR: "10.0.0.0/8"}, "ports -1-10"},
		{"PortsOnICMP", cloud.Rule{Protocol: "icmp", FromPort: 8, ToPort: 0, CIDR: "10.0.0.0/8"}, "takes no ports"},
		{"MissingCIDR", cloud.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22}, "CIDR is required"},
		{"BadCIDR", cloud.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.300/8"}, "10.0.0.300/8"},
		{"BareAddress", cloud.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.1"}, "10.0.0.1"},
		{"HostBitsSet", cloud.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.1.2.3/8"}, `did you mean "10.0.0.0/8"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := c.Authorize(context.Background(), "acct", fw.ID, tt.rule)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NotEmpty(t, r.ID)
				return
			}
			require.ErrorIs(t, err, sim.ErrInvalidRequest)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestAddFirewall(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	rule := cloud.Rule{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.0/8"}
	fw, err := c.AddFirewall("acct", cloud.Firewall{Name: "ssh", Rules: []cloud.Rule{rule, rule}})
	require.NoError(t, err)
	require.Len(t, fw.Rules, 1, "duplicates dropped")
	require.Equal(t, "acct", fw.Account)

	fw.Rules[0].CIDR = "mutated" // a copy
	require.Equal(t, "10.0.0.0/8", c.Firewalls("acct")[0].Rules[0].CIDR)

	_, err = c.AddFirewall("acct", cloud.Firewall{ID: fw.ID})
	require.ErrorIs(t, err, sim.ErrInvalidRequest)
	_, err = c.AddFirewall("acct", cloud.Firewall{Rules: []cloud.Rule{{Protocol: "tcp"}}})
	require.ErrorIs(t, err, sim.ErrInvalidRequest)
}

func TestListFirewallsPagination(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	var want []string
	for range 25 {
		fw, err := c.AddFirewall("acct", cloud.Firewall{})
		require.NoError(t, err)
		want = append(want, fw.ID)
	}
	var got []string
	opts := cloud.ListOptions{PageSize: 10}
	pages := 0
	for {
		page, err := c.ListFirewalls(context.Background(), "acct", opts)
		require.NoError(t, err)
		pages++
		for _, f := range page.Firewalls {
			got = append(got, f.ID)
		}
		if opts.PageToken = page.NextToken; opts.PageToken == "" {
			break
		}
	}
	require.Equal(t, want, got)
	require.Equal(t, 3, pages)
}

func TestBudgets(t *testing.T) {
	t.Parallel()
	c, _ := setup(t, sim.Config{})
	b, err := c.SetBudget("acct", cloud.Budget{Name: "ops", Limit: 1000, Spent: 10, Currency: "EUR", Period: "2026-03"})
	require.NoError(t, err)
	require.NotEmpty(t, b.ID)
	require.Equal(t, "acct", b.Account)
	b.Spent = 20
	_, err = c.SetBudget("acct", b) // replaces
	require.NoError(t, err)

	got, err := c.ListBudgets(context.Background(), "acct")
	require.NoError(t, err)
	require.Equal(t, []cloud.Budget{b}, got)
	got[0].Spent = 99
	require.Equal(t, 20.0, c.Budgets("acct")[0].Spent)
}

func TestDrift(t *testing.T) {
	t.Parallel()
	build := func(seedValue int64) *sim.Cloud {
		c, _ := setup(t, sim.Config{Seed: seedValue})
		for _, a := range []string{"acct", "b"} {
			ids := seed(t, c, a, 30)
			for _, id := range ids[:10] {
				require.NoError(t, c.SetServerState(a, id, cloud.StateStopped))
			}
			_, err := c.AddFirewall(a, cloud.Firewall{Rules: []cloud.Rule{{Protocol: "tcp", FromPort: 22, ToPort: 22, CIDR: "10.0.0.0/8"}}})
			require.NoError(t, err)
			_, err = c.SetBudget(a, cloud.Budget{Limit: 500})
			require.NoError(t, err)
		}
		return c
	}
	state := func(c *sim.Cloud) []any {
		var out []any
		for _, a := range c.Accounts() {
			out = append(out, c.Servers(a), c.Firewalls(a), c.Budgets(a))
		}
		return out
	}
	a, b, other := build(7), build(7), build(8)
	before := state(a)
	logA := a.Drift(100)
	require.Len(t, logA, 100)
	require.Equal(t, logA, b.Drift(100), "same seed, same drift")
	require.Equal(t, state(a), state(b))
	require.NotEqual(t, before, state(a), "drift changes things")
	require.NotEqual(t, logA, other.Drift(100), "another seed drifts otherwise")

	kinds := map[string]bool{}
	for _, line := range logA {
		for _, k := range []string{"added", "removed", "RUNNING -> STOPPED", "STOPPED -> RUNNING", "spent"} {
			if strings.Contains(line, k) {
				kinds[k] = true
			}
		}
	}
	require.Len(t, kinds, 5, "every kind of change happens: %v", logA)

	empty, _ := setup(t, sim.Config{})
	require.Empty(t, empty.Drift(10), "nothing to change in an empty account")
}

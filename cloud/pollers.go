package cloud

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/stratusworks/worker/state"
)

// Pollers for the standard services. Each has the method set of the root
// package's Poller (Kind, and Poll page by page), so it can be registered with
// a Worker as is.

// ServerPoller lists servers with full details; kind "server". Its last page
// is Complete, so servers missing from the listing are detected as deleted.
type ServerPoller struct {
	Compute  Compute
	PageSize int // 0 means the provider's default
}

// Kind returns "server".
func (ServerPoller) Kind() string { return "server" }

// Poll reads one page of servers.
func (p ServerPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	page, err := p.Compute.ListServers(ctx, t.Account, ListOptions{PageToken: cursor, PageSize: p.PageSize})
	if err != nil {
		return state.Snapshot{}, "", err
	}
	snap := state.Snapshot{Complete: page.NextToken == "", Observations: make([]state.Observation, 0, len(page.Servers))}
	for _, s := range page.Servers {
		attrs, err := json.Marshal(serverAttrs(s))
		if err != nil {
			return state.Snapshot{}, "", fmt.Errorf("encode server %s: %w", s.ID, err)
		}
		snap.Observations = append(snap.Observations, state.Observation{Kind: "server", ID: s.ID, Attributes: attrs})
	}
	return snap, page.NextToken, nil
}

// serverAttrs is the stored shape of a server: everything but its id.
func serverAttrs(s Server) map[string]any {
	m := map[string]any{"name": s.Name, "state": s.State, "launched_at": s.LaunchedAt}
	for k, v := range map[string]string{"region": s.Region, "image": s.Image, "size": s.Size} {
		if v != "" {
			m[k] = v
		}
	}
	if len(s.Tags) > 0 {
		m["tags"] = s.Tags
	}
	if len(s.PrivateIPs) > 0 {
		m["private_ips"] = s.PrivateIPs
	}
	if len(s.PublicIPs) > 0 {
		m["public_ips"] = s.PublicIPs
	}
	return m
}

// ServerStatusPoller reads only ids and states, cheaply, for frequent polls;
// kind "server-status". Its observations are partial updates of kind "server"
// (only the "state" attribute), so they never make a server flap between its
// full and status-only shapes, and it never detects deletions.
type ServerStatusPoller struct {
	Compute  Compute
	PageSize int
}

// Kind returns "server-status".
func (ServerStatusPoller) Kind() string { return "server-status" }

// Poll reads one page of server states.
func (p ServerStatusPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	page, err := p.Compute.ListServerStatus(ctx, t.Account, ListOptions{PageToken: cursor, PageSize: p.PageSize})
	if err != nil {
		return state.Snapshot{}, "", err
	}
	snap := state.Snapshot{Observations: make([]state.Observation, 0, len(page.Statuses))}
	for _, s := range page.Statuses {
		attrs, _ := json.Marshal(map[string]ServerState{"state": s.State})
		snap.Observations = append(snap.Observations, state.Observation{Kind: "server", ID: s.ID, Attributes: attrs, Partial: true})
	}
	return snap, page.NextToken, nil
}

// FirewallPoller lists firewalls and their rules; kind "firewall".
type FirewallPoller struct {
	Network  Network
	PageSize int
}

// Kind returns "firewall".
func (FirewallPoller) Kind() string { return "firewall" }

// Poll reads one page of firewalls.
func (p FirewallPoller) Poll(ctx context.Context, t state.Target, cursor string) (state.Snapshot, string, error) {
	page, err := p.Network.ListFirewalls(ctx, t.Account, ListOptions{PageToken: cursor, PageSize: p.PageSize})
	if err != nil {
		return state.Snapshot{}, "", err
	}
	snap := state.Snapshot{Complete: page.NextToken == ""}
	for _, f := range page.Firewalls {
		attrs, err := json.Marshal(map[string]any{"name": f.Name, "rules": f.Rules})
		if err != nil {
			return state.Snapshot{}, "", fmt.Errorf("encode firewall %s: %w", f.ID, err)
		}
		snap.Observations = append(snap.Observations, state.Observation{Kind: "firewall", ID: f.ID, Attributes: attrs})
	}
	return snap, page.NextToken, nil
}

// BudgetPoller reads budgets; kind "budget". Budgets come in one page.
type BudgetPoller struct{ Billing Billing }

// Kind returns "budget".
func (BudgetPoller) Kind() string { return "budget" }

// Poll reads the account's budgets.
func (p BudgetPoller) Poll(ctx context.Context, t state.Target, _ string) (state.Snapshot, string, error) {
	bs, err := p.Billing.ListBudgets(ctx, t.Account)
	if err != nil {
		return state.Snapshot{}, "", err
	}
	snap := state.Snapshot{Complete: true}
	for _, b := range bs {
		attrs, err := json.Marshal(map[string]any{"name": b.Name, "limit": b.Limit, "spent": b.Spent, "currency": b.Currency, "period": b.Period})
		if err != nil {
			return state.Snapshot{}, "", err
		}
		snap.Observations = append(snap.Observations, state.Observation{Kind: "budget", ID: b.ID, Attributes: attrs})
	}
	return snap, "", nil
}

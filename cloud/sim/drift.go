package sim

import (
	"fmt"
	"math"

	"github.com/stratusworks/worker/cloud"
)

// The kinds of random change Drift makes.
const (
	driftAddRule = iota
	driftRemoveRule
	driftStopServer
	driftStartServer
	driftSpend
	numDrifts
)

// Drift makes n random changes, as the world outside the SDK would: a
// firewall rule added or removed, a RUNNING server stopped, a STOPPED one
// started, a budget's spending increased, and, for each kind beyond those
// that the account has (see [Cloud.Populate]), a resource created, changed
// (a volume attached, a DNS record's TTL, an invoice paid, …) or deleted.
// Each change picks an account and a kind of change at random; when that kind has nothing to act on in the
// account, the next kind is tried. The changes depend only on the seed, the
// cloud's contents and the clock, so the same seeding and calls drift the
// same way. Drift returns a description of each change made.
func (c *Cloud) Drift(n int) []string {
	c.rngMu.Lock()
	defer c.rngMu.Unlock()
	ids := c.Accounts()
	if len(ids) == 0 {
		return nil
	}
	now := c.now()
	var log []string
	for range n {
		a := c.lookup(ids[c.rng.IntN(len(ids))])
		changes := c.driftKinds(a)
		first := c.rng.IntN(len(changes))
		for k := range changes {
			if msg := c.drift(a, changes[(first+k)%len(changes)], now); msg != "" {
				log = append(log, "account "+a.id+": "+msg)
				break
			}
		}
	}
	return log
}

// Changes of the kinds beyond servers, firewalls and budgets: numDrifts +
// 3×kindIdx + one of these.
const (
	driftCreate = iota
	driftUpdate
	driftDelete
	driftsPerKind
)

// driftKinds returns the kinds of change Drift may make in the account: the
// five of servers, firewalls and budgets, and three for each other kind the
// account has. The caller holds c.rngMu.
func (c *Cloud) driftKinds(a *account) []int {
	out := make([]int, 0, numDrifts+driftsPerKind*int(numKinds))
	for k := range numDrifts {
		out = append(out, k)
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, k := range kindSpecs {
		if _, has := k.size(a); has {
			for d := range driftsPerKind {
				out = append(out, numDrifts+driftsPerKind*int(k.kind())+d)
			}
		}
	}
	return out
}

// drift makes one change of the kind and describes it, or returns "" if the
// account has nothing to change. The caller holds c.rngMu.
func (c *Cloud) drift(a *account, kind int, now int64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if kind >= numDrifts {
		k := kindSpecs[(kind-numDrifts)/driftsPerKind]
		switch (kind - numDrifts) % driftsPerKind {
		case driftCreate:
			return k.driftCreate(c, a, c.rng)
		case driftUpdate:
			return k.driftUpdate(a, c.rng)
		default:
			return k.driftDelete(a, c.rng)
		}
	}
	switch kind {
	case driftAddRule:
		if len(a.firewalls) == 0 {
			return ""
		}
		f := a.firewalls[c.rng.IntN(len(a.firewalls))]
		port := 1024 + c.rng.IntN(64511)
		r := cloud.Rule{
			Direction: cloud.Ingress, Protocol: "tcp", FromPort: port, ToPort: port,
			CIDR: fmt.Sprintf("10.%d.%d.0/24", c.rng.IntN(256), c.rng.IntN(256)),
		}
		if f.match(r) >= 0 {
			return ""
		}
		r.ID = newID("r-", &c.ruleSeq)
		f.rules = append(f.rules, r)
		return fmt.Sprintf("firewall %s: rule %s added (tcp %d from %s)", f.id, r.ID, port, r.CIDR)
	case driftRemoveRule:
		var with []*firewall
		for _, f := range a.firewalls {
			if len(f.rules) > 0 {
				with = append(with, f)
			}
		}
		if len(with) == 0 {
			return ""
		}
		f := with[c.rng.IntN(len(with))]
		i := c.rng.IntN(len(f.rules))
		id := f.rules[i].ID
		f.rules = append(f.rules[:i], f.rules[i+1:]...)
		return fmt.Sprintf("firewall %s: rule %s removed", f.id, id)
	case driftStopServer, driftStartServer:
		from, to := cloud.StateRunning, cloud.StateStopped
		if kind == driftStartServer {
			from, to = to, from
		}
		if len(a.servers) == 0 {
			return ""
		}
		start := c.rng.IntN(len(a.servers))
		for k := range a.servers {
			s := &a.servers[(start+k)%len(a.servers)]
			if c.gone(s, now) || c.stateOf(s, now) != from {
				continue
			}
			c.settle(s, now)
			c.setState(a, s, to, now)
			return fmt.Sprintf("server %s: %s -> %s", s.id, from, to)
		}
		return ""
	case driftSpend:
		if len(a.budgets) == 0 {
			return ""
		}
		b := &a.budgets[c.rng.IntN(len(a.budgets))]
		spend := math.Round(c.rng.Float64()*10000) / 100
		b.Spent = math.Round((b.Spent+spend)*100) / 100
		return fmt.Sprintf("budget %s: spent %.2f more (%.2f)", b.ID, spend, b.Spent)
	}
	return ""
}

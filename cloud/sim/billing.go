package sim

import (
	"cmp"
	"context"
	"slices"

	"github.com/stratusworks/worker/cloud"
)

// ListBudgets returns the account's budgets in id order.
func (c *Cloud) ListBudgets(ctx context.Context, accountID string) ([]cloud.Budget, error) {
	a, _, err := c.begin(ctx, apiListBudgets, accountID)
	if err != nil {
		return nil, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.Clone(a.budgets), nil
}

// SetBudget stores a budget (replacing the one with the same ID) for seeding
// tests, creating the account if needed, and returns it as stored with ID
// (if empty) and Account filled.
func (c *Cloud) SetBudget(accountID string, b cloud.Budget) (cloud.Budget, error) {
	a, err := c.ensureAccount(accountID)
	if err != nil {
		return cloud.Budget{}, err
	}
	b.Account = accountID
	a.mu.Lock()
	defer a.mu.Unlock()
	if b.ID == "" {
		b.ID = newID("b-", &c.budgetSeq)
	}
	i, ok := slices.BinarySearchFunc(a.budgets, b.ID, func(x cloud.Budget, id string) int { return cmp.Compare(x.ID, id) })
	if ok {
		a.budgets[i] = b
	} else {
		a.budgets = slices.Insert(a.budgets, i, b)
	}
	return b, nil
}

// Budgets returns the account's budgets, in id order.
func (c *Cloud) Budgets(accountID string) []cloud.Budget {
	a := c.lookup(accountID)
	if a == nil {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.Clone(a.budgets)
}

// Package cloud is the provider abstraction pollers and handlers talk to,
// modelled on Dasein Cloud: a [Provider] offers services — [Compute] (servers),
// [Network] (firewalls and their rules), [Billing] (budgets) and [Operations]
// (asynchronous jobs) — and a provider that lacks one answers with
// [ErrNotSupported].
//
// Listings come in pages ([ListOptions], NextToken) so large accounts are
// never held whole in memory, and Compute has a status-only listing for cheap,
// frequent polls.
//
// Errors follow one taxonomy so callers can branch without knowing the
// provider: [*ThrottledError] (with RetryAfter), [ErrNotFound],
// [ErrAuthentication], [ErrCapacity], [ErrQuota], [ErrCommunication],
// [ErrNotSupported]. [IsTransient] says whether retrying the same call can help.
//
// Implementations: package cloud/sim (an in-memory simulated cloud for tests,
// examples and benchmarks) and cloud/vsphere (VMware vSphere through govmomi).
package cloud

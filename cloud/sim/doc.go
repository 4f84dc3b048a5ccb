// Package sim is an in-memory simulated cloud implementing [cloud.Provider],
// for tests, examples and benchmarks of the SDK.
//
// It behaves like a real cloud where callers can get it wrong: launches are
// asynchronous (PENDING, then RUNNING after [Config.LaunchDelay]; the
// returned [cloud.Operation] succeeds then), terminations too (STOPPING,
// TERMINATED, then gone), new servers are missing from listings for
// [Config.ConsistencyDelay] (eventual consistency), listings are paginated
// with opaque tokens that stay valid while servers come and go, every API has
// a per-account token bucket ([Config.RateLimits]) answering with
// [*cloud.ThrottledError], and faults can be injected: a random fraction of
// failures ([Faults]), the next call of an API ([Cloud.FailNext]) or a whole
// account ([Cloud.SetAccountDown]).
//
// Nothing runs in the background: every state is computed from the injected
// clock ([Config.Now]) when it is read, so a test moves time with a
// [FakeClock] instead of sleeping, and the same [Config.Seed] gives the same
// random behaviour ([Cloud.Drift], [Faults.ErrorRate]).
//
// Tests seed the cloud with [Cloud.AddAccount], [Cloud.AddServer],
// [Cloud.AddFirewall] and [Cloud.SetBudget], and inspect it with
// [Cloud.Servers] (the truth, without the consistency delay) and
// [Cloud.Calls] (how many calls an API received). Every value returned is a
// copy: changing it never changes the cloud.
//
// Every optional service of package cloud is simulated too (regions and
// data centers, images, volumes, snapshots, virtual networks, IP addresses,
// load balancers, DNS zones and records, VPN gateways, databases, CDN
// distributions, certificates, subscriptions and invoices), with the same
// paging, rate limits, faults and [Config.Disable] by API and service name.
// An account gets resources of those kinds from [Config.Resources] or
// [Cloud.Populate] (deterministic, from the seed and the account id), or one
// by one with the generic [Put], and loses them with [Remove]; [Resources]
// reads them. Drift creates, changes and deletes resources of the kinds an
// account has, and leaves the others alone.
//
// Calls naming an account that was never created fail with an error matching
// [cloud.ErrNotFound], as a real cloud rejects an account it does not know
// (the seeding methods create accounts). Malformed requests fail with an
// error matching [ErrInvalidRequest].
package sim

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
// [ErrNotSupported] (as a [*NotSupportedError] naming provider and
// service). [IsTransient] says whether retrying the same call can help.
//
// # Optional services
//
// The cloud-side kinds beyond servers, firewalls and budgets are reached
// through optional services, grouped after Dasein Cloud:
//
//   - DataCenters: [DataCenters] (regions, data centers)
//   - Compute+: [Images], [Volumes], [Snapshots]
//   - Network+: [Networks] (virtual networks), [Addresses], [LoadBalancers],
//     [DNS] (zones and records), [VPNs] (VPN gateways)
//   - Platform: [Databases] (relational database instances), [CDN]
//     (distributions)
//   - Identity and Admin: [Certificates] (SSL), [Subscriptions]
//     (subscriptions and invoices)
//   - Monitoring: [ServerAnalytics] (the servers' CPU, memory, disk and
//     network usage, as [UsageSample] time series)
//
// [Provider] is unchanged, so every provider written before them still
// compiles. A provider offers a service by having its accessor, named and
// shaped like the four of Provider: Volumes() (Volumes, error), DNS() (DNS,
// error), … (the interfaces [VolumesProvider], [DNSProvider], …). Callers
// reach a service with its helper, which returns it, or a
// [*NotSupportedError] when the provider has no accessor; an accessor may
// itself answer ErrNotSupported (a cloud that has the code but not the
// service in this account or region):
//
//	dns, err := cloud.DNSOf(p)
//	if errors.Is(err, cloud.ErrNotSupported) { … }
//
// Every listing is paged: ListOptions in, a [Page] (Items, NextToken) out.
// Volumes, snapshots, load balancers and databases also have a status-only
// listing ([ResourceStatus]: id and state), cheap enough to poll often.
//
// # Pollers and their kinds
//
// Each kind has a poller (VolumePoller, DNSRecordPoller, …) with the method
// set of the root package's Poller and a default interval (the Interval…
// constants, [DefaultInterval]) fitted to how fast the kind changes.
// [StandardPollers] returns one for every kind a provider offers, with its
// default interval, for a host to register in a loop:
//
//	pollers, err := cloud.StandardPollers(p)
//	for _, s := range pollers {
//		err = w.Register(s.Poller, s.Interval)
//	}
//
// A full listing's last page is complete, so a resource missing from it is
// detected as deleted. A status-only kind saves partial observations
// ({"state": …}) of its full kind and never detects deletions. Observations
// are identified by the provider's id; attributes are the resource without
// its id and account, with empty values left out and unordered lists sorted,
// and hold no time that changes from poll to poll, so an unchanged resource
// saves as unchanged and writes nothing. The vsphere column says which kinds
// package cloud/vsphere offers; it answers [*NotSupportedError] for the others.
//
//	kind                  service        vsphere  default  status-only  attributes
//	server                Compute        yes      5m       (below)      name, state, launched_at, region, image, size, tags, private_ips, public_ips
//	server-status         Compute        yes      1m       yes          state (of kind server)
//	firewall              Network        -        5m       no           name, rules
//	budget                Billing        -        1h       no           name, limit, spent, currency, period
//	region                DataCenters    yes      24h      no           name, jurisdiction, active
//	datacenter            DataCenters    yes      24h      no           name, region, active
//	image                 Images         yes      6h       no           name, platform, architecture, state, public, created_at
//	volume                Volumes        yes      15m      (below)      name, datacenter, datastore, size_gb, type, state, server, tags
//	volume-status         Volumes        yes      2m       yes          state (of kind volume)
//	snapshot              Snapshots      yes      30m      (below)      name, volume, server, parent, size_gb, state, created_at
//	snapshot-status       Snapshots      yes      5m       yes          state (of kind snapshot)
//	network               Networks       yes      30m      no           name, cidr, region, state, tags
//	address               Addresses      yes      5m       no           address, version, region, server, load_balancer
//	load-balancer         LoadBalancers  -        5m       (below)      name, address, region, state, listeners (by port), servers (sorted)
//	load-balancer-status  LoadBalancers  -        1m       yes          state (of kind load-balancer)
//	dns-zone              DNS            -        1h       no           domain, public, name_servers (sorted)
//	dns-record            DNS            -        15m      no           zone, name, type, ttl, values (sorted)
//	vpn-gateway           VPNs           -        15m      no           name, network, protocol, public_ip, state
//	database              Databases      -        15m      (below)      name, engine, engine_version, size, storage_gb, highly_available, endpoint, state
//	database-status       Databases      -        2m       yes          state (of kind database)
//	cdn-distribution      CDN            -        30m      no           name, origin, domain_name, aliases (sorted), state
//	certificate           Certificates   -        6h       no           name, domain, sans (sorted), issuer, not_after, state
//	subscription          Subscriptions  -        6h       no           name, plan, quantity, state
//	invoice               Subscriptions  -        6h       no           subscription, period, amount, currency, state
//	server-analytics      ServerAnalytics yes    5m       (samples)    none: usage samples, appended to the analytics database
//
// States of the kinds beyond servers are [ResourceState] values; each type's
// doc lists those it takes.
//
// The server-analytics kind is not state: [ServerAnalyticsPoller] returns
// snapshots with Samples (cpu and memory percent, disk and network bytes per
// second per server, taken in the last ten minutes by the cloud's clock)
// and no observations, which the worker appends to the analytics database
// (duplicates dropped, hourly rollups kept, both pruned after their
// retention) without change detection or events.
//
// Implementations: package cloud/sim (an in-memory simulated cloud for tests,
// examples and benchmarks, with every service above) and cloud/vsphere
// (VMware vSphere through govmomi: the kinds marked "yes" in the vsphere
// column; its package documentation says what each maps to).
package cloud

// Package vsphere is a [cloud.Provider] for VMware vSphere, built on
// github.com/vmware/govmomi and tested against govmomi's vCenter simulator
// (vcsim).
//
// A [Provider] serves one account: one vCenter, one login, and every
// datacenter of that vCenter (or those [Config].Datacenter or
// Config.Datacenters name). [New] validates the [Config], logs in and
// resolves the datacenters; the launch placement (folder, resource pool,
// datastore, launch datacenter) is resolved at the first launch, so a
// provider that only polls never fails because of it. The Provider keeps
// its one session, logs in again (once per call) when vCenter reports it
// expired, and logs out on [Provider.Close].
//
// # Mapping
//
//	cloud                         vSphere
//	-----------------------------------------------------------------------
//	account                       one vCenter connection (Config.Account),
//	                              covering all its datacenters by default
//	region (Server.Region)        the name of the VM's datacenter; the
//	                              server poller stores it as the "region"
//	                              attribute
//	server                        a virtual machine that is not a template
//	server id                     the VM's managed object reference value
//	                              ("vm-42"): stable for the VM's life,
//	                              unique in the vCenter, and usable without a
//	                              search; it changes only if the VM is
//	                              unregistered and registered again
//	image (LaunchRequest.Image)   a template VM (Config.Templates, or a
//	                              template of that name)
//	size                          CPUs and memory (Config.Sizes)
//	launch                        CloneVM_Task into Config.Folder and
//	                              Config.ResourcePool of the launch
//	                              datacenter, powered on
//	terminate                     PowerOffVM_Task (if on), then Destroy_Task
//	operation id                  the task's reference value ("task-17")
//	tags                          extraConfig key "stratusworks.tags" (JSON),
//	                              written in the clone's config spec, mirrored
//	                              into custom attributes "stratusworks.<key>"
//	RUNNING / STOPPED             poweredOn / poweredOff or suspended
//	PENDING / STOPPING            a launch or terminate this process started
//	                              and has not seen finish
//	UNKNOWN                       host disconnected, VM orphaned or inaccessible
//	public / private IPs          guest.ipAddress (needs VMware Tools),
//	                              sorted by whether the address is private
//	Network (firewalls)           not supported: needs NSX
//	Billing (budgets)             not supported: needs Aria Operations
//	ServerAnalytics (usage)       the performance manager's realtime (20s)
//	                              counters of powered-on VMs: cpu.usage,
//	                              mem.usage, disk.read/write,
//	                              net.received/transmitted (aggregates);
//	                              one QueryPerf per page of VMs
//
// The optional services of package cloud (see its table of kinds): vSphere
// has six of them; the Provider has no accessor for the others (load
// balancers, DNS, VPNs, databases, CDN, certificates, subscriptions), so
// cloud's helpers answer *cloud.NotSupportedError for them.
//
//	cloud kind                    vSphere
//	-----------------------------------------------------------------------
//	region                        a datacenter: id its reference value
//	                              ("datacenter-3"), name its name (a
//	                              server's Region), always active
//	datacenter                    a cluster or standalone host (compute
//	                              resource: "domain-c7"), region its
//	                              datacenter's id, active while it has an
//	                              effective host
//	image                         a template VM: id its VM id (kept when a
//	                              VM is marked a template and back),
//	                              platform and architecture from its guest
//	                              OS id, never public
//	volume (+ status)             a virtual disk of a server: id
//	                              "vm-42/2000" (VM id / device key),
//	                              name its label, datastore, size_gb
//	                              (rounded up), type thin, thick,
//	                              eager-zeroed-thick, rdm or sparse, state
//	                              IN_USE, server the VM; no datacenter (a
//	                              datastore may serve several clusters)
//	snapshot (+ status)           a node of a VM's snapshot tree: id
//	                              "snapshot-17", server the VM, parent the
//	                              snapshot it was taken after, size_gb
//	                              of its own files (from the VM's file
//	                              layout), AVAILABLE, created_at; no
//	                              volume (it copies every disk)
//	network                       a standard or distributed port group or
//	                              an opaque (NSX) network, not a switch's
//	                              uplink port group: region its
//	                              datacenter's name, ERROR while vCenter
//	                              rates it red; no cidr (port groups have
//	                              no address range)
//	address                       an IP address VMware Tools reports of a
//	                              server's guest (each NIC's, and the
//	                              primary one; no loopback or link-local):
//	                              id "vm-42/10.0.0.5", server the VM
//
// # Tags and idempotent launches
//
// The SDK's launch handler puts an action's idempotency key in a tag and,
// on redelivery, looks the server up by that tag before launching again. That
// only works if the tag exists as soon as the server does, so Launch writes
// the tags (with the image and size names and a launch id) into the
// extraConfig of the clone's config spec: vCenter creates the VM with them.
// vSphere custom attributes cannot be set in a config spec, so they come
// second: when the launch's clone task has succeeded, [Provider.Operation]
// mirrors each tag into a custom attribute named "stratusworks.<key>"
// (defined on demand through the CustomFieldsManager) so that tags show in
// the vSphere client. [Provider.FindServersByTag] reads both; an attribute
// wins over the extraConfig value, so editing a tag in the vSphere client
// works. vSphere cannot filter on either server-side, so a tag search reads
// the tag properties of every VM, one call per covered datacenter.
//
// # Datacenters
//
// With Config.Datacenter and Config.Datacenters empty, one Provider covers
// every datacenter its user can see, including datacenters created later:
// each listing's first page, and each tag search, lists the datacenters
// again. Config.Datacenter restricts it to one datacenter, Datacenters to a
// list; New fails, naming the choices, if an entry names no datacenter.
// [Provider.Datacenters] says which are covered.
//
// Server ids are VM managed object reference values, which vCenter makes
// unique across the whole vCenter (not per datacenter), so an id names one
// server of the account whatever its datacenter. Each server's Region is the
// name of its datacenter (not its path: datacenters in different folders
// may share a name). ([Provider.GetServer] finds the datacenter among
// the VM's ancestors: one more call.)
//
// # Launch placement
//
// A launch needs a datacenter, a VM folder, a resource pool and optionally a
// datastore. The datacenter is Config.LaunchDatacenter; else the one that
// Config.ResourcePool, Folder or Datastore names when given as an inventory
// path ("/DC1/host/Cluster1/Resources"); else the only covered datacenter.
// The folder defaults to the datacenter's root VM folder and the pool to the
// root pool of its only cluster or standalone host. The first launch
// resolves all of it and keeps it (concurrent launches wait for that one
// resolution; a failed one is tried again at the next launch). A placement
// that cannot be decided or found fails the launch with an error matching
// cloud.ErrInvalidRequest and ErrInvalidConfig (and cloud.ErrNotFound for
// names that match nothing), naming the field and listing the choices:
// the datacenters, or the clusters' pools.
//
// # Listings
//
// [Provider.ListServers] pages through the covered datacenters in order of
// their reference ("datacenter-3"), and through each datacenter's VM folder
// tree in order of id (vm-9 before vm-10). NextToken names the datacenter
// and the last id of the page ("datacenter-3/vm-42"), so a token stays valid
// while VMs and datacenters come and go: each VM is listed once per
// listing, unless it moves to another datacenter meanwhile. Each page costs
// one property collector call per datacenter it reaches (over a container
// view fetching only the template flag of every VM of that datacenter;
// usually one datacenter, two or more where the page crosses a boundary),
// then one call fetching the listed properties of the page's VMs.
// [Provider.ListServerStatus] costs the first calls only, fetching power
// and connection state. (Each container view is also created and destroyed:
// two small calls; a first page lists the datacenters too: three more.)
//
// The listings of the optional services page the same way, across the
// covered datacenters by reference and within each by id, with tokens
// naming the datacenter and the last id. Each page costs one property
// collector call per datacenter it reaches, over a container view (of the
// datacenter's VMs for images, volumes, snapshots and addresses; of its
// compute resources or networks for data centers and networks), never a
// call per object; a status listing costs what its full listing does
// (vSphere has no cheaper view of disks or snapshot trees). Regions list
// the datacenters, three small calls, at every page.
//
// # Settings for an account registry
//
// [Settings] is a Config without credentials, account id or logger: what a
// registry of accounts stores per vSphere account, as JSON. [ParseSettings]
// decodes it strictly (unknown fields refused, errors naming the field and
// value) and refuses any key that looks like a credential: those come from
// km. [Settings.Config] adds the account and the credentials.
//
// # Errors
//
// Errors match the cloud taxonomy: InvalidLogin, NotAuthenticated (after
// one re-login), NoPermission -> cloud.ErrAuthentication;
// ManagedObjectNotFound, NotFound, unknown ids, images, sizes and accounts
// -> cloud.ErrNotFound (unknown images and sizes also match
// cloud.ErrInvalidRequest); InsufficientResourcesFault and its subtypes,
// NoDiskSpace -> cloud.ErrCapacity; NotEnoughLicenses -> cloud.ErrQuota;
// InvalidArgument, DuplicateName, InvalidName -> cloud.ErrInvalidRequest;
// refused, reset or timed-out connections, TLS failures, HostCommunication
// -> cloud.ErrCommunication; HTTP 429 -> *cloud.ThrottledError. Other faults
// (InvalidState, TaskInProgress …) are plain errors naming the fault. A
// cancelled or expired context is reported as such, not as a communication
// failure. No error, and nothing the package logs, contains the password:
// [Secret] redacts itself everywhere.
//
// # What vcsim does differently
//
// vcsim (govmomi v0.52.0) ignores CloneSpec.Config and CloneSpec.PowerOn.
// The Provider does not rely on the simulator's gaps, but covers them: when
// a launch it started has cloned, [Provider.Operation] checks that the VM
// carries the clone's config spec (by its launch id) and reconfigures it if
// not, then powers it on if it is off. vcsim also keeps finished tasks
// forever where vCenter forgets them after about ten minutes; the Provider
// keeps a bounded record of the operations it started so their outcome
// stays queryable either way. vcsim does not flag a distributed switch's
// uplink port group (config.uplink), so on vcsim it is listed as a network;
// it cannot destroy a cluster; and it reports guest addresses only as set
// through extraConfig "SET.guest.ipAddress" (its stand-in for VMware Tools).
package vsphere

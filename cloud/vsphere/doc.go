// Package vsphere is a [cloud.Provider] for VMware vSphere, built on
// github.com/vmware/govmomi and tested against govmomi's vCenter simulator
// (vcsim).
//
// A [Provider] serves one account: one vCenter, one login, one datacenter.
// [New] validates the [Config], logs in and resolves the datacenter, folder,
// resource pool and datastore (defaulting each when the inventory leaves no
// choice, and naming the choices when it does). The Provider keeps that one
// session, logs in again (once per call) when vCenter reports it expired,
// and logs out on [Provider.Close].
//
// # Mapping
//
//	cloud                         vSphere
//	-----------------------------------------------------------------------
//	account                       one vCenter connection (Config.Account)
//	region (Server.Region)        the datacenter
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
//	                              Config.ResourcePool, powered on
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
// the tag properties of every VM in the datacenter in one call.
//
// # Listings
//
// [Provider.ListServers] pages through the datacenter's VM folder tree in
// order of id (vm-9 before vm-10); NextToken is the last id of the page, so
// a token stays valid while VMs come and go. Each page costs one property
// collector call over a container view fetching only the template flag of
// every VM, then one call fetching the listed properties of the page's VMs.
// [Provider.ListServerStatus] costs the first call only, fetching power and
// connection state. (Each listing also creates and destroys its container
// view: two small calls.)
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
// stays queryable either way.
package vsphere

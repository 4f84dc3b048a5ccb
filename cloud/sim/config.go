package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/stratusworks/worker/cloud"
)

// API names, as used in [Config.RateLimits], [Cloud.FailNext], [Cloud.Calls]
// and [cloud.ThrottledError.API].
const (
	APIListServers            = "ListServers"
	APIListServerStatus       = "ListServerStatus"
	APIGetServer              = "GetServer"
	APIFindServersByTag       = "FindServersByTag"
	APILaunch                 = "Launch"
	APITerminate              = "Terminate"
	APIListFirewalls          = "ListFirewalls"
	APIAuthorize              = "Authorize"
	APIRevoke                 = "Revoke"
	APIListBudgets            = "ListBudgets"
	APIOperation              = "Operation"
	APIListRegions            = "ListRegions"
	APIListDataCenters        = "ListDataCenters"
	APIListImages             = "ListImages"
	APIListVolumes            = "ListVolumes"
	APIListVolumeStatus       = "ListVolumeStatus"
	APIListSnapshots          = "ListSnapshots"
	APIListSnapshotStatus     = "ListSnapshotStatus"
	APIListNetworks           = "ListNetworks"
	APIListAddresses          = "ListAddresses"
	APIListLoadBalancers      = "ListLoadBalancers"
	APIListLoadBalancerStatus = "ListLoadBalancerStatus"
	APIListDNSZones           = "ListDNSZones"
	APIListDNSRecords         = "ListDNSRecords"
	APIListVPNGateways        = "ListVPNGateways"
	APIListDatabases          = "ListDatabases"
	APIListDatabaseStatus     = "ListDatabaseStatus"
	APIListDistributions      = "ListDistributions"
	APIListCertificates       = "ListCertificates"
	APIListSubscriptions      = "ListSubscriptions"
	APIListInvoices           = "ListInvoices"
	APIListUsage              = "ListUsage"
)

// Service names, as used in [Config.Disable].
const (
	ServiceCompute       = cloud.ServiceCompute
	ServiceNetwork       = cloud.ServiceNetwork
	ServiceBilling       = cloud.ServiceBilling
	ServiceOperations    = cloud.ServiceOperations
	ServiceDataCenters   = cloud.ServiceDataCenters
	ServiceImages        = cloud.ServiceImages
	ServiceVolumes       = cloud.ServiceVolumes
	ServiceSnapshots     = cloud.ServiceSnapshots
	ServiceNetworks      = cloud.ServiceNetworks
	ServiceAddresses     = cloud.ServiceAddresses
	ServiceLoadBalancers = cloud.ServiceLoadBalancers
	ServiceDNS           = cloud.ServiceDNS
	ServiceVPNs          = cloud.ServiceVPNs
	ServiceDatabases     = cloud.ServiceDatabases
	ServiceCDN           = cloud.ServiceCDN
	ServiceCertificates  = cloud.ServiceCertificates
	ServiceSubscriptions = cloud.ServiceSubscriptions
	ServiceAnalytics     = cloud.ServiceServerAnalytics
)

// api is the index of an API name; every per-API table is an array indexed by it.
type api uint8

const (
	apiListServers api = iota
	apiListServerStatus
	apiGetServer
	apiFindServersByTag
	apiLaunch
	apiTerminate
	apiListFirewalls
	apiAuthorize
	apiRevoke
	apiListBudgets
	apiOperation
	apiListRegions
	apiListDataCenters
	apiListImages
	apiListVolumes
	apiListVolumeStatus
	apiListSnapshots
	apiListSnapshotStatus
	apiListNetworks
	apiListAddresses
	apiListLoadBalancers
	apiListLoadBalancerStatus
	apiListDNSZones
	apiListDNSRecords
	apiListVPNGateways
	apiListDatabases
	apiListDatabaseStatus
	apiListDistributions
	apiListCertificates
	apiListSubscriptions
	apiListInvoices
	apiListUsage
	numAPIs
)

var apiNames = [numAPIs]string{
	APIListServers, APIListServerStatus, APIGetServer, APIFindServersByTag, APILaunch,
	APITerminate, APIListFirewalls, APIAuthorize, APIRevoke, APIListBudgets, APIOperation,
	APIListRegions,
	APIListDataCenters,
	APIListImages,
	APIListVolumes,
	APIListVolumeStatus,
	APIListSnapshots,
	APIListSnapshotStatus,
	APIListNetworks,
	APIListAddresses,
	APIListLoadBalancers,
	APIListLoadBalancerStatus,
	APIListDNSZones,
	APIListDNSRecords,
	APIListVPNGateways,
	APIListDatabases,
	APIListDatabaseStatus,
	APIListDistributions,
	APIListCertificates,
	APIListSubscriptions,
	APIListInvoices,
	APIListUsage,
}

// apiService is the service each API belongs to.
var apiService = [numAPIs]string{
	ServiceCompute, ServiceCompute, ServiceCompute, ServiceCompute, ServiceCompute,
	ServiceCompute, ServiceNetwork, ServiceNetwork, ServiceNetwork, ServiceBilling, ServiceOperations,
	ServiceDataCenters,
	ServiceDataCenters,
	ServiceImages,
	ServiceVolumes,
	ServiceVolumes,
	ServiceSnapshots,
	ServiceSnapshots,
	ServiceNetworks,
	ServiceAddresses,
	ServiceLoadBalancers,
	ServiceLoadBalancers,
	ServiceDNS,
	ServiceDNS,
	ServiceVPNs,
	ServiceDatabases,
	ServiceDatabases,
	ServiceCDN,
	ServiceCertificates,
	ServiceSubscriptions,
	ServiceSubscriptions,
	ServiceAnalytics,
}

func (a api) String() string { return apiNames[a] }

func lookupAPI(name string) (api, bool) {
	for i, n := range apiNames {
		if n == name {
			return api(i), true
		}
	}
	return 0, false
}

var services = []string{
	ServiceCompute,
	ServiceNetwork,
	ServiceBilling,
	ServiceOperations,
	ServiceDataCenters,
	ServiceImages,
	ServiceVolumes,
	ServiceSnapshots,
	ServiceNetworks,
	ServiceAddresses,
	ServiceLoadBalancers,
	ServiceDNS,
	ServiceVPNs,
	ServiceDatabases,
	ServiceCDN,
	ServiceCertificates,
	ServiceSubscriptions,
	ServiceAnalytics,
}

// Defaults applied by [New] to zero fields of [Config].
const (
	DefaultLaunchDelay        = 30 * time.Second
	DefaultTerminateDelay     = 10 * time.Second
	DefaultPageSize           = 100
	DefaultMaxPageSize        = 1000
	DefaultRegion             = "sim-1"
	DefaultOperationRetention = time.Hour
)

// DefaultImages and DefaultSizes are the catalog used when [Config.Images] or
// [Config.Sizes] is empty. The first size is used when a launch names none.
var (
	DefaultImages = []string{"ubuntu-24.04", "debian-12", "rhel-9", "windows-2022"}
	DefaultSizes  = []string{"small", "medium", "large"}
)

// Limit is a token bucket: PerSecond tokens are added each second up to Burst,
// and every call takes one. The bucket starts full.
type Limit struct {
	PerSecond float64
	Burst     int
}

// Faults injects failures and slowness into every call.
type Faults struct {
	// ErrorRate is the fraction of calls, in [0, 1], that fail with an error
	// matching cloud.ErrCommunication. Which calls fail is decided by Seed, the
	// API and the API's call count, so the same sequence of calls fails the
	// same way for the same seed. Default 0.
	ErrorRate float64
	// Latency is slept (in real time, honouring the context) before every
	// call. It is the only real-time behaviour of the simulator. Default 0.
	Latency time.Duration
}

// Config configures a [Cloud]. The zero value is valid: every zero field
// takes the default stated in its comment.
type Config struct {
	// Now is the clock. Every time-dependent behaviour (lifecycles, eventual
	// consistency, rate limits, operations) reads it; nothing runs in the
	// background. Share a [FakeClock] (Now: clk.Now) to control time in tests.
	// Default time.Now. Times must lie between the years 1678 and 2262.
	Now func() time.Time
	// Seed makes every random choice (Drift, ErrorRate) deterministic. Zero
	// is a valid seed, so a default Cloud is deterministic too.
	Seed int64
	// LaunchDelay is how long a launched server stays PENDING before it is
	// RUNNING. Default 30s (0 means the default; use time.Nanosecond for an
	// almost instant launch).
	LaunchDelay time.Duration
	// TerminateDelay is how long a terminated server stays STOPPING before it
	// is TERMINATED; a TERMINATED server disappears from every call after
	// another TerminateDelay. Default 10s.
	TerminateDelay time.Duration
	// ConsistencyDelay is how long a newly launched server is missing from
	// ListServers, ListServerStatus and FindServersByTag (GetServer sees it at
	// once), as in eventually consistent clouds. Servers added with
	// [Cloud.AddServer] are visible at once. Default 0.
	ConsistencyDelay time.Duration
	// DefaultPageSize is the page size when ListOptions.PageSize is 0.
	// Default 100.
	DefaultPageSize int
	// MaxPageSize caps ListOptions.PageSize; larger requests get this many.
	// Default 1000, or DefaultPageSize if that is larger.
	MaxPageSize int
	// MaxServersPerAccount is the quota of servers per account that are not
	// terminating or terminated; a Launch beyond it fails with an error
	// matching cloud.ErrQuota. Default 0: unlimited.
	MaxServersPerAccount int
	// RateLimits maps API names (APIListServers, …) to a token bucket kept per
	// account and API; an empty bucket fails the call with a
	// *cloud.ThrottledError. APIs not in the map are not limited. Default none.
	RateLimits map[string]Limit
	// Resources is how many resources of each kind beyond servers,
	// firewalls and budgets (regions, data centers, images, volumes,
	// snapshots, networks, addresses, load balancers, DNS zones and records,
	// VPN gateways, databases, CDN distributions, certificates,
	// subscriptions, invoices) a new account starts with (see
	// [Cloud.Populate]). Default 0: none, and Drift leaves those kinds
	// alone in the account until Put or Populate gives it some.
	Resources int
	// Faults injects failures and latency. Default none.
	Faults Faults
	// Disable lists services (ServiceCompute, ServiceNetwork, ServiceBilling,
	// ServiceOperations, ServiceVolumes, …) the cloud does not offer: their accessors and
	// methods return an error matching cloud.ErrNotSupported. Default none.
	Disable []string
	// Images is the image catalog; launching any other image fails.
	// Default DefaultImages.
	Images []string
	// Sizes is the size catalog; launching any other size fails. A launch
	// with no size gets the first. Default DefaultSizes.
	Sizes []string
	// Region is the region of launched servers. Default "sim-1".
	Region string
	// OperationRetention is how long a finished operation can still be read;
	// after it, Operation returns an error matching cloud.ErrNotFound.
	// Default 1h.
	OperationRetention time.Duration
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LaunchDelay == 0 {
		c.LaunchDelay = DefaultLaunchDelay
	}
	if c.TerminateDelay == 0 {
		c.TerminateDelay = DefaultTerminateDelay
	}
	if c.DefaultPageSize == 0 {
		c.DefaultPageSize = DefaultPageSize
	}
	if c.MaxPageSize == 0 {
		c.MaxPageSize = max(DefaultMaxPageSize, c.DefaultPageSize)
	}
	if len(c.Images) == 0 {
		c.Images = DefaultImages
	}
	if len(c.Sizes) == 0 {
		c.Sizes = DefaultSizes
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.OperationRetention == 0 {
		c.OperationRetention = DefaultOperationRetention
	}
	// Own copies: the caller may reuse its slices and map.
	c.Images = slices.Clone(c.Images)
	c.Sizes = slices.Clone(c.Sizes)
	c.Disable = slices.Clone(c.Disable)
	if c.RateLimits != nil {
		m := make(map[string]Limit, len(c.RateLimits))
		for k, v := range c.RateLimits {
			m[k] = v
		}
		c.RateLimits = m
	}
	return c
}

// Validate reports the first invalid field, naming it. Zero fields are valid
// (they take their defaults).
func (c Config) Validate() error {
	if err := c.validate(); err != nil {
		return invalidConfig{err}
	}
	return nil
}

func (c Config) validate() error {
	d := c.withDefaults()
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"LaunchDelay", d.LaunchDelay},
		{"TerminateDelay", d.TerminateDelay},
		{"ConsistencyDelay", d.ConsistencyDelay},
		{"OperationRetention", d.OperationRetention},
		{"Faults.Latency", d.Faults.Latency},
	} {
		if f.v < 0 {
			return fmt.Errorf("sim: Config.%s must not be negative, got %v", f.name, f.v)
		}
	}
	switch {
	case d.DefaultPageSize < 0:
		return fmt.Errorf("sim: Config.DefaultPageSize must not be negative, got %d", d.DefaultPageSize)
	case d.MaxPageSize < 0:
		return fmt.Errorf("sim: Config.MaxPageSize must not be negative, got %d", d.MaxPageSize)
	case d.DefaultPageSize > d.MaxPageSize:
		return fmt.Errorf("sim: Config.DefaultPageSize (%d) must not exceed Config.MaxPageSize (%d)",
			d.DefaultPageSize, d.MaxPageSize)
	case d.Resources < 0:
		return fmt.Errorf("sim: Config.Resources must not be negative, got %d", d.Resources)
	case d.MaxServersPerAccount < 0:
		return fmt.Errorf("sim: Config.MaxServersPerAccount must not be negative, got %d", d.MaxServersPerAccount)
	case math.IsNaN(d.Faults.ErrorRate) || d.Faults.ErrorRate < 0 || d.Faults.ErrorRate > 1:
		return fmt.Errorf("sim: Config.Faults.ErrorRate must be in [0, 1], got %v", d.Faults.ErrorRate)
	}
	for name, l := range d.RateLimits {
		if _, ok := lookupAPI(name); !ok {
			return fmt.Errorf("sim: Config.RateLimits: unknown API %q (want one of %v)", name, apiNames)
		}
		if math.IsNaN(l.PerSecond) || math.IsInf(l.PerSecond, 0) || l.PerSecond <= 0 {
			return fmt.Errorf("sim: Config.RateLimits[%q].PerSecond must be positive and finite, got %v", name, l.PerSecond)
		}
		if l.Burst < 1 {
			return fmt.Errorf("sim: Config.RateLimits[%q].Burst must be at least 1, got %d", name, l.Burst)
		}
	}
	for _, s := range d.Disable {
		if !slices.Contains(services, s) {
			return fmt.Errorf("sim: Config.Disable: unknown service %q (want one of %v)", s, services)
		}
	}
	for _, f := range []struct {
		name string
		v    []string
	}{{"Images", d.Images}, {"Sizes", d.Sizes}} {
		for _, s := range f.v {
			if s == "" {
				return fmt.Errorf("sim: Config.%s must not contain an empty name", f.name)
			}
		}
	}
	return nil
}

// ErrInvalidRequest is cloud.ErrInvalidRequest, matched (errors.Is) by errors for malformed requests:
// a launch without an image, a bad firewall rule, a bad page token. Retrying
// such a call cannot succeed.
var ErrInvalidRequest = cloud.ErrInvalidRequest

// ErrInvalidConfig is matched (errors.Is) by every error of Validate: the
// message names the field and the value.
var ErrInvalidConfig = errors.New("sim: invalid config")

// invalidConfig is a Validate error: its own text, matching ErrInvalidConfig
// and what it wraps.
type invalidConfig struct{ err error }

func (e invalidConfig) Error() string   { return e.err.Error() }
func (e invalidConfig) Unwrap() []error { return []error{ErrInvalidConfig, e.err} }

package vsphere

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// ErrInvalidConfig is wrapped by every configuration error; the message names
// the field. It never quotes the password or a URL's user information.
var ErrInvalidConfig = errors.New("vsphere: invalid config")

// DefaultTimeout is the default for [Config.Timeout].
const DefaultTimeout = time.Minute

// Config configures a [Provider]. Zero fields take the defaults stated on them.
type Config struct {
	// URL is the vCenter SDK endpoint, e.g. "https://vcenter.example.com/sdk".
	// Required. It must not carry credentials (use Username and Password); the
	// path defaults to "/sdk". Plain http is accepted only with Insecure set.
	URL string
	// Username to log in as, e.g. "svc-worker@vsphere.local". Required.
	Username string
	// Password for Username. Required. It never appears in errors or logs.
	Password Secret
	// Insecure turns off TLS certificate verification (and permits an http
	// URL). For vcsim and throwaway labs only: with it, anyone on the path can
	// read the password. Prefer CAFile for a vCenter with a private CA.
	Insecure bool
	// CAFile is a PEM file of CA certificates to trust in addition to the
	// system pool (several files separated by the OS path-list separator).
	// Default: the system pool only.
	CAFile string
	// Timeout bounds each request to vCenter (connect, send, wait for the
	// answer). Default: DefaultTimeout (1m). Tasks (clone, destroy) are
	// asynchronous and not bounded by it.
	Timeout time.Duration

	// Datacenter restricts the provider to one datacenter (its name or
	// inventory path): listings cover it alone and launches go there.
	// Default: every datacenter of the vCenter (see Datacenters). New fails,
	// listing the choices, if it names none. Set at most one of Datacenter
	// and Datacenters.
	Datacenter string
	// Datacenters restricts the provider to these datacenters (names or
	// inventory paths). Default (with Datacenter empty too): every
	// datacenter the user can see, including those created later. Listings
	// cover them all; each server's Region is its datacenter's name.
	Datacenters []string
	// LaunchDatacenter is the datacenter (a name or inventory path, among
	// those covered) launches place new servers in. Default: the datacenter
	// that ResourcePool, Folder or Datastore names when one of them is an
	// inventory path ("/DC1/host/Cluster1/Resources"), else the only
	// covered datacenter. With several datacenters and none of these, a
	// launch fails (cloud.ErrInvalidRequest) listing the datacenters;
	// listings work regardless.
	LaunchDatacenter string

	// Folder, ResourcePool and Datastore are the launch placement. They are
	// resolved, in the launch datacenter, at the first launch and kept; a
	// launch they do not allow fails with an error matching
	// cloud.ErrInvalidRequest and ErrInvalidConfig that names the field and
	// the choices. New does not look at them, so a provider that only polls
	// never fails because of them.

	// Folder is the VM folder new servers are cloned into (an inventory path,
	// or a path relative to the datacenter's VM folder). Default: the launch
	// datacenter's root VM folder. Listings always cover the datacenters'
	// whole VM folder trees.
	Folder string
	// ResourcePool new servers run in (an inventory path such as
	// "/DC0/host/Cluster1/Resources"). Default: the root pool of the launch
	// datacenter's only cluster or standalone host; a launch fails, listing
	// the choices, if there are several.
	ResourcePool string
	// Datastore new servers' disks are placed on (a name or inventory path).
	// Default: the template's own datastore.
	Datastore string

	// Templates maps a cloud image name (LaunchRequest.Image) to a template VM
	// (its name, or its inventory path). An image missing from the map is
	// looked up as a template VM of that name in the launch datacenter.
	Templates map[string]string
	// Sizes maps a size name (LaunchRequest.Size) to hardware. A launch
	// without a size keeps the template's CPUs and memory; a launch naming a
	// size missing from the map fails with an error matching
	// cloud.ErrInvalidRequest and cloud.ErrNotFound.
	Sizes map[string]Size

	// Account is the account id callers pass to every call: one vCenter
	// connection is one account, and calls naming another account fail with
	// an error matching cloud.ErrNotFound. Default: URL's host[:port].
	Account string

	// Logger receives warnings about best-effort steps (mirroring tags into
	// custom attributes). Default slog.Default().
	Logger *slog.Logger
}

// Size is a server's hardware.
type Size struct {
	CPUs     int32 `json:"cpus"`
	MemoryMB int64 `json:"memory_mb"`
}

func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Account == "" {
		if u, err := c.parseURL(); err == nil {
			c.Account = u.Host
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// parseURL parses URL, defaulting the path to /sdk. Its errors never quote the
// URL, which might hold credentials.
func (c Config) parseURL() (*url.URL, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, errors.New("is not a URL")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/sdk"
	}
	return u, nil
}

// fieldError is an invalid Config field; it matches ErrInvalidConfig.
type fieldError struct {
	field string // e.g. "Timeout", `Sizes["small"].CPUs`
	msg   string
}

func (e *fieldError) Error() string { return ErrInvalidConfig.Error() + ": " + e.field + " " + e.msg }
func (e *fieldError) Unwrap() error { return ErrInvalidConfig }

func configError(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// Validate reports the first invalid field, naming it. Zero fields are valid
// unless marked required (they take their defaults). Validate does not
// contact vCenter: names of inventory objects are checked by [New].
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.URL == "" {
		return configError("URL", "is required (https://vcenter.example.com/sdk)")
	}
	u, err := c.parseURL()
	if err != nil {
		return configError("URL", "%v", err)
	}
	switch {
	case u.User != nil:
		return configError("URL", "must not contain credentials: set Username and Password")
	case u.Scheme != "https" && u.Scheme != "http":
		return configError("URL", "must be https://host/sdk, got scheme %q", u.Scheme)
	case u.Scheme == "http" && !c.Insecure:
		return configError("URL", "is plain http, which would send the password in clear; use https (http is allowed only with Insecure)")
	case u.Host == "":
		return configError("URL", "has no host")
	case c.Username == "":
		return configError("Username", "is required")
	case c.Password.IsZero():
		return configError("Password", "is required")
	case c.Timeout < 0:
		return configError("Timeout", "must not be negative, got %v", c.Timeout)
	case c.Datacenter != "" && len(c.Datacenters) > 0:
		return configError("Datacenter", "%q and Datacenters %q are both set: set one (Datacenters may list one)", c.Datacenter, c.Datacenters)
	}
	seen := map[string]bool{}
	for i, dc := range c.Datacenters {
		field := fmt.Sprintf("Datacenters[%d]", i)
		switch {
		case dc == "":
			return configError(field, "is empty: want a datacenter name or inventory path")
		case seen[dc]:
			return configError(field, "%q is listed twice", dc)
		}
		seen[dc] = true
	}
	for image, tmpl := range c.Templates {
		switch {
		case image == "":
			return configError("Templates", "has an empty image name")
		case tmpl == "":
			return configError(fmt.Sprintf("Templates[%q]", image), "is empty: want a template VM name or path")
		}
	}
	for name, s := range c.Sizes {
		field := fmt.Sprintf("Sizes[%q]", name)
		switch {
		case name == "":
			return configError("Sizes", "has an empty size name")
		case s.CPUs < 1:
			return configError(field+".CPUs", "must be at least 1, got %d", s.CPUs)
		case s.MemoryMB < 4 || s.MemoryMB%4 != 0:
			return configError(field+".MemoryMB", "must be a positive multiple of 4 (a vSphere rule), got %d", s.MemoryMB)
		}
	}
	return nil
}

package cloud

import "context"

// The Network+ services after Dasein Cloud: virtual networks, IP addresses,
// load balancers, DNS and VPN gateways. (Firewalls are the [Network]
// service of [Provider].)

// VirtualNetwork is a private network (a VPC or VLAN). States: PENDING,
// AVAILABLE, DELETING, ERROR.
type VirtualNetwork struct {
	ID      string            `json:"id"`
	Account string            `json:"account"`
	Name    string            `json:"name"`
	CIDR    string            `json:"cidr"`
	Region  string            `json:"region,omitempty"`
	State   ResourceState     `json:"state"`
	Tags    map[string]string `json:"tags,omitempty"`
}

// Networks lists virtual networks.
type Networks interface {
	ListNetworks(ctx context.Context, account string, opts ListOptions) (Page[VirtualNetwork], error)
}

// Address is a public IP address held by the account, assigned to a server
// or a load balancer, or free.
type Address struct {
	ID       string `json:"id"`
	Account  string `json:"account"`
	Address  string `json:"address"` // e.g. "203.0.113.7"
	Version  string `json:"version"` // "ipv4" or "ipv6"
	Region   string `json:"region,omitempty"`
	Server   string `json:"server,omitempty"`        // the server it is assigned to
	Balancer string `json:"load_balancer,omitempty"` // the load balancer it is assigned to
}

// Addresses lists IP addresses.
type Addresses interface {
	ListAddresses(ctx context.Context, account string, opts ListOptions) (Page[Address], error)
}

// Listener is one port a load balancer listens on and where it forwards.
type Listener struct {
	Protocol   string `json:"protocol"` // e.g. "http", "https", "tcp"
	Port       int    `json:"port"`
	TargetPort int    `json:"target_port"`
}

// LoadBalancer spreads traffic over servers. States: PENDING, ACTIVE,
// DELETING, ERROR.
type LoadBalancer struct {
	ID        string        `json:"id"`
	Account   string        `json:"account"`
	Name      string        `json:"name"`
	Address   string        `json:"address,omitempty"`
	Region    string        `json:"region,omitempty"`
	State     ResourceState `json:"state"`
	Listeners []Listener    `json:"listeners,omitempty"`
	Servers   []string      `json:"servers,omitempty"` // the servers behind it (ids)
}

// LoadBalancers lists load balancers.
type LoadBalancers interface {
	ListLoadBalancers(ctx context.Context, account string, opts ListOptions) (Page[LoadBalancer], error)
	// ListLoadBalancerStatus returns ids and states only: cheaper, for frequent polls.
	ListLoadBalancerStatus(ctx context.Context, account string, opts ListOptions) (Page[ResourceStatus], error)
}

// DNSZone is a DNS domain the cloud serves.
type DNSZone struct {
	ID          string   `json:"id"`
	Account     string   `json:"account"`
	Domain      string   `json:"domain"` // e.g. "example.com."
	Public      bool     `json:"public"`
	NameServers []string `json:"name_servers,omitempty"`
}

// DNSRecord is one record set of a zone.
type DNSRecord struct {
	ID      string   `json:"id"`
	Account string   `json:"account"`
	Zone    string   `json:"zone"` // the DNSZone's ID
	Name    string   `json:"name"` // e.g. "www.example.com."
	Type    string   `json:"type"` // e.g. "A", "CNAME", "MX"
	TTL     int      `json:"ttl"`
	Values  []string `json:"values"`
}

// DNS lists DNS zones and their records.
type DNS interface {
	ListDNSZones(ctx context.Context, account string, opts ListOptions) (Page[DNSZone], error)
	// ListDNSRecords lists the records of every zone of the account.
	ListDNSRecords(ctx context.Context, account string, opts ListOptions) (Page[DNSRecord], error)
}

// VPNGateway is the cloud end of a site-to-site VPN. States: PENDING,
// AVAILABLE, IN_USE (a tunnel is up), DELETING, ERROR.
type VPNGateway struct {
	ID       string        `json:"id"`
	Account  string        `json:"account"`
	Name     string        `json:"name"`
	Network  string        `json:"network,omitempty"` // the VirtualNetwork it serves
	Protocol string        `json:"protocol"`          // e.g. "ipsec"
	PublicIP string        `json:"public_ip,omitempty"`
	State    ResourceState `json:"state"`
}

// VPNs lists VPN gateways.
type VPNs interface {
	ListVPNGateways(ctx context.Context, account string, opts ListOptions) (Page[VPNGateway], error)
}

func (n VirtualNetwork) resourceID() string { return n.ID }
func (n VirtualNetwork) attributes() attrs {
	return attrs{"name": n.Name, "cidr": n.CIDR, "region": n.Region, "state": n.State, "tags": n.Tags}
}

func (a Address) resourceID() string { return a.ID }
func (a Address) attributes() attrs {
	return attrs{"address": a.Address, "version": a.Version, "region": a.Region, "server": a.Server, "load_balancer": a.Balancer}
}

func (l LoadBalancer) resourceID() string { return l.ID }
func (l LoadBalancer) attributes() attrs {
	return attrs{"name": l.Name, "address": l.Address, "region": l.Region, "state": l.State,
		"listeners": sortedListeners(l.Listeners), "servers": sorted(l.Servers)}
}

func (z DNSZone) resourceID() string { return z.ID }
func (z DNSZone) attributes() attrs {
	return attrs{"domain": z.Domain, "public": z.Public, "name_servers": sorted(z.NameServers)}
}

func (r DNSRecord) resourceID() string { return r.ID }
func (r DNSRecord) attributes() attrs {
	return attrs{"zone": r.Zone, "name": r.Name, "type": r.Type, "ttl": r.TTL, "values": sorted(r.Values)}
}

func (g VPNGateway) resourceID() string { return g.ID }
func (g VPNGateway) attributes() attrs {
	return attrs{"name": g.Name, "network": g.Network, "protocol": g.Protocol, "public_ip": g.PublicIP, "state": g.State}
}

package sim

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stratusworks/worker/cloud"
)

// The kinds beyond servers, firewalls and budgets, in the order of their
// kindIdx.
const (
	kRegion kindIdx = iota
	kDataCenter
	kImage
	kVolume
	kSnapshot
	kNetwork
	kAddress
	kLoadBalancer
	kDNSZone
	kDNSRecord
	kVPNGateway
	kDatabase
	kDistribution
	kCertificate
	kSubscription
	kInvoice
	numKinds
)

// kindSpecs lists every spec, indexed by kindIdx.
var kindSpecs = [numKinds]kindOps{
	kRegion: &regions, kDataCenter: &dataCenters, kImage: &images, kVolume: &volumes, kSnapshot: &snapshots,
	kNetwork: &networks, kAddress: &ipAddresses, kLoadBalancer: &loadBalancers, kDNSZone: &dnsZones,
	kDNSRecord: &dnsRecords, kVPNGateway: &vpnGateways, kDatabase: &databases, kDistribution: &distributions,
	kCertificate: &certificates, kSubscription: &subscriptions, kInvoice: &invoices,
}

// epoch is the creation time of populated images, snapshots and
// certificates: fixed, so that it depends on nothing but the seed.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func pick[T any](r *rand.Rand, from ...T) T { return from[r.IntN(len(from))] }

func toggle(r *rand.Rand, s *cloud.ResourceState, a, b cloud.ResourceState) string {
	from := *s
	*s = a
	if from == a {
		*s = b
	}
	return fmt.Sprintf("state %s -> %s", from, *s)
}

func ipv4(r *rand.Rand) string {
	return fmt.Sprintf("203.0.%d.%d", r.IntN(256), 1+r.IntN(254))
}

var regions = spec[cloud.Region]{
	idx: kRegion, name: cloud.KindRegion, service: ServiceDataCenters, prefix: "region-", list: apiListRegions, status: noAPI,
	id: func(v *cloud.Region) *string { return &v.ID }, account: func(v *cloud.Region) *string { return &v.Account },
	make: func(r *rand.Rand, id string) cloud.Region {
		return cloud.Region{ID: id, Name: id, Jurisdiction: pick(r, "EU", "US", "APAC"), Active: true}
	},
	mutate: func(_ *rand.Rand, v *cloud.Region) string {
		v.Active = !v.Active
		return fmt.Sprintf("active %v", v.Active)
	},
}

var dataCenters = spec[cloud.DataCenter]{
	idx: kDataCenter, name: cloud.KindDataCenter, service: ServiceDataCenters, prefix: "dc-", list: apiListDataCenters, status: noAPI,
	id: func(v *cloud.DataCenter) *string { return &v.ID }, account: func(v *cloud.DataCenter) *string { return &v.Account },
	make: func(r *rand.Rand, id string) cloud.DataCenter {
		return cloud.DataCenter{ID: id, Name: id, Region: fmt.Sprintf("sim-%d", 1+r.IntN(3)), Active: true}
	},
	mutate: func(_ *rand.Rand, v *cloud.DataCenter) string {
		v.Active = !v.Active
		return fmt.Sprintf("active %v", v.Active)
	},
}

var images = spec[cloud.Image]{
	idx: kImage, name: cloud.KindImage, service: ServiceImages, prefix: "img-", list: apiListImages, status: noAPI,
	id: func(v *cloud.Image) *string { return &v.ID }, account: func(v *cloud.Image) *string { return &v.Account },
	state: func(v *cloud.Image) cloud.ResourceState { return v.State },
	make: func(r *rand.Rand, id string) cloud.Image {
		return cloud.Image{ID: id, Name: pick(r, "ubuntu", "debian", "rhel", "windows") + "-" + id,
			Platform: pick(r, "linux", "windows"), Architecture: pick(r, "x86_64", "arm64"),
			State: cloud.ResourceAvailable, CreatedAt: epoch.Add(time.Duration(r.IntN(1000)) * time.Hour)}
	},
	mutate: func(r *rand.Rand, v *cloud.Image) string {
		if r.IntN(2) == 0 {
			v.Public = !v.Public
			return fmt.Sprintf("public %v", v.Public)
		}
		return toggle(r, &v.State, cloud.ResourceAvailable, cloud.ResourceDisabled)
	},
}

var volumes = spec[cloud.Volume]{
	idx: kVolume, name: cloud.KindVolume, service: ServiceVolumes, prefix: "vol-", list: apiListVolumes, status: apiListVolumeStatus,
	id: func(v *cloud.Volume) *string { return &v.ID }, account: func(v *cloud.Volume) *string { return &v.Account },
	state: func(v *cloud.Volume) cloud.ResourceState { return v.State },
	clone: func(v cloud.Volume) cloud.Volume { v.Tags = maps.Clone(v.Tags); return v },
	make: func(r *rand.Rand, id string) cloud.Volume {
		return cloud.Volume{ID: id, Name: id, DataCenter: fmt.Sprintf("sim-1%c", 'a'+r.IntN(3)),
			SizeGB: 10 * (1 + r.IntN(50)), Type: pick(r, "ssd", "hdd"), State: cloud.ResourceAvailable}
	},
	mutate: func(r *rand.Rand, v *cloud.Volume) string {
		if r.IntN(3) == 0 {
			v.SizeGB += 10
			return fmt.Sprintf("size_gb %d", v.SizeGB)
		}
		if v.State == cloud.ResourceInUse {
			v.State, v.Server = cloud.ResourceAvailable, ""
			return "state IN_USE -> AVAILABLE (detached)"
		}
		from := v.State
		v.State, v.Server = cloud.ResourceInUse, fmt.Sprintf("server-%d", 1+r.IntN(100))
		return fmt.Sprintf("state %s -> IN_USE (attached to %s)", from, v.Server)
	},
}

var snapshots = spec[cloud.Snapshot]{
	idx: kSnapshot, name: cloud.KindSnapshot, service: ServiceSnapshots, prefix: "snap-", list: apiListSnapshots, status: apiListSnapshotStatus,
	id: func(v *cloud.Snapshot) *string { return &v.ID }, account: func(v *cloud.Snapshot) *string { return &v.Account },
	state: func(v *cloud.Snapshot) cloud.ResourceState { return v.State },
	make: func(r *rand.Rand, id string) cloud.Snapshot {
		return cloud.Snapshot{ID: id, Name: id, Volume: fmt.Sprintf("vol-%08x", 1+r.IntN(100)), SizeGB: 10 * (1 + r.IntN(50)),
			State: cloud.ResourceAvailable, CreatedAt: epoch.Add(time.Duration(r.IntN(1000)) * time.Hour)}
	},
	mutate: func(r *rand.Rand, v *cloud.Snapshot) string {
		return toggle(r, &v.State, cloud.ResourceAvailable, cloud.ResourceError)
	},
}

var networks = spec[cloud.VirtualNetwork]{
	idx: kNetwork, name: cloud.KindNetwork, service: ServiceNetworks, prefix: "net-", list: apiListNetworks, status: noAPI,
	id: func(v *cloud.VirtualNetwork) *string { return &v.ID }, account: func(v *cloud.VirtualNetwork) *string { return &v.Account },
	state: func(v *cloud.VirtualNetwork) cloud.ResourceState { return v.State },
	clone: func(v cloud.VirtualNetwork) cloud.VirtualNetwork { v.Tags = maps.Clone(v.Tags); return v },
	make: func(r *rand.Rand, id string) cloud.VirtualNetwork {
		return cloud.VirtualNetwork{ID: id, Name: id, CIDR: fmt.Sprintf("10.%d.0.0/16", r.IntN(256)), Region: DefaultRegion,
			State: cloud.ResourceAvailable, Tags: map[string]string{"env": pick(r, "prod", "staging", "dev")}}
	},
	mutate: func(r *rand.Rand, v *cloud.VirtualNetwork) string {
		if v.Tags == nil {
			v.Tags = map[string]string{}
		}
		v.Tags["env"] = pick(r, "prod", "staging", "dev", "test")
		return "tags env=" + v.Tags["env"]
	},
}

var ipAddresses = spec[cloud.Address]{
	idx: kAddress, name: cloud.KindAddress, service: ServiceAddresses, prefix: "ip-", list: apiListAddresses, status: noAPI,
	id: func(v *cloud.Address) *string { return &v.ID }, account: func(v *cloud.Address) *string { return &v.Account },
	make: func(r *rand.Rand, id string) cloud.Address {
		return cloud.Address{ID: id, Address: ipv4(r), Version: "ipv4", Region: DefaultRegion}
	},
	mutate: func(r *rand.Rand, v *cloud.Address) string {
		if v.Server != "" {
			v.Server = ""
			return "server unassigned"
		}
		v.Server = fmt.Sprintf("server-%d", 1+r.IntN(100))
		return "server assigned " + v.Server
	},
}

var loadBalancers = spec[cloud.LoadBalancer]{
	idx: kLoadBalancer, name: cloud.KindLoadBalancer, service: ServiceLoadBalancers, prefix: "lb-", list: apiListLoadBalancers,
	status: apiListLoadBalancerStatus,
	id:     func(v *cloud.LoadBalancer) *string { return &v.ID }, account: func(v *cloud.LoadBalancer) *string { return &v.Account },
	state: func(v *cloud.LoadBalancer) cloud.ResourceState { return v.State },
	clone: func(v cloud.LoadBalancer) cloud.LoadBalancer {
		v.Listeners, v.Servers = slices.Clone(v.Listeners), slices.Clone(v.Servers)
		return v
	},
	make: func(r *rand.Rand, id string) cloud.LoadBalancer {
		return cloud.LoadBalancer{ID: id, Name: id, Address: ipv4(r), Region: DefaultRegion, State: cloud.ResourceActive,
			Listeners: []cloud.Listener{{Protocol: "https", Port: 443, TargetPort: 8443}, {Protocol: "http", Port: 80, TargetPort: 8080}},
			Servers:   []string{fmt.Sprintf("server-%d", 1+r.IntN(50)), fmt.Sprintf("server-%d", 51+r.IntN(50))}}
	},
	mutate: func(r *rand.Rand, v *cloud.LoadBalancer) string {
		if r.IntN(4) == 0 {
			return toggle(r, &v.State, cloud.ResourceActive, cloud.ResourceError)
		}
		if len(v.Servers) > 1 && r.IntN(2) == 0 {
			i := r.IntN(len(v.Servers))
			id := v.Servers[i]
			v.Servers = slices.Delete(v.Servers, i, i+1)
			return "servers: removed " + id
		}
		id := fmt.Sprintf("server-%d", 101+r.IntN(900))
		if !slices.Contains(v.Servers, id) {
			v.Servers = append(v.Servers, id)
		}
		return "servers: added " + id
	},
}

var dnsZones = spec[cloud.DNSZone]{
	idx: kDNSZone, name: cloud.KindDNSZone, service: ServiceDNS, prefix: "zone-", list: apiListDNSZones, status: noAPI,
	id: func(v *cloud.DNSZone) *string { return &v.ID }, account: func(v *cloud.DNSZone) *string { return &v.Account },
	clone: func(v cloud.DNSZone) cloud.DNSZone { v.NameServers = slices.Clone(v.NameServers); return v },
	make: func(r *rand.Rand, id string) cloud.DNSZone {
		return cloud.DNSZone{ID: id, Domain: id + ".example.com.", Public: r.IntN(2) == 0,
			NameServers: []string{"ns2.sim.example.", "ns1.sim.example."}}
	},
	mutate: func(r *rand.Rand, v *cloud.DNSZone) string {
		v.NameServers = []string{fmt.Sprintf("ns%d.sim.example.", 1+r.IntN(9)), fmt.Sprintf("ns%d.sim.example.", 10+r.IntN(9))}
		return fmt.Sprintf("name_servers %v", v.NameServers)
	},
}

var dnsRecords = spec[cloud.DNSRecord]{
	idx: kDNSRecord, name: cloud.KindDNSRecord, service: ServiceDNS, prefix: "rec-", list: apiListDNSRecords, status: noAPI,
	id: func(v *cloud.DNSRecord) *string { return &v.ID }, account: func(v *cloud.DNSRecord) *string { return &v.Account },
	clone: func(v cloud.DNSRecord) cloud.DNSRecord { v.Values = slices.Clone(v.Values); return v },
	make: func(r *rand.Rand, id string) cloud.DNSRecord {
		return cloud.DNSRecord{ID: id, Zone: fmt.Sprintf("zone-%08x", 1+r.IntN(100)), Name: id + ".example.com.", Type: "A",
			TTL: pick(r, 60, 300, 3600), Values: []string{ipv4(r), ipv4(r)}}
	},
	mutate: func(r *rand.Rand, v *cloud.DNSRecord) string {
		if r.IntN(2) == 0 {
			v.TTL = pick(r, 30, 60, 120, 300, 600, 3600)
			return fmt.Sprintf("ttl %d", v.TTL)
		}
		v.Values = []string{ipv4(r)}
		return fmt.Sprintf("values %v", v.Values)
	},
}

var vpnGateways = spec[cloud.VPNGateway]{
	idx: kVPNGateway, name: cloud.KindVPNGateway, service: ServiceVPNs, prefix: "vpn-", list: apiListVPNGateways, status: noAPI,
	id: func(v *cloud.VPNGateway) *string { return &v.ID }, account: func(v *cloud.VPNGateway) *string { return &v.Account },
	state: func(v *cloud.VPNGateway) cloud.ResourceState { return v.State },
	make: func(r *rand.Rand, id string) cloud.VPNGateway {
		return cloud.VPNGateway{ID: id, Name: id, Network: fmt.Sprintf("net-%08x", 1+r.IntN(100)), Protocol: "ipsec",
			PublicIP: ipv4(r), State: cloud.ResourceAvailable}
	},
	mutate: func(r *rand.Rand, v *cloud.VPNGateway) string {
		return toggle(r, &v.State, cloud.ResourceAvailable, cloud.ResourceInUse)
	},
}

var databases = spec[cloud.Database]{
	idx: kDatabase, name: cloud.KindDatabase, service: ServiceDatabases, prefix: "db-", list: apiListDatabases, status: apiListDatabaseStatus,
	id: func(v *cloud.Database) *string { return &v.ID }, account: func(v *cloud.Database) *string { return &v.Account },
	state: func(v *cloud.Database) cloud.ResourceState { return v.State },
	make: func(r *rand.Rand, id string) cloud.Database {
		engine := pick(r, "mysql", "postgres", "mariadb")
		return cloud.Database{ID: id, Name: id, Engine: engine, EngineVersion: map[string]string{"mysql": "8.0", "postgres": "16", "mariadb": "11.4"}[engine],
			Size: pick(r, "db.small", "db.medium", "db.large"), StorageGB: 20 * (1 + r.IntN(20)),
			Endpoint: id + ".db.sim.example:5432", State: cloud.ResourceAvailable}
	},
	mutate: func(r *rand.Rand, v *cloud.Database) string {
		switch r.IntN(3) {
		case 0:
			v.StorageGB += 20
			return fmt.Sprintf("storage_gb %d", v.StorageGB)
		case 1:
			v.HighlyAvailable = !v.HighlyAvailable
			return fmt.Sprintf("highly_available %v", v.HighlyAvailable)
		}
		return toggle(r, &v.State, cloud.ResourceAvailable, cloud.ResourceError)
	},
}

var distributions = spec[cloud.Distribution]{
	idx: kDistribution, name: cloud.KindDistribution, service: ServiceCDN, prefix: "cdn-", list: apiListDistributions, status: noAPI,
	id: func(v *cloud.Distribution) *string { return &v.ID }, account: func(v *cloud.Distribution) *string { return &v.Account },
	state: func(v *cloud.Distribution) cloud.ResourceState { return v.State },
	clone: func(v cloud.Distribution) cloud.Distribution { v.Aliases = slices.Clone(v.Aliases); return v },
	make: func(r *rand.Rand, id string) cloud.Distribution {
		return cloud.Distribution{ID: id, Name: id, Origin: id + ".origin.example.com", DomainName: id + ".cdn.sim.example",
			Aliases: []string{"static-" + id + ".example.com"}, State: cloud.ResourceActive}
	},
	mutate: func(r *rand.Rand, v *cloud.Distribution) string {
		return toggle(r, &v.State, cloud.ResourceActive, cloud.ResourceDisabled)
	},
}

var certificates = spec[cloud.Certificate]{
	idx: kCertificate, name: cloud.KindCertificate, service: ServiceCertificates, prefix: "cert-", list: apiListCertificates, status: noAPI,
	id: func(v *cloud.Certificate) *string { return &v.ID }, account: func(v *cloud.Certificate) *string { return &v.Account },
	state: func(v *cloud.Certificate) cloud.ResourceState { return v.State },
	clone: func(v cloud.Certificate) cloud.Certificate { v.SANs = slices.Clone(v.SANs); return v },
	make: func(r *rand.Rand, id string) cloud.Certificate {
		return cloud.Certificate{ID: id, Name: id, Domain: id + ".example.com", SANs: []string{"www." + id + ".example.com"},
			Issuer: pick(r, "Sim CA", "Let's Encrypt"), NotAfter: epoch.Add(time.Duration(90+r.IntN(300)) * 24 * time.Hour),
			State: cloud.ResourceActive}
	},
	mutate: func(_ *rand.Rand, v *cloud.Certificate) string {
		v.NotAfter = v.NotAfter.Add(90 * 24 * time.Hour)
		v.State = cloud.ResourceActive
		return "renewed until " + v.NotAfter.Format(time.DateOnly)
	},
}

var subscriptions = spec[cloud.Subscription]{
	idx: kSubscription, name: cloud.KindSubscription, service: ServiceSubscriptions, prefix: "sub-", list: apiListSubscriptions, status: noAPI,
	id: func(v *cloud.Subscription) *string { return &v.ID }, account: func(v *cloud.Subscription) *string { return &v.Account },
	state: func(v *cloud.Subscription) cloud.ResourceState { return v.State },
	make: func(r *rand.Rand, id string) cloud.Subscription {
		return cloud.Subscription{ID: id, Name: id, Plan: pick(r, "basic", "standard", "enterprise"), Quantity: 1 + r.IntN(20),
			State: cloud.ResourceActive}
	},
	mutate: func(r *rand.Rand, v *cloud.Subscription) string {
		if r.IntN(3) == 0 {
			return toggle(r, &v.State, cloud.ResourceActive, cloud.ResourceSuspended)
		}
		v.Quantity++
		return fmt.Sprintf("quantity %d", v.Quantity)
	},
}

var invoices = spec[cloud.Invoice]{
	idx: kInvoice, name: cloud.KindInvoice, service: ServiceSubscriptions, prefix: "inv-", list: apiListInvoices, status: noAPI,
	id: func(v *cloud.Invoice) *string { return &v.ID }, account: func(v *cloud.Invoice) *string { return &v.Account },
	state: func(v *cloud.Invoice) cloud.ResourceState { return v.State },
	make: func(r *rand.Rand, id string) cloud.Invoice {
		return cloud.Invoice{ID: id, Subscription: fmt.Sprintf("sub-%08x", 1+r.IntN(100)), Period: fmt.Sprintf("2026-%02d", 1+r.IntN(12)),
			Amount: math.Round(r.Float64()*100000) / 100, Currency: "EUR", State: cloud.ResourceOpen}
	},
	mutate: func(r *rand.Rand, v *cloud.Invoice) string {
		switch v.State {
		case cloud.ResourceOpen:
			return toggle(r, &v.State, pick(r, cloud.ResourcePaid, cloud.ResourceOverdue), cloud.ResourceOpen)
		case cloud.ResourceOverdue:
			v.State = cloud.ResourcePaid
			return "state OVERDUE -> PAID"
		}
		v.Amount = math.Round((v.Amount-10)*100) / 100
		return fmt.Sprintf("amount %.2f (credited)", v.Amount)
	},
}

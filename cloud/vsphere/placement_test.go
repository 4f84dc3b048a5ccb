package vsphere

import (
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
)

// testDatacenters makes datacenters of names or inventory paths.
func testDatacenters(paths ...string) []datacenter {
	dcs := make([]datacenter, len(paths))
	for i, p := range paths {
		p = "/" + strings.TrimPrefix(p, "/")
		dcs[i] = datacenter{
			ref:  types.ManagedObjectReference{Type: "Datacenter", Value: fmt.Sprintf("datacenter-%d", i+1)},
			name: path.Base(p), path: p,
		}
	}
	return dcs
}

func TestLaunchDatacenter(t *testing.T) {
	t.Parallel()
	two := testDatacenters("DC0", "/Europe/FRA")
	for _, tc := range []struct {
		name string
		dcs  []datacenter
		cfg  Config
		want string // the datacenter's path, or "" for an error
		err  string // in the error
		is   []error
	}{
		{"OnlyOne", testDatacenters("DC0"), Config{}, "/DC0", "", nil},
		{"OnlyOneRelativePool", testDatacenters("DC0"), Config{ResourcePool: "C1/Resources"}, "/DC0", "", nil},
		{"OnlyOneForeignPath", testDatacenters("DC0"), Config{ResourcePool: "/DC9/host/C/Resources"}, "/DC0", "", nil},
		{"LaunchDatacenterByName", two, Config{LaunchDatacenter: "FRA"}, "/Europe/FRA", "", nil},
		{"LaunchDatacenterByPath", two, Config{LaunchDatacenter: "/Europe/FRA"}, "/Europe/FRA", "", nil},
		{"LaunchDatacenterWins", two, Config{LaunchDatacenter: "DC0", ResourcePool: "/Europe/FRA/host/C/Resources"}, "/DC0", "", nil},
		{"ResourcePoolPath", two, Config{ResourcePool: "/Europe/FRA/host/C/Resources"}, "/Europe/FRA", "", nil},
		{"FolderPath", two, Config{Folder: "/DC0/vm/workers"}, "/DC0", "", nil},
		{"DatastorePath", two, Config{Datastore: "/Europe/FRA/datastore/ds1"}, "/Europe/FRA", "", nil},
		{"AgreeingPaths", two, Config{ResourcePool: "/DC0/host/C/Resources", Folder: "/DC0/vm"}, "/DC0", "", nil},
		{"PrefixIsNotEnough", testDatacenters("DC0", "DC01"), Config{Folder: "/DC01/vm"}, "/DC01", "", nil},
		{"Undecided", two, Config{}, "",
			`LaunchDatacenter is required: the provider covers 2 datacenters (/Europe/FRA, DC0)`, []error{ErrInvalidConfig}},
		{"RelativePathsUndecided", two, Config{ResourcePool: "C/Resources", Folder: "workers"}, "",
			"LaunchDatacenter is required", []error{ErrInvalidConfig}},
		{"UnknownLaunchDatacenter", two, Config{LaunchDatacenter: "DC9"}, "",
			`LaunchDatacenter "DC9" not found (datacenters: /Europe/FRA, DC0)`, []error{ErrInvalidConfig, cloud.ErrNotFound}},
		{"PathInNoDatacenter", two, Config{ResourcePool: "/DC9/host/C/Resources"}, "",
			`ResourcePool "/DC9/host/C/Resources" is in none of the covered datacenters (/Europe/FRA, DC0)`, []error{ErrInvalidConfig, cloud.ErrNotFound}},
		{"Disagree", two, Config{ResourcePool: "/DC0/host/C/Resources", Folder: "/Europe/FRA/vm"}, "",
			`Folder "/Europe/FRA/vm" is in datacenter FRA, but ResourcePool "/DC0/host/C/Resources" is in DC0`, []error{ErrInvalidConfig}},
		{"NoneCovered", nil, Config{}, "", "covers no datacenter", []error{cloud.ErrNotFound}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Provider{cfg: tc.cfg}
			dc, err := p.launchDatacenter(tc.dcs)
			if tc.want != "" {
				require.NoError(t, err)
				require.Equal(t, tc.want, dc.path)
				return
			}
			require.ErrorContains(t, err, tc.err)
			for _, target := range tc.is {
				require.ErrorIs(t, err, target)
			}
		})
	}
}

func TestMatchDatacenter(t *testing.T) {
	t.Parallel()
	dcs := append(testDatacenters("DC0", "/Europe/FRA"), datacenter{
		ref: types.ManagedObjectReference{Type: "Datacenter", Value: "datacenter-9"}, name: "FRA", path: "/Asia/FRA",
	})
	dc, err := matchDatacenter("Datacenter", "DC0", dcs)
	require.NoError(t, err)
	require.Equal(t, "/DC0", dc.path)
	dc, err = matchDatacenter("Datacenter", "Europe/FRA", dcs)
	require.NoError(t, err)
	require.Equal(t, "/Europe/FRA", dc.path)
	_, err = matchDatacenter("Datacenters[2]", "FRA", dcs)
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `Datacenters[2] "FRA" names 2 datacenters: use the inventory path (/Asia/FRA, /Europe/FRA)`)
}

func TestPageToken(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]pageToken{
		"datacenter-3/vm-42": {dc: "datacenter-3", vm: "vm-42"},
		"datacenter-3/":      {dc: "datacenter-3"},
		"vm-42":              {vm: "vm-42"},
		"":                   {},
	} {
		require.Equal(t, want, parseToken(in), in)
	}
	require.Equal(t, "datacenter-3/vm-42", pageToken{dc: "datacenter-3", vm: "vm-42"}.String())
}

package vsphere_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
)

// callCounter is a proxy in front of a simulator that counts the SOAP
// calls by method.
type callCounter struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

var soapMethod = regexp.MustCompile(`<(?:[A-Za-z0-9]+:)?Body[^>]*>\s*<(?:[A-Za-z0-9]+:)?([A-Za-z_]+)`)

func newCallCounter(t *testing.T, sim *vcsimtest.Sim) *callCounter {
	t.Helper()
	c := &callCounter{calls: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "https", Host: sim.Server.URL.Host})
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the simulator's own certificate
	c.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if m := soapMethod.FindSubmatch(body); m != nil {
			c.mu.Lock()
			c.calls[string(m[1])]++
			c.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// take returns the calls counted since the last take.
func (c *callCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	return out
}

// TestKindsCost: a page of each listing costs the same calls whatever the
// number of VMs — one property collector call per datacenter it reaches
// (plus its container view's creation and destruction), and one more with
// the datacenters on a first page — never a call per object.
func TestKindsCost(t *testing.T) {
	costs := map[int]map[string]map[string]int{} // VMs per datacenter -> kind -> calls
	for _, servers := range []int{2, 20} {
		sim := vcsimtest.New(t, vcsimtest.Options{Datacenters: 2, Servers: servers})
		ctx := context.Background()
		for name, vm := range sim.VMs(t) {
			if !vm.Summary.Config.Template {
				done(t)(object.NewVirtualMachine(sim.Client, vm.Self).CreateSnapshot(ctx, name, "", false, false))
			}
		}
		counter := newCallCounter(t, sim)
		cfg := sim.Config(sim.Account())
		cfg.Datacenter, cfg.URL = "", counter.srv.URL+"/sdk"
		p, err := vsphere.New(ctx, cfg)
		require.NoError(t, err)
		a := sim.Account()
		counter.take()
		costs[servers] = map[string]map[string]int{}
		for kind, list := range map[string]func() (int, error){
			cloud.KindDataCenter: func() (int, error) {
				pg, err := p.ListDataCenters(ctx, a, cloud.ListOptions{})
				return len(pg.Items), err
			},
			cloud.KindImage:  func() (int, error) { pg, err := p.ListImages(ctx, a, cloud.ListOptions{}); return len(pg.Items), err },
			cloud.KindVolume: func() (int, error) { pg, err := p.ListVolumes(ctx, a, cloud.ListOptions{}); return len(pg.Items), err },
			cloud.KindSnapshot: func() (int, error) {
				pg, err := p.ListSnapshots(ctx, a, cloud.ListOptions{})
				return len(pg.Items), err
			},
			cloud.KindNetwork: func() (int, error) { pg, err := p.ListNetworks(ctx, a, cloud.ListOptions{}); return len(pg.Items), err },
			cloud.KindAddress: func() (int, error) {
				pg, err := p.ListAddresses(ctx, a, cloud.ListOptions{})
				return len(pg.Items), err
			},
		} {
			n, err := list()
			require.NoError(t, err, kind)
			if kind == cloud.KindVolume || kind == cloud.KindSnapshot {
				require.Equal(t, 2*servers, n, kind)
			}
			costs[servers][kind] = counter.take()
		}
		require.NoError(t, p.Close())
	}
	for kind, calls := range costs[20] {
		require.Equal(t, costs[2][kind], calls, "%s: the calls of a page do not grow with the VMs", kind)
		// The datacenters, then each datacenter's objects: one view each.
		require.Equal(t, map[string]int{"CreateContainerView": 3, "RetrievePropertiesEx": 3, "DestroyView": 3}, calls, kind)
	}
	t.Logf("calls of a first page over 2 datacenters, 2 or 20 VMs each: %v", costs[20][cloud.KindVolume])
}

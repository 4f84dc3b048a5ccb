package guest

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/stratusworks/worker/cloud"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := func() CollectorConfig {
		return CollectorConfig{
			SourceCIDR:  netip.MustParsePrefix("127.0.0.0/8"),
			HostKeys:    PinnedKeys(nil),
			Credentials: CredentialsFunc(func(context.Context, string, string, string) (string, []ssh.AuthMethod, error) { return "", nil, nil }),
			Offsets:     NewMemoryOffsets(),
			LogDir:      t.TempDir(),
		}
	}
	tests := []struct {
		name  string
		mod   func(*CollectorConfig)
		field string // "" = valid
	}{
		{"Valid", func(*CollectorConfig) {}, ""},
		{"OutputDirInsteadOfLogDir", func(c *CollectorConfig) {
			c.LogDir = ""
			c.OutputDir = func(string) (string, error) { return "/tmp", nil }
		}, ""},
		{"NoSourceCIDR", func(c *CollectorConfig) { c.SourceCIDR = netip.Prefix{} }, "SourceCIDR"},
		{"NoHostKeys", func(c *CollectorConfig) { c.HostKeys = nil }, "HostKeys"},
		{"NoCredentials", func(c *CollectorConfig) { c.Credentials = nil }, "Credentials"},
		{"NoOffsets", func(c *CollectorConfig) { c.Offsets = nil }, "Offsets"},
		{"NoOutput", func(c *CollectorConfig) { c.LogDir = "" }, "OutputDir"},
		{"NegativeTimeout", func(c *CollectorConfig) { c.Timeout = -1 }, "Timeout"},
		{"NegativeConcurrency", func(c *CollectorConfig) { c.Concurrency = -1 }, "Concurrency"},
		{"NegativeMaxRead", func(c *CollectorConfig) { c.MaxReadBytes = -1 }, "MaxReadBytes"},
		{"BadPort", func(c *CollectorConfig) { c.Port = 70000 }, "Port"},
		{"RelativeFile", func(c *CollectorConfig) { c.Files = []string{"var/log/syslog"} }, "Files"},
		{"UncleanFile", func(c *CollectorConfig) { c.Files = []string{"/var/log/../syslog"} }, "Files"},
		{"RootFile", func(c *CollectorConfig) { c.Files = []string{"/"} }, "Files"},
		{"ControlCharFile", func(c *CollectorConfig) { c.Files = []string{"/var/log/a\nb"} }, "Files"},
		{"SameBaseName", func(c *CollectorConfig) { c.Files = []string{"/var/log/syslog", "/opt/app/SYSLOG"} }, "Files"},
		{"BadRotatedSuffix", func(c *CollectorConfig) { c.RotatedSuffix = "/old" }, "RotatedSuffix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mod(&cfg)
			err := cfg.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "CollectorConfig."+tt.field)
			_, err = NewCollector(cfg)
			require.ErrorContains(t, err, "CollectorConfig."+tt.field)
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := CollectorConfig{LogDir: "/logs"}
	c.setDefaults()
	require.Equal(t, DefaultFiles, c.Files)
	require.Equal(t, DefaultTimeout, c.Timeout)
	require.Equal(t, DefaultConcurrency, c.Concurrency)
	require.Equal(t, DefaultPort, c.Port)
	require.EqualValues(t, DefaultMaxReadBytes, c.MaxReadBytes)
	require.Equal(t, ".1", c.RotatedSuffix)
	require.NotNil(t, c.Logger)
	dir, err := c.OutputDir("../../etc")
	require.NoError(t, err)
	require.Equal(t, "/logs", dir[:len("/logs")])
	require.NotContains(t, dir[len("/logs/"):], "/")
}

func TestSourceAddr(t *testing.T) {
	t.Parallel()
	ipnet := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		require.NoError(t, err)
		n.IP = ip
		return n
	}
	host := []net.Addr{ipnet("127.0.0.1/8"), ipnet("::1/128"), ipnet("10.0.0.5/24"), ipnet("fd00::5/64")}
	tests := []struct {
		cidr, want string // want "" = error
	}{
		{"127.0.0.0/8", "127.0.0.1"},
		{"10.0.0.0/24", "10.0.0.5"},
		{"10.0.0.5/32", "10.0.0.5"},
		{"0.0.0.0/0", "127.0.0.1"},
		{"fd00::/64", "fd00::5"},
		{"127.0.0.2/32", "127.0.0.2"}, // loopback network of lo
		{"10.0.0.7/32", ""},           // not ours, only in our subnet
		{"192.0.2.0/24", ""},
	}
	for _, tt := range tests {
		got, err := sourceAddr(netip.MustParsePrefix(tt.cidr), host)
		if tt.want == "" {
			require.ErrorContains(t, err, "10.0.0.5/24", tt.cidr)
			continue
		}
		require.NoError(t, err, tt.cidr)
		require.Equal(t, tt.want, got.String(), tt.cidr)
	}
}

func TestAddress(t *testing.T) {
	t.Parallel()
	c := &Collector{cfg: CollectorConfig{Port: 2222}}
	for in, want := range map[string]string{
		"10.0.0.5": "10.0.0.5:2222", "10.0.0.5:22": "10.0.0.5:22", "host": "host:2222",
		"::1": "[::1]:2222", "[::1]": "[::1]:2222", "[::1]:22": "[::1]:22",
	} {
		got, err := c.address(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", ":22", "host:"} {
		_, err := c.address(bad)
		require.Error(t, err, bad)
	}
}

func TestFromServer(t *testing.T) {
	t.Parallel()
	g := FromServer("acme", cloud.Server{ID: "i-1", Account: "a", State: cloud.StateRunning,
		PrivateIPs: []string{"10.0.0.5"}, PublicIPs: []string{"198.51.100.7"}})
	require.Equal(t, Guest{Customer: "acme", Account: "a", ServerID: "i-1", Address: "10.0.0.5", State: cloud.StateRunning}, g)
	g = FromServer("acme", cloud.Server{ID: "i-2", PublicIPs: []string{"198.51.100.7"}})
	require.Equal(t, "198.51.100.7", g.Address)
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	require.Equal(t, `'it'\''s'`, shellQuote("it's"))
	require.Equal(t, []byte("a\nb\n"), completeLines([]byte("a\nb\nc"), 100))
	require.Nil(t, completeLines([]byte("abc"), 100))
	require.Equal(t, []byte("abc"), completeLines([]byte("abc"), 3))
	require.Equal(t, []byte("cdef"), lastBytes([]byte("abc"), []byte("def"), 4))
	require.Equal(t, []byte("ef"), lastBytes([]byte("abc"), []byte("def"), 2))
	require.Equal(t, "syslog", localName("/var/log/syslog"))
	require.Equal(t, "auth.log", localName("/var/log/auth.log"))
	require.NotContains(t, localName("/var/log/.hidden"), "/")
	require.NotEqual(t, ".hidden", localName("/var/log/.hidden"))
}

func TestMemoryOffsets(t *testing.T) {
	t.Parallel()
	var m MemoryOffsets
	k := GuestFile{"a", "s", "/p"}
	o, err := m.Get(t.Context(), k)
	require.NoError(t, err)
	require.Zero(t, o)
	require.NoError(t, m.Put(t.Context(), k, Offset{Identity: "1:2", Bytes: 3}))
	o, err = m.Get(t.Context(), k)
	require.NoError(t, err)
	require.Equal(t, Offset{Identity: "1:2", Bytes: 3}, o)
}

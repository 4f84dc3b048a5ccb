package worker

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const modulePath = "github.com/stratusworks/worker"

// layers places every package of the module (by its path below the module;
// "" is the root package) in a layer: a package imports only packages of
// lower layers, so nothing imports a package above it and packages of one
// layer do not know each other. DESIGN.md shows the same graph. A new
// package goes in here, at the lowest layer its imports allow.
var layers = map[string]int{
	// 0: nothing of the module.
	"state": 0, "clock": 0, "km": 0, "accounts": 0, "sqlitemq": 0,
	"internal/jsonscan": 0, "internal/text": 0, "internal/safefs": 0,
	"internal/testenv": 0, "internal/faultproxy": 0, "internal/sshtest": 0, "internal/testca": 0,
	// 1: the state model's users, storage, the transport, logs.
	"cloud": 1, "poller": 1, "persist": 1, "rabbitmq": 1, "logging": 1,
	// 2: providers and guest logs on package cloud; the root's internal link.
	"cloud/sim": 2, "cloud/vsphere": 2, "cloud/guest": 2, "internal/workerlink": 2,
	// 3: test helpers of a provider.
	"cloud/vsphere/vcsimtest": 3,
	// 4: the composition root.
	"": 4,
	// 5: test helpers of the worker; the service's configuration.
	"workertest": 5, "service": 5, "service/status": 2,
	// 6: programs.
	"examples/migrate": 6, "examples/quickstart": 6, "examples/readme": 6, "examples/workers": 6,
}

// testOnly are the packages that only tests (and test helpers) import.
var testOnly = []string{"internal/testenv", "internal/faultproxy", "internal/sshtest", "internal/testca"}

// TestLayers: every package of the module is in the table, imports only
// packages of lower layers, and no package that ships imports a test-only
// one. The imports are those of `go list` (non-test files, default build).
func TestLayers(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go tool is not on PATH (%v): cannot list the module's imports", err)
	}
	out, err := exec.Command(goTool, "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", modulePath+"/...").Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list: %v\n%s", err, ee.Stderr)
	}
	require.NoError(t, err, "go list")

	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg, ok := relative(fields[0])
		require.True(t, ok, "go list named %s, outside the module", fields[0])
		graph[pkg] = []string{}
		for _, imp := range fields[1:] {
			if rel, ok := relative(imp); ok {
				graph[pkg] = append(graph[pkg], rel)
			}
		}
	}
	require.NoError(t, sc.Err())
	require.Contains(t, graph, "", "go list must list the root package")

	for pkg, imports := range graph {
		layer, ok := layers[pkg]
		if !ok {
			t.Errorf("package %s is not in the layer table of layers_test.go (nor in DESIGN.md's graph); its imports: %v", show(pkg), imports)
			continue
		}
		for _, imp := range imports {
			if l, ok := layers[imp]; ok && l >= layer {
				t.Errorf("%s (layer %d) imports %s (layer %d): a package imports only packages of lower layers", show(pkg), layer, show(imp), l)
			}
			if slices.Contains(testOnly, imp) && !slices.Contains(testOnly, pkg) {
				t.Errorf("%s imports the test-only package %s", show(pkg), show(imp))
			}
		}
	}
	for pkg := range layers {
		if _, ok := graph[pkg]; !ok {
			t.Errorf("the layer table names %s, which go list does not list: remove it", show(pkg))
		}
	}
}

// relative is path below the module ("" for the module's root package).
func relative(path string) (string, bool) {
	if path == modulePath {
		return "", true
	}
	rel, ok := strings.CutPrefix(path, modulePath+"/")
	return rel, ok
}

func show(rel string) string {
	if rel == "" {
		return "worker (root)"
	}
	return rel
}

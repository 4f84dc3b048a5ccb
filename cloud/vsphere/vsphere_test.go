package vsphere_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/cloud/vsphere"
	"github.com/stratusworks/worker/cloud/vsphere/vcsimtest"
)

// The tests against vcsim. They do not run in parallel (see vcsimtest).

const (
	testUser     = vcsimtest.DefaultUsername
	testPassword = vcsimtest.DefaultPassword
	testAccount  = vcsimtest.DefaultAccount
	testImage    = vcsimtest.DefaultImage
	templateName = "DC0_C0_RP0_VM4"
)

// newSim starts a simulator with one datacenter, one cluster of one host and
// five VMs: VM0 and VM3 on, VM1 off, VM2 suspended, VM4 the template.
func newSim(t *testing.T) *vcsimtest.Sim {
	t.Helper()
	sim := vcsimtest.New(t, vcsimtest.Options{Servers: 4})
	require.Equal(t, templateName, sim.Template())
	ctx := context.Background()
	wait := func(task *object.Task, err error) {
		require.NoError(t, err)
		require.NoError(t, task.Wait(ctx))
	}
	wait(sim.VM(t, "DC0_C0_RP0_VM1").PowerOff(ctx))
	wait(sim.VM(t, "DC0_C0_RP0_VM2").Suspend(ctx))
	return sim
}

// waitOp polls the operation until it is terminal.
func waitOp(t *testing.T, p *vsphere.Provider, id string) cloud.Operation {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		op, err := p.Operation(context.Background(), testAccount, id)
		require.NoError(t, err)
		if op.State.Terminal() {
			return op
		}
		require.True(t, time.Now().Before(deadline), "operation %s still %s", id, op.State)
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReadOnly runs the tests that change nothing against one simulator.
func TestReadOnly(t *testing.T) {
	sim := newSim(t)
	p := sim.Provider(t)
	t.Run("ListServersPaginates", func(t *testing.T) { testListServersPaginates(t, sim, p) })
	t.Run("ListServerStatusMatchesListServers", func(t *testing.T) { testListServerStatusMatchesListServers(t, sim, p) })
	t.Run("GetServer", func(t *testing.T) { testGetServer(t, sim, p) })
}

func testListServersPaginates(t *testing.T, sim *vcsimtest.Sim, p *vsphere.Provider) {
	ctx := context.Background()

	var got []cloud.Server
	tok, pages := "", 0
	for {
		page, err := p.ListServers(ctx, testAccount, cloud.ListOptions{PageSize: 2, PageToken: tok})
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Servers), 2)
		got = append(got, page.Servers...)
		pages++
		if tok = page.NextToken; tok == "" {
			break
		}
		require.Less(t, pages, 10, "pagination does not end")
	}
	require.Equal(t, 2, pages)

	states := map[string]cloud.ServerState{}
	ids := map[string]bool{}
	for _, s := range got {
		require.False(t, ids[s.ID], "server %s listed twice", s.ID)
		ids[s.ID] = true
		states[s.Name] = s.State
		require.Equal(t, testAccount, s.Account)
		require.Equal(t, "DC0", s.Region)
		require.False(t, s.LaunchedAt.IsZero())
		require.NotEmpty(t, s.Size)
	}
	require.Equal(t, map[string]cloud.ServerState{
		"DC0_C0_RP0_VM0": cloud.StateRunning,
		"DC0_C0_RP0_VM1": cloud.StateStopped,
		"DC0_C0_RP0_VM2": cloud.StateStopped, // suspended
		"DC0_C0_RP0_VM3": cloud.StateRunning,
	}, states, "the template is not a server")
	require.True(t, slices.IsSortedFunc(got, func(a, b cloud.Server) int { return vsphere.CompareIDs(a.ID, b.ID) }))

	t.Run("DefaultPageSizeReturnsAll", func(t *testing.T) {
		page, err := p.ListServers(ctx, testAccount, cloud.ListOptions{})
		require.NoError(t, err)
		require.Equal(t, got, page.Servers)
		require.Empty(t, page.NextToken)
	})
	t.Run("TokenOfDeletedServerStillWorks", func(t *testing.T) {
		page, err := p.ListServers(ctx, testAccount, cloud.ListOptions{PageToken: got[1].ID + "0000"})
		require.NoError(t, err)
		require.Empty(t, page.Servers, "vm-N0000 sorts after every id here")
		page, err = p.ListServers(ctx, testAccount, cloud.ListOptions{PageToken: "vm-0"})
		require.NoError(t, err)
		require.Len(t, page.Servers, 4)
	})
}

func testListServerStatusMatchesListServers(t *testing.T, sim *vcsimtest.Sim, p *vsphere.Provider) {
	ctx := context.Background()

	full, err := p.ListServers(ctx, testAccount, cloud.ListOptions{})
	require.NoError(t, err)
	var want []cloud.ServerStatus
	for _, s := range full.Servers {
		want = append(want, cloud.ServerStatus{ID: s.ID, State: s.State})
	}
	var got []cloud.ServerStatus
	tok := ""
	for {
		page, err := p.ListServerStatus(ctx, testAccount, cloud.ListOptions{PageSize: 3, PageToken: tok})
		require.NoError(t, err)
		got = append(got, page.Statuses...)
		if tok = page.NextToken; tok == "" {
			break
		}
	}
	require.Equal(t, want, got)
}

func testGetServer(t *testing.T, sim *vcsimtest.Sim, p *vsphere.Provider) {
	ctx := context.Background()
	vms := sim.VMs(t)

	s, err := p.GetServer(ctx, testAccount, vms["DC0_C0_RP0_VM0"].Self.Value)
	require.NoError(t, err)
	require.Equal(t, "DC0_C0_RP0_VM0", s.Name)
	require.Equal(t, cloud.StateRunning, s.State)

	for name, id := range map[string]string{
		"Unknown":  "vm-99999",
		"NotAVM":   "host-1",
		"Empty":    "",
		"Template": vms[templateName].Self.Value,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := p.GetServer(ctx, testAccount, id)
			require.ErrorIs(t, err, cloud.ErrNotFound)
		})
	}
	t.Run("OtherAccount", func(t *testing.T) {
		_, err := p.GetServer(ctx, "someone-else", s.ID)
		require.ErrorIs(t, err, cloud.ErrNotFound)
		require.Contains(t, err.Error(), "someone-else")
	})
}

func TestLaunchTagFindTerminate(t *testing.T) {
	sim := newSim(t)
	p := sim.Provider(t)
	ctx := context.Background()

	req := cloud.LaunchRequest{
		Name: "web-1", Image: testImage, Size: "small",
		Tags: map[string]string{"idempotency-key": "launch-42", "owner": "alice"},
	}
	op, err := p.Launch(ctx, testAccount, req)
	require.NoError(t, err)
	require.Equal(t, vsphere.KindLaunch, op.Kind)
	require.Equal(t, cloud.OpRunning, op.State)
	require.Regexp(t, `^task-\d+$`, op.ID)

	done := waitOp(t, p, op.ID)
	require.Equal(t, cloud.OpSucceeded, done.State, done.Error)
	require.Regexp(t, `^vm-\d+$`, done.ResourceID)

	again, err := p.Operation(ctx, testAccount, op.ID)
	require.NoError(t, err)
	require.Equal(t, done, again, "a finished operation stays queryable and stable")

	s, err := p.GetServer(ctx, testAccount, done.ResourceID)
	require.NoError(t, err)
	require.Equal(t, "web-1", s.Name)
	require.Equal(t, cloud.StateRunning, s.State)
	require.Equal(t, req.Tags, s.Tags)
	require.Equal(t, testImage, s.Image)
	require.Equal(t, "small", s.Size)

	vm := sim.VMs(t)["web-1"]
	require.EqualValues(t, 2, vm.Summary.Config.NumCpu)
	require.EqualValues(t, 2048, vm.Summary.Config.MemorySizeMB)
	require.Len(t, vm.CustomValue, 2, "tags are mirrored into custom attributes")

	found, err := p.FindServersByTag(ctx, testAccount, "idempotency-key", "launch-42")
	require.NoError(t, err)
	require.Len(t, found, 1)
	require.Equal(t, s, found[0])
	none, err := p.FindServersByTag(ctx, testAccount, "idempotency-key", "launch-43")
	require.NoError(t, err)
	require.Empty(t, none)

	term, err := p.Terminate(ctx, testAccount, s.ID)
	require.NoError(t, err)
	require.Equal(t, vsphere.KindTerminate, term.Kind)
	require.Equal(t, s.ID, term.ResourceID)
	termDone := waitOp(t, p, term.ID)
	require.Equal(t, cloud.OpSucceeded, termDone.State, termDone.Error)

	_, err = p.GetServer(ctx, testAccount, s.ID)
	require.ErrorIs(t, err, cloud.ErrNotFound)
	found, err = p.FindServersByTag(ctx, testAccount, "idempotency-key", "launch-42")
	require.NoError(t, err)
	require.Empty(t, found)
	_, err = p.Terminate(ctx, testAccount, s.ID)
	require.ErrorIs(t, err, cloud.ErrNotFound, "terminating a gone server")
}

// launchOnce is the shape of the SDK's launch handler: the idempotency key
// lives in a tag, so a redelivered action (after a crash between the cloud
// call and recording the job) finds the server instead of launching another.
// It returns the existing server's id, or the new launch's operation.
func launchOnce(ctx context.Context, c cloud.Compute, account, key string, req cloud.LaunchRequest) (string, *cloud.Operation, error) {
	const tag = "idempotency-key"
	found, err := c.FindServersByTag(ctx, account, tag, key)
	if err != nil {
		return "", nil, err
	}
	if len(found) > 0 {
		return found[0].ID, nil, nil
	}
	tags := map[string]string{tag: key}
	for k, v := range req.Tags {
		tags[k] = v
	}
	req.Tags = tags
	op, err := c.Launch(ctx, account, req)
	if err != nil {
		return "", nil, err
	}
	return "", &op, nil
}

func TestCrashAfterLaunchFindsServerByTag(t *testing.T) {
	sim := newSim(t)
	ctx := context.Background()
	const key = "action-7f3c"
	req := cloud.LaunchRequest{Name: "db-1", Image: testImage}

	// First delivery: the handler launches, then "crashes" before recording
	// the operation: the provider (process) is gone, the operation forgotten.
	first, err := vsphere.New(ctx, sim.Config(testAccount))
	require.NoError(t, err)
	id, op, err := launchOnce(ctx, first, testAccount, key, req)
	require.NoError(t, err)
	require.Empty(t, id)
	require.NotNil(t, op)
	require.NoError(t, first.Close())

	// The clone finishes in vCenter regardless.
	task := object.NewTask(sim.Client, types.ManagedObjectReference{Type: "Task", Value: op.ID})
	require.NoError(t, task.Wait(ctx))

	// Redelivery in a new process: the tag finds the server; nothing is cloned.
	second := sim.Provider(t)
	before := len(sim.VMs(t))
	id, op2, err := launchOnce(ctx, second, testAccount, key, req)
	require.NoError(t, err)
	require.Nil(t, op2, "no second launch")
	require.NotEmpty(t, id)
	require.Len(t, sim.VMs(t), before)

	found, err := second.FindServersByTag(ctx, testAccount, "idempotency-key", key)
	require.NoError(t, err)
	require.Len(t, found, 1)
	require.Equal(t, "db-1", found[0].Name)

	// Another process can still read the first launch's task.
	got, err := second.Operation(ctx, testAccount, op.ID)
	require.NoError(t, err)
	require.Equal(t, cloud.OpSucceeded, got.State)
	require.Equal(t, vsphere.KindLaunch, got.Kind)
	require.Equal(t, id, got.ResourceID)
}

func TestOperationAfterVCenterForgetsTask(t *testing.T) {
	sim := newSim(t)
	p := sim.Provider(t)
	ctx := context.Background()
	forget := func(id string) {
		ref := types.ManagedObjectReference{Type: "Task", Value: id}
		require.NoError(t, object.NewTask(sim.Client, ref).Wait(ctx))
		sim.Model.Service.Context.Map.Remove(sim.Model.Service.Context, ref)
	}

	op, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Name: "cache-1", Image: testImage,
		Tags: map[string]string{"role": "cache"}})
	require.NoError(t, err)
	forget(op.ID)
	done := waitOp(t, p, op.ID)
	require.Equal(t, cloud.OpSucceeded, done.State, done.Error)
	s, err := p.GetServer(ctx, testAccount, done.ResourceID)
	require.NoError(t, err)
	require.Equal(t, "cache-1", s.Name)
	require.Equal(t, cloud.StateRunning, s.State)

	term, err := p.Terminate(ctx, testAccount, s.ID)
	require.NoError(t, err)
	forget(term.ID)
	require.Equal(t, cloud.OpSucceeded, waitOp(t, p, term.ID).State)

	t.Run("UnknownTask", func(t *testing.T) {
		_, err := p.Operation(ctx, testAccount, "task-999999")
		require.ErrorIs(t, err, cloud.ErrNotFound)
	})
}

func TestLaunchFailures(t *testing.T) {
	sim := newSim(t)
	p := sim.Provider(t)
	ctx := context.Background()

	t.Run("UnknownImage", func(t *testing.T) {
		_, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Name: "x", Image: "windows-95"})
		require.ErrorIs(t, err, cloud.ErrNotFound)
		require.ErrorIs(t, err, cloud.ErrInvalidRequest)
		require.False(t, cloud.IsTransient(err))
		require.Contains(t, err.Error(), "windows-95")
	})
	t.Run("NoImage", func(t *testing.T) {
		_, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Name: "x"})
		require.ErrorIs(t, err, cloud.ErrInvalidRequest)
	})
	t.Run("UnmappedImageMustBeATemplate", func(t *testing.T) {
		_, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Name: "x", Image: "DC0_C0_RP0_VM0"})
		require.ErrorIs(t, err, cloud.ErrNotFound)
	})
	t.Run("TemplateByName", func(t *testing.T) {
		op, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Image: templateName})
		require.NoError(t, err)
		done := waitOp(t, p, op.ID)
		require.Equal(t, cloud.OpSucceeded, done.State, done.Error)
	})
	t.Run("UnknownSize", func(t *testing.T) {
		_, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Name: "x", Image: testImage, Size: "huge"})
		require.ErrorIs(t, err, cloud.ErrNotFound)
		require.ErrorIs(t, err, cloud.ErrInvalidRequest)
		require.Contains(t, err.Error(), "small", "names the configured sizes")
	})
	t.Run("DuplicateNameFailsTheOperation", func(t *testing.T) {
		op, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Name: "DC0_C0_RP0_VM0", Image: testImage})
		require.NoError(t, err)
		done := waitOp(t, p, op.ID)
		require.Equal(t, cloud.OpFailed, done.State)
		require.Contains(t, done.Error, "DuplicateName")
	})
	t.Run("InsufficientResourcesIsCapacity", func(t *testing.T) {
		sim.Model.Service.AddFaultRule(&simulator.FaultInjectionRule{
			MethodName: "CloneVM_Task", ObjectType: "*", ObjectName: "*", Probability: 1, MaxCount: 1,
			FaultType: simulator.FaultTypeCustom, Fault: &types.InsufficientMemoryResourcesFault{}, Enabled: true,
		})
		_, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Name: "big", Image: testImage})
		require.ErrorIs(t, err, cloud.ErrCapacity)
		require.True(t, cloud.IsTransient(err))
	})
}

// On plain vcsim, clones ignore CloneSpec.Config and CloneSpec.PowerOn: the
// follow-up steps of Operation apply them.
func TestLaunchOnSimulatorIgnoringCloneSpec(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{PlainClone: true})
	p := sim.Provider(t)
	ctx := context.Background()

	op, err := p.Launch(ctx, testAccount, cloud.LaunchRequest{Name: "app-1", Image: testImage, Size: "small",
		Tags: map[string]string{"team": "blue"}})
	require.NoError(t, err)
	done := waitOp(t, p, op.ID)
	require.Equal(t, cloud.OpSucceeded, done.State, done.Error)
	s, err := p.GetServer(ctx, testAccount, done.ResourceID)
	require.NoError(t, err)
	require.Equal(t, cloud.StateRunning, s.State)
	require.Equal(t, map[string]string{"team": "blue"}, s.Tags)
	require.Equal(t, "small", s.Size)
	require.EqualValues(t, 2, sim.VMs(t)["app-1"].Summary.Config.NumCpu)
}

func TestSessionExpiryLogsInAgain(t *testing.T) {
	sim := newSim(t)
	p := sim.Provider(t)
	ctx := context.Background()

	require.NoError(t, vsphere.ExpireSession(ctx, p)) // as if vCenter expired the session
	page, err := p.ListServers(ctx, testAccount, cloud.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Servers, 4)

	sim.Model.Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: "CreateContainerView", ObjectType: "*", ObjectName: "*", Probability: 1, MaxCount: 1,
		FaultType: simulator.FaultTypeNotAuthenticated, Enabled: true,
	})
	_, err = p.ListServerStatus(ctx, testAccount, cloud.ListOptions{})
	require.NoError(t, err, "one NotAuthenticated is retried after a login")

	sim.Model.Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: "CreateContainerView", ObjectType: "*", ObjectName: "*", Probability: 1, MaxCount: 2,
		FaultType: simulator.FaultTypeNotAuthenticated, Enabled: true,
	})
	_, err = p.ListServerStatus(ctx, testAccount, cloud.ListOptions{})
	require.ErrorIs(t, err, cloud.ErrAuthentication, "but only once per call")
}

func TestWrongPasswordIsAuthentication(t *testing.T) {
	sim := newSim(t)
	cfg := sim.Config(testAccount)
	const wrong = "hunter2-wrong-Secret"
	cfg.Password = vsphere.NewSecret(wrong)
	_, err := vsphere.New(context.Background(), cfg)
	require.ErrorIs(t, err, cloud.ErrAuthentication)
	require.False(t, cloud.IsTransient(err))
	for _, s := range []string{err.Error(), fmtAll(err)} {
		require.NotContains(t, s, wrong)
		require.NotContains(t, s, testPassword)
	}
}

func TestUnreachableIsCommunication(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := vsphere.New(context.Background(), vsphere.Config{
		URL: "https://127.0.0.1:1/sdk", Username: testUser, Password: vsphere.NewSecret(testPassword), Timeout: 5 * time.Second,
	})
	require.ErrorIs(t, err, cloud.ErrCommunication)
	require.True(t, cloud.IsTransient(err))
	require.Less(t, time.Since(start), 3*time.Second)
	require.NotContains(t, fmtAll(err), testPassword)
}

func TestCAFileVerifiesTLS(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{VerifyTLS: true})
	cfg := sim.Config(testAccount)
	require.False(t, cfg.Insecure)
	require.NotEmpty(t, cfg.CAFile)

	noCA := cfg
	noCA.CAFile = ""
	_, err := vsphere.New(context.Background(), noCA)
	require.ErrorIs(t, err, cloud.ErrCommunication, "vcsim's certificate is not in the system pool")

	p, err := vsphere.New(context.Background(), cfg)
	require.NoError(t, err)
	require.NoError(t, p.Close())
}

func TestDatacenterChoice(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{Datacenters: 2, Servers: 1})
	ctx := context.Background()

	// Changed in issue 11: with several datacenters and Datacenter empty, New
	// no longer fails; the provider covers them all (TestAllDatacenters), and
	// only a launch that cannot tell where to go fails.
	cfg := sim.Config(testAccount)
	cfg.Datacenter = ""
	all, err := vsphere.New(ctx, cfg)
	require.NoError(t, err)
	defer all.Close()
	require.Equal(t, []string{"/DC0", "/DC1"}, all.Datacenters())
	_, err = all.Launch(ctx, testAccount, cloud.LaunchRequest{Image: testImage})
	require.ErrorIs(t, err, cloud.ErrInvalidRequest)
	require.ErrorIs(t, err, vsphere.ErrInvalidConfig)
	require.ErrorContains(t, err, "LaunchDatacenter")
	require.ErrorContains(t, err, "DC0, DC1")

	cfg.Datacenter = "DC9"
	_, err = vsphere.New(ctx, cfg)
	require.ErrorIs(t, err, cloud.ErrNotFound)
	require.ErrorContains(t, err, "DC0, DC1")

	cfg.Datacenter = "DC1"
	p, err := vsphere.New(ctx, cfg)
	require.NoError(t, err)
	defer p.Close()
	page, err := p.ListServers(ctx, testAccount, cloud.ListOptions{})
	require.NoError(t, err)
	require.Len(t, page.Servers, 1)
	require.Equal(t, "DC1", page.Servers[0].Region)
	require.Equal(t, "DC1_C0_RP0_VM0", page.Servers[0].Name)

	other := sim.VMs(t)["DC0_C0_RP0_VM0"].Self.Value
	_, err = p.GetServer(ctx, testAccount, other)
	require.ErrorIs(t, err, cloud.ErrNotFound, "a VM of another datacenter is not this provider's")
}

func TestContextCancellation(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{})
	p := sim.Provider(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := p.ListServers(ctx, testAccount, cloud.ListOptions{})
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, cloud.ErrCommunication, "the caller gave up; the cloud did not fail")
	_, err = p.Launch(ctx, testAccount, cloud.LaunchRequest{Image: testImage})
	require.ErrorIs(t, err, context.Canceled)
	_, err = vsphere.New(ctx, sim.Config(testAccount))
	require.ErrorIs(t, err, context.Canceled)

	t.Run("MidCall", func(t *testing.T) {
		// A vCenter that accepts connections and never answers.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		cfg := sim.Config(testAccount)
		cfg.URL = "https://" + l.Addr().String() + "/sdk"

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = vsphere.New(ctx, cfg)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NotErrorIs(t, err, cloud.ErrCommunication)
		require.Less(t, time.Since(start), time.Second)

		// Config.Timeout, by contrast, is the cloud being too slow.
		cfg.Timeout = 50 * time.Millisecond
		_, err = vsphere.New(context.Background(), cfg)
		require.ErrorIs(t, err, cloud.ErrCommunication)
	})
}

// fmtAll formats err with the verbs that could reveal more than Error().
func fmtAll(err error) string {
	return fmt.Sprintf("%v|%+v|%#v|%s|%q", err, err, err, err, err)
}

func TestClosedProviderRefusesCalls(t *testing.T) {
	sim := vcsimtest.New(t, vcsimtest.Options{})
	p, err := vsphere.New(context.Background(), sim.Config(testAccount))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "idempotent")
	_, err = p.ListServers(context.Background(), testAccount, cloud.ListOptions{})
	require.ErrorIs(t, err, vsphere.ErrClosed)
}

package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"time"

	"github.com/stratusworks/worker/clock"
	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/persist"
)

// LaunchTag is the server tag that carries a launch's idempotency key
// (Action.Key). A redelivered launch finds the server by it instead of
// launching a second one.
const LaunchTag = "stratusworks-launch-key"

// LaunchRequest is the payload of a "server.launch" action.
type LaunchRequest struct {
	cloud.LaunchRequest
	// Firewall, when set, is the firewall (security group) of the new server:
	// before launching, the worker authorizes ingress to the management port
	// from Config.SourceCIDR on it, so that guest log collection can connect.
	Firewall string `json:"firewall,omitempty"`
}

// launcher is the part behind the built-in "server.launch" handler (present
// when Config.Cloud is set). It launches a server exactly once per
// Action.Key, however often the action is delivered:
//
//  1. it claims a launch intent keyed by Action.Key (a row in the store);
//  2. if an earlier attempt already recorded its launch, it only makes sure the
//     job is tracked;
//  3. if an earlier attempt claimed but did not record (it may still be
//     running, or have crashed after the cloud call), it looks for a server
//     tagged with the key; a cloud with eventual consistency may not list it
//     yet, so until Config.LaunchConsistencyWindow has passed since the claim
//     was last renewed it snoozes (see [Snooze]: no retry budget is spent)
//     rather than launch. The attempt that holds the claim renews it while
//     its cloud calls run, so a slow clone never lets a duplicate launch;
//  4. otherwise it launches with the key as a tag, records the launch and
//     tracks the operation as a job ("launch/<key>").
type launcher struct {
	store launchStore
	cloud cloud.Provider
	jobs  interface {
		track(context.Context, persist.Job) error
	}
	clock  clock.Clock
	window time.Duration // Config.LaunchConsistencyWindow
	source netip.Prefix  // Config.SourceCIDR
	port   int           // Config.ManagementPort
	log    *slog.Logger
	obs    observer

	afterLaunch func() error // tests: runs right after the cloud launch call
}

func (l *launcher) handlers() map[string]HandlerFunc {
	return map[string]HandlerFunc{TypeServerLaunch: l.handle}
}

func (l *launcher) handle(ctx context.Context, a Action) error {
	var req LaunchRequest
	if err := a.Decode(&req); err != nil {
		return Permanent(err)
	}
	if a.Account == "" {
		return Permanent(fmt.Errorf("%w: server.launch %s has no Account", ErrInvalidAction, a.ID))
	}
	compute, err := l.cloud.Compute()
	if err != nil {
		return Permanent(err)
	}
	intent, fresh, err := l.store.ClaimLaunch(ctx, persist.LaunchIntent{Key: a.Key, Account: a.Account, Customer: a.Customer, Request: a.Payload})
	if errors.Is(err, persist.ErrInvalid) {
		return Permanent(err) // a key or account the store cannot take: retrying will not help
	}
	if err != nil {
		return err
	}
	jobID := "launch/" + a.Key
	if intent.State == persist.LaunchLaunched {
		return l.trackLaunch(ctx, a, jobID, intent.OperationID, intent.ServerID)
	}
	if !fresh {
		found, err := compute.FindServersByTag(ctx, a.Account, LaunchTag, a.Key)
		if err != nil {
			return cloudErr(err)
		}
		if len(found) > 0 {
			s := found[0]
			actionLog(l.log, a).Info("launch already happened; found the server by its key", "key", a.Key, "server", s.ID)
			l.obs.launched(launchFound)
			if err := l.store.RecordLaunch(ctx, a.Key, s.ID, "", jobID); err != nil {
				return err
			}
			return l.trackLaunch(ctx, a, jobID, "", s.ID)
		}
		if age := l.clock.Now().Sub(intent.ClaimedAt); age < l.window {
			// Another attempt holds a live claim (it renews it while its
			// cloud calls run), or died so recently that the cloud may not
			// list its server yet: wait, without spending the retry budget.
			wait := l.window - age
			actionLog(l.log, a).Info("launch claimed by another attempt and its server is not listed yet; waiting", "key", a.Key,
				"claimed_ago", age.Round(time.Millisecond), "wait", wait.Round(time.Millisecond))
			return Snooze(wait)
		}
		// The claim is older than the window: its attempt is gone and
		// launched nothing the cloud lists. Take the claim over; of several
		// redelivered copies doing so at once, one wins and the others wait.
		at, won, err := l.store.RenewLaunch(ctx, a.Key, intent.ClaimedAt)
		if err != nil {
			return err
		}
		if !won {
			return Snooze(min(l.window, time.Second))
		}
		intent.ClaimedAt = at
	}
	stop := l.renewClaim(ctx, a, intent.ClaimedAt)
	defer stop()
	if err := l.authorizeSource(ctx, a.Account, req.Firewall); err != nil {
		return err
	}
	lr := req.LaunchRequest
	lr.Tags = maps.Clone(lr.Tags)
	if lr.Tags == nil {
		lr.Tags = map[string]string{}
	}
	lr.Tags[LaunchTag] = a.Key
	op, err := compute.Launch(ctx, a.Account, lr)
	if err != nil {
		l.obs.launched(launchFailed)
		return cloudErr(err)
	}
	l.obs.launched(launchLaunched)
	if l.afterLaunch != nil { // tests: simulate a crash between the cloud call and the record
		if err := l.afterLaunch(); err != nil {
			return err
		}
	}
	if err := l.store.RecordLaunch(ctx, a.Key, op.ResourceID, op.ID, jobID); err != nil {
		return err
	}
	return l.trackLaunch(ctx, a, jobID, op.ID, op.ResourceID)
}

// renewClaim keeps the launch claim of a fresh while this attempt's cloud
// calls run (a slow clone can take minutes), so that a redelivered copy
// waits for it instead of launching a second server once the consistency
// window has passed. It renews every quarter window, on the worker's clock,
// until stop is called.
func (l *launcher) renewClaim(ctx context.Context, a Action, claimedAt time.Time) (stop func()) {
	every := max(l.window/4, time.Millisecond)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := l.clock.NewTimer(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
			}
			at, ok, err := l.store.RenewLaunch(ctx, a.Key, claimedAt)
			switch {
			case err != nil && ctx.Err() == nil:
				actionLog(l.log, a).Warn("cannot renew a launch claim; a redelivered copy may launch again after the consistency window",
					"key", a.Key, "err", err)
			case err == nil && !ok:
				actionLog(l.log, a).Error("launch claim taken over by another attempt while this one's cloud calls ran longer than "+
					"LaunchConsistencyWindow; the account may get two servers for this key", "key", a.Key,
					"window", l.window)
				return
			case err == nil:
				claimedAt = at
			}
			t.Reset(every)
		}
	}()
	return func() { cancel(); <-done }
}

func (l *launcher) trackLaunch(ctx context.Context, a Action, jobID, opID, serverID string) error {
	return l.jobs.track(ctx, persist.Job{ID: jobID, Account: a.Account, Customer: a.Customer, Kind: "launch", OperationID: opID, ResourceID: serverID})
}

// authorizeSource opens the management port of a launch's firewall to
// Config.SourceCIDR, the addresses guest connections leave from. Authorize is
// idempotent in the cloud API, so a redelivered launch adds nothing.
func (l *launcher) authorizeSource(ctx context.Context, account, firewall string) error {
	if firewall == "" || !l.source.IsValid() {
		return nil
	}
	network, err := l.cloud.Network()
	if err != nil {
		return Permanent(fmt.Errorf("worker: launch asks for firewall %s but the cloud has no network service: %w", firewall, err))
	}
	_, err = network.Authorize(ctx, account, firewall, cloud.Rule{
		Direction: cloud.Ingress, Protocol: "tcp", FromPort: l.port, ToPort: l.port,
		CIDR: l.source.String(),
	})
	return cloudErr(err)
}

// cloudErr marks cloud errors that retrying cannot fix as permanent.
func cloudErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnknownAccount), errors.Is(err, ErrAccountPaused):
		// No provider to launch on: poisoned with the reason, replayable
		// once the account is (back) in the registry.
		return Permanent(err)
	case !cloud.IsTransient(err) && !errors.Is(err, context.Canceled):
		return Permanent(err)
	}
	return err
}

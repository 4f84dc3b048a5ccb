package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
)

// jobTracker is the part that follows cloud operations to their end: it
// stores jobs ("job.track" actions from a dispatcher, launches, host calls
// of Worker.TrackJob), has the schedule check each one every checkEvery
// ("job.check" actions), and finishes a job with a conditional update, so
// that its event is written to the outbox once however many workers check
// it. In publisher processes it also picks up, every jobSyncEvery, the jobs
// other processes stored.
type jobTracker struct {
	store      jobStore
	sched      jobScheduler // nil in a subscriber-only process
	cloud      cloud.Provider
	now        func() time.Time
	checkEvery time.Duration
	timeout    time.Duration // a job's default deadline
	obs        observer
}

// jobScheduler puts a job's checks on the schedule (the scheduler).
type jobScheduler interface {
	scheduleJob(t state.Target, every time.Duration) error
}

// handlers are the action types the tracker handles.
func (j *jobTracker) handlers(out dispatchOutcomes, log *slog.Logger) map[string]HandlerFunc {
	return map[string]HandlerFunc{
		TypeJobTrack: j.handleTrack,
		TypeJobCheck: scheduled(out, log, j.checkDispatched),
	}
}

// track stores a job and schedules its checks; see [Worker.TrackJob].
func (j *jobTracker) track(ctx context.Context, job persist.Job) error {
	if job.ID == "" || job.Account == "" || (job.OperationID == "" && job.ResourceID == "") {
		return fmt.Errorf("%w: TrackJob needs ID, Account and OperationID or ResourceID (got id %q, account %q)", ErrInvalidAction, job.ID, job.Account)
	}
	if job.Deadline.IsZero() {
		job.Deadline = j.now().Add(j.timeout)
	}
	if job.Kind == "" {
		job.Kind = "operation"
	}
	stored, _, err := j.store.TrackJob(ctx, job)
	if err != nil {
		return fmt.Errorf("worker: track job %s: %w", job.ID, err)
	}
	return j.schedule(stored)
}

// schedule puts a running job on the schedule if it is not there yet.
func (j *jobTracker) schedule(job persist.Job) error {
	if j.sched == nil || job.State.Terminal() {
		return nil
	}
	return j.sched.scheduleJob(state.Target{Account: job.Account, Customer: job.Customer, Kind: jobKind, Resource: job.ID}, j.checkEvery)
}

// sync schedules every running job in the store: after a restart, and for
// jobs that other processes (job.track handlers) stored.
func (j *jobTracker) sync(ctx context.Context) error {
	after := ""
	for {
		jobs, err := j.store.RunningJobs(ctx, after, 500)
		if err != nil {
			return err
		}
		for _, job := range jobs {
			if err := j.schedule(job); err != nil {
				return err
			}
			after = job.ID
		}
		if len(jobs) < 500 {
			return nil
		}
	}
}

// handleTrack stores a job sent by a dispatcher as a job.track action.
func (j *jobTracker) handleTrack(ctx context.Context, a Action) error {
	var job persist.Job
	if err := a.Decode(&job); err != nil {
		return Permanent(err)
	}
	if job.Account == "" {
		job.Account, job.Customer = a.Account, a.Customer
	}
	err := j.track(ctx, job)
	if errors.Is(err, ErrInvalidAction) {
		return Permanent(err)
	}
	return err
}

// checkDispatched checks a tracked job's operation once and finishes the
// job when the operation is terminal or the deadline has passed.
func (j *jobTracker) checkDispatched(ctx context.Context, d poller.Dispatch) (poller.Outcome, error) {
	return j.check(ctx, d.Target.Resource), nil
}

func (j *jobTracker) check(ctx context.Context, id string) poller.Outcome {
	job, err := j.store.Job(ctx, id)
	switch {
	case errors.Is(err, persist.ErrNotFound):
		return poller.Outcome{Complete: true}
	case err != nil:
		j.obs.dbError(opJob)
		return failed(err, 0)
	case job.State.Terminal():
		return poller.Outcome{Complete: true}
	}
	if j.now().After(job.Deadline) {
		if err := j.finish(ctx, job.ID, persist.JobTimedOut, job.ResourceID, nil,
			fmt.Sprintf("no terminal state by the deadline %s", job.Deadline.UTC().Format("2006-01-02T15:04:05Z"))); err != nil {
			return failed(err, 0)
		}
		return poller.Outcome{Complete: true}
	}
	st, resourceID, result, msg, err := j.operationState(ctx, job)
	if err != nil {
		return failed(err, 1)
	}
	if !st.Terminal() {
		return poller.Outcome{Calls: 1}
	}
	if err := j.finish(ctx, job.ID, st, resourceID, result, msg); err != nil {
		return failed(err, 1)
	}
	return poller.Outcome{Complete: true, Calls: 1}
}

// finish ends a job in the store; the process whose update ended it counts it.
func (j *jobTracker) finish(ctx context.Context, id string, st persist.JobState, resourceID string, result json.RawMessage, msg string) error {
	finished, err := j.store.FinishJob(ctx, id, st, resourceID, result, msg)
	switch {
	case err != nil:
		j.obs.dbError(opJob)
	case finished:
		j.obs.jobFinished(st)
	}
	return err
}

// operationState asks the cloud where a job stands.
func (j *jobTracker) operationState(ctx context.Context, job persist.Job) (persist.JobState, string, json.RawMessage, string, error) {
	st, rid, result, msg, err := j.askCloud(ctx, job)
	if errors.Is(err, ErrUnknownAccount) {
		// Deleted from the registry (or never there, and no Config.Cloud):
		// nobody can tell how it ends.
		return persist.JobFailed, job.ResourceID, nil, err.Error(), nil
	}
	return st, rid, result, msg, err
}

func (j *jobTracker) askCloud(ctx context.Context, job persist.Job) (persist.JobState, string, json.RawMessage, string, error) {
	if job.OperationID != "" {
		ops, err := j.cloud.Operations()
		if err != nil {
			return "", "", nil, "", err
		}
		op, err := ops.Operation(ctx, job.Account, job.OperationID)
		if errors.Is(err, cloud.ErrNotFound) {
			return persist.JobFailed, job.ResourceID, nil, "the cloud no longer knows operation " + job.OperationID, nil
		}
		if err != nil {
			return "", "", nil, "", err
		}
		result, _ := json.Marshal(op)
		rid := op.ResourceID
		if rid == "" {
			rid = job.ResourceID
		}
		switch op.State {
		case cloud.OpSucceeded:
			return persist.JobSucceeded, rid, result, "", nil
		case cloud.OpFailed:
			return persist.JobFailed, rid, result, op.Error, nil
		}
		return persist.JobRunning, rid, nil, "", nil
	}
	compute, err := j.cloud.Compute()
	if err != nil {
		return "", "", nil, "", err
	}
	s, err := compute.GetServer(ctx, job.Account, job.ResourceID)
	if errors.Is(err, cloud.ErrNotFound) {
		return persist.JobRunning, job.ResourceID, nil, "", nil // not visible yet: eventual consistency
	}
	if err != nil {
		return "", "", nil, "", err
	}
	result, _ := json.Marshal(s)
	switch s.State {
	case cloud.StateRunning:
		return persist.JobSucceeded, s.ID, result, "", nil
	case cloud.StateError, cloud.StateTerminated:
		return persist.JobFailed, s.ID, result, "server is " + string(s.State), nil
	}
	return persist.JobRunning, s.ID, nil, "", nil
}

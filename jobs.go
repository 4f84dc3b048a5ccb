package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stratusworks/worker/cloud"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/poller"
	"github.com/stratusworks/worker/state"
)

// TrackJob follows a cloud operation a dispatcher started until the cloud says
// it finished, or until its Deadline (default: now + Config.JobTimeout). The
// job is stored first, so tracking survives a restart; it is idempotent by
// Job.ID. When the job ends, a "job.completed", "job.failed" or
// "job.timed_out" event is published exactly once, however many workers check
// it. A job needs ID, Account and OperationID (or ResourceID: then the
// server's state decides: RUNNING succeeds, ERROR or TERMINATED fails).
func (w *Worker) TrackJob(ctx context.Context, j persist.Job) error {
	if j.ID == "" || j.Account == "" || (j.OperationID == "" && j.ResourceID == "") {
		return fmt.Errorf("%w: TrackJob needs ID, Account and OperationID or ResourceID (got id %q, account %q)", ErrInvalidAction, j.ID, j.Account)
	}
	if j.Deadline.IsZero() {
		j.Deadline = w.now().Add(w.cfg.JobTimeout)
	}
	if j.Kind == "" {
		j.Kind = "operation"
	}
	stored, _, err := w.store.TrackJob(ctx, j)
	if err != nil {
		return fmt.Errorf("worker: track job %s: %w", j.ID, err)
	}
	return w.scheduleJob(stored)
}

// scheduleJob puts a running job on the schedule if it is not there yet.
func (w *Worker) scheduleJob(j persist.Job) error {
	if w.sched == nil || j.State.Terminal() {
		return nil
	}
	t := state.Target{Account: j.Account, Customer: j.Customer, Kind: jobKind, Resource: j.ID}
	if _, ok := w.sched.Lookup(t); ok {
		return nil
	}
	return w.sched.Set(t, w.cfg.JobCheckInterval)
}

// syncJobs schedules every running job in the store: after a restart, and
// for jobs that other processes (job.track handlers) stored.
func (w *Worker) syncJobs(ctx context.Context) error {
	after := ""
	for {
		jobs, err := w.store.RunningJobs(ctx, after, 500)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if err := w.scheduleJob(j); err != nil {
				return err
			}
			after = j.ID
		}
		if len(jobs) < 500 {
			return nil
		}
	}
}

// handleJobTrack stores a job sent by a dispatcher as a job.track action.
func (w *Worker) handleJobTrack(ctx context.Context, a Action) error {
	var j persist.Job
	if err := a.Decode(&j); err != nil {
		return Permanent(err)
	}
	if j.Account == "" {
		j.Account, j.Customer = a.Account, a.Customer
	}
	err := w.TrackJob(ctx, j)
	if errors.Is(err, ErrInvalidAction) {
		return Permanent(err)
	}
	return err
}

// checkDispatchedJob checks a tracked job's operation once and finishes the
// job when the operation is terminal or the deadline has passed.
func (w *Worker) checkDispatchedJob(ctx context.Context, d poller.Dispatch) (poller.Outcome, error) {
	return w.checkJob(ctx, d.Target.Resource), nil
}

func (w *Worker) checkJob(ctx context.Context, id string) poller.Outcome {
	j, err := w.store.Job(ctx, id)
	switch {
	case errors.Is(err, persist.ErrNotFound):
		return poller.Outcome{Complete: true}
	case err != nil:
		return failed(err, 0)
	case j.State.Terminal():
		return poller.Outcome{Complete: true}
	}
	if w.now().After(j.Deadline) {
		if _, err := w.store.FinishJob(ctx, j.ID, persist.JobTimedOut, j.ResourceID, nil,
			fmt.Sprintf("no terminal state by the deadline %s", j.Deadline.UTC().Format("2006-01-02T15:04:05Z"))); err != nil {
			return failed(err, 0)
		}
		return poller.Outcome{Complete: true}
	}
	st, resourceID, result, msg, err := w.operationState(ctx, j)
	if err != nil {
		return failed(err, 1)
	}
	if !st.Terminal() {
		return poller.Outcome{Calls: 1}
	}
	if _, err := w.store.FinishJob(ctx, j.ID, st, resourceID, result, msg); err != nil {
		return failed(err, 1)
	}
	return poller.Outcome{Complete: true, Calls: 1}
}

// operationState asks the cloud where a job stands.
func (w *Worker) operationState(ctx context.Context, j persist.Job) (persist.JobState, string, json.RawMessage, string, error) {
	if w.cfg.Cloud == nil {
		return "", "", nil, "", errors.New("worker: checking jobs needs Config.Cloud")
	}
	if j.OperationID != "" {
		ops, err := w.cfg.Cloud.Operations()
		if err != nil {
			return "", "", nil, "", err
		}
		op, err := ops.Operation(ctx, j.Account, j.OperationID)
		if errors.Is(err, cloud.ErrNotFound) {
			return persist.JobFailed, j.ResourceID, nil, "the cloud no longer knows operation " + j.OperationID, nil
		}
		if err != nil {
			return "", "", nil, "", err
		}
		result, _ := json.Marshal(op)
		rid := op.ResourceID
		if rid == "" {
			rid = j.ResourceID
		}
		switch op.State {
		case cloud.OpSucceeded:
			return persist.JobSucceeded, rid, result, "", nil
		case cloud.OpFailed:
			return persist.JobFailed, rid, result, op.Error, nil
		}
		return persist.JobRunning, rid, nil, "", nil
	}
	compute, err := w.cfg.Cloud.Compute()
	if err != nil {
		return "", "", nil, "", err
	}
	s, err := compute.GetServer(ctx, j.Account, j.ResourceID)
	if errors.Is(err, cloud.ErrNotFound) {
		return persist.JobRunning, j.ResourceID, nil, "", nil // not visible yet: eventual consistency
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

package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJobStateTerminal(t *testing.T) {
	t.Parallel()
	for st, want := range map[JobState]bool{
		JobRunning: false, JobSucceeded: true, JobFailed: true, JobTimedOut: true, "": false, "paused": false,
	} {
		require.Equal(t, want, st.Terminal(), st)
	}
}

func TestJobs(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newTestClock()
		s := openStore(t, Config{Provisioning: b.db(t), Now: clock.Now})
		ctx := context.Background()

		in := Job{ID: "job-1", Account: "acct-1", Customer: "cust-1", Kind: "server", OperationID: "op-1",
			Deadline: t0.Add(time.Hour), State: JobFailed, Error: "ignored"}
		j, created, err := s.TrackJob(ctx, in)
		require.NoError(t, err)
		require.True(t, created)
		want := Job{ID: "job-1", Account: "acct-1", Customer: "cust-1", Kind: "server", OperationID: "op-1",
			State: JobRunning, Deadline: t0.Add(time.Hour), CreatedAt: t0, UpdatedAt: t0, Version: 1}
		require.Equal(t, want, j)

		// Tracking again is a no-op that returns the stored job.
		clock.Set(t0.Add(time.Minute))
		j, created, err = s.TrackJob(ctx, Job{ID: "job-1", Account: "acct-1", Kind: "server", OperationID: "op-other"})
		require.NoError(t, err)
		require.False(t, created)
		require.Equal(t, want, j)
		got, err := s.Job(ctx, "job-1")
		require.NoError(t, err)
		require.Equal(t, want, got)

		_, err = s.Job(ctx, "nope")
		require.ErrorIs(t, err, ErrNotFound)
		_, err = s.FinishJob(ctx, "nope", JobSucceeded, "", nil, "")
		require.ErrorIs(t, err, ErrNotFound)
		for name, call := range map[string]func() error{
			"NoID":        func() error { _, _, err := s.TrackJob(ctx, Job{Account: "a", Kind: "k"}); return err },
			"NoAccount":   func() error { _, _, err := s.TrackJob(ctx, Job{ID: "x", Kind: "k"}); return err },
			"NoKind":      func() error { _, _, err := s.TrackJob(ctx, Job{ID: "x", Account: "a"}); return err },
			"NotTerminal": func() error { _, err := s.FinishJob(ctx, "job-1", JobRunning, "", nil, ""); return err },
			"BadResult": func() error {
				_, err := s.FinishJob(ctx, "job-1", JobSucceeded, "", json.RawMessage(`{`), "")
				return err
			},
		} {
			require.ErrorIs(t, call(), ErrInvalid, name)
		}

		// Several workers finish the job at once: exactly one wins and
		// exactly one event is written.
		clock.Set(t0.Add(2 * time.Minute))
		var wins atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for range 6 {
			wg.Go(func() {
				ok, err := s.FinishJob(ctx, "job-1", JobSucceeded, "i-42", json.RawMessage(`{"ip":"10.0.0.9"}`), "")
				if ok {
					wins.Add(1)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, 1, wins.Load())
		ok, err := s.FinishJob(ctx, "job-1", JobFailed, "", nil, "too late")
		require.NoError(t, err)
		require.False(t, ok, "already terminal")

		done := want
		done.State, done.ResourceID, done.Result = JobSucceeded, "i-42", json.RawMessage(`{"ip":"10.0.0.9"}`)
		done.UpdatedAt, done.Version = t0.Add(2*time.Minute), 2
		got, err = s.Job(ctx, "job-1")
		require.NoError(t, err)
		require.Equal(t, done, got)

		evs, err := s.PendingEvents(ctx, 0)
		require.NoError(t, err)
		require.Len(t, evs, 1)
		e := evs[0]
		require.Equal(t, EventJobCompleted, e.Type)
		require.Equal(t, []string{"acct-1", "cust-1", "server", "i-42"}, []string{e.Account, e.Customer, e.Kind, e.ResourceID})
		var pj Job
		require.NoError(t, json.Unmarshal(e.Payload, &pj))
		require.Equal(t, done, pj)
	})
}

func TestFinishJobEventTypes(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		for _, tc := range []struct {
			st    JobState
			event string
			msg   string
		}{
			{JobSucceeded, EventJobCompleted, ""},
			{JobFailed, EventJobFailed, "quota exceeded"},
			{JobTimedOut, EventJobTimedOut, "deadline passed"},
		} {
			id := "job-" + string(tc.st)
			_, _, err := s.TrackJob(ctx, Job{ID: id, Account: "a", Kind: "server", ResourceID: "i-1"})
			require.NoError(t, err)
			ok, err := s.FinishJob(ctx, id, tc.st, "", nil, tc.msg)
			require.NoError(t, err)
			require.True(t, ok)
			j, err := s.Job(ctx, id)
			require.NoError(t, err)
			require.Equal(t, tc.st, j.State)
			require.Equal(t, tc.msg, j.Error)
			require.Equal(t, "i-1", j.ResourceID, "an empty resourceID keeps the stored one")
			require.Nil(t, j.Result)
			evs, err := s.PendingEvents(ctx, 0)
			require.NoError(t, err)
			require.Equal(t, tc.event, evs[len(evs)-1].Type)
		}
	})
}

func TestRunningJobs(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b backend) {
		s := openStore(t, Config{Provisioning: b.db(t)})
		ctx := context.Background()
		for i := 1; i <= 7; i++ {
			_, _, err := s.TrackJob(ctx, Job{ID: fmt.Sprintf("job-%d", i), Account: "a", Kind: "server"})
			require.NoError(t, err)
		}
		_, err := s.FinishJob(ctx, "job-3", JobFailed, "", nil, "boom")
		require.NoError(t, err)
		var pages [][]string
		after := ""
		for {
			jobs, err := s.RunningJobs(ctx, after, 3)
			require.NoError(t, err)
			if len(jobs) == 0 {
				break
			}
			var ids []string
			for _, j := range jobs {
				require.Equal(t, JobRunning, j.State)
				ids = append(ids, j.ID)
			}
			pages = append(pages, ids)
			after = ids[len(ids)-1]
		}
		require.Equal(t, [][]string{{"job-1", "job-2", "job-4"}, {"job-5", "job-6", "job-7"}}, pages)
		all, err := s.RunningJobs(ctx, "", 0)
		require.NoError(t, err)
		require.Len(t, all, 6)
	})
}

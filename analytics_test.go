package worker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusworks/worker/state"
)

// sampleSink records what the poll runner writes; fail makes the appends fail.
type sampleSink struct {
	fail    error
	saves   int
	batches map[string][][]state.Sample // account -> appended batches
}

func (s *sampleSink) Save(context.Context, state.Target, state.Snapshot) ([]state.Change, error) {
	s.saves++
	return nil, nil
}

func (s *sampleSink) Sweep(context.Context, state.Target, func(string) bool, time.Duration) ([]state.Change, error) {
	return nil, nil
}

func (s *sampleSink) AppendSamples(_ context.Context, account string, xs []state.Sample) (int, error) {
	if s.fail != nil {
		return 0, s.fail
	}
	if s.batches == nil {
		s.batches = map[string][][]state.Sample{}
	}
	s.batches[account] = append(s.batches[account], xs)
	return len(xs), nil
}

// TestPollAppendsSamples: a poll's samples are appended page by page under
// the target's account and nothing is saved as state; a failed append fails
// the poll (its outcome carries the error; the schedule backs off and polls
// again), so a poll is reported done only once its samples are durable.
func TestPollAppendsSamples(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := PollerFunc("server-analytics", func(_ context.Context, _ state.Target, cursor string) (state.Snapshot, string, error) {
		next := map[string]string{"": "2", "2": ""}[cursor]
		return state.Snapshot{Samples: []state.Sample{{Server: "vm-" + cursor, At: at, CPU: 1}}}, next, nil
	})
	tgt := state.Target{Account: "acct", Kind: "server-analytics"}

	sink := &sampleSink{}
	r := newPollRunner(sink, nil, time.Minute)
	out := r.poll(context.Background(), p, tgt)
	require.NoError(t, out.Err)
	require.Equal(t, 2, out.Calls)
	require.Len(t, sink.batches["acct"], 2, "one append per page")
	require.Equal(t, "vm-2", sink.batches["acct"][1][0].Server)
	require.Zero(t, sink.saves, "samples are not state")

	down := &sampleSink{fail: fmt.Errorf("analytics db: %w", errors.New("connection refused"))}
	out = newPollRunner(down, nil, time.Minute).poll(context.Background(), p, tgt)
	require.ErrorContains(t, out.Err, "append the samples of acct/server-analytics page 1")
	require.ErrorContains(t, out.Err, "connection refused")
}

package workertest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/stratusworks/worker"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// MaxPages is the most pages [Poll] and [Pages] ask a poller for before
// they fail the test: a cursor that never ends.
const MaxPages = 10_000

// Pages asks p for every page of target's resources, from the first cursor
// ("") until p returns no next cursor, and returns the pages in order. It
// saves nothing. A poller error fails the test.
func Pages(t testing.TB, p worker.Poller, target state.Target) []state.Snapshot {
	t.Helper()
	var out []state.Snapshot
	eachPage(t, p, target, func(s state.Snapshot) { out = append(out, s) })
	return out
}

// Poll polls target with p as the worker's poll runner does: page by page
// until the cursor ends, saving each page to sink before asking for the
// next (a page without observations saves nothing). It returns the
// changes the sink reported, in order; a second Poll of an unchanged cloud
// returns none. A poller or sink error fails the test.
//
// Deletions are not the sink's: after a complete listing the worker itself
// marks the resources it did not return missing and deletes them after
// Config.DeletionGrace. Poll does not; test deletions with an [Env].
//
// [NewStore] is a sink for it; so is an Env's Worker.Sink().
func Poll(t testing.TB, p worker.Poller, target state.Target, sink worker.StateSink) []state.Change {
	t.Helper()
	if sink == nil {
		t.Fatalf("workertest.Poll: sink is nil")
	}
	var out []state.Change
	page := 0
	eachPage(t, p, target, func(s state.Snapshot) {
		page++
		if len(s.Observations) == 0 {
			return
		}
		changes, err := sink.Save(context.Background(), target, s)
		if err != nil {
			t.Fatalf("workertest.Poll: save %s page %d: %v", target, page, err)
		}
		out = append(out, changes...)
	})
	return out
}

// eachPage calls f with each page of target, in order.
func eachPage(t testing.TB, p worker.Poller, target state.Target, f func(state.Snapshot)) {
	t.Helper()
	if p == nil {
		t.Fatalf("workertest: poller is nil")
	}
	cursor := ""
	for page := 1; ; page++ {
		snap, next, err := p.Poll(context.Background(), target, cursor)
		if err != nil {
			t.Fatalf("workertest: poll %s page %d: %v", target, page, err)
		}
		f(snap)
		if next == "" {
			return
		}
		if page >= MaxPages {
			t.Fatalf("workertest: poll %s: more than %d pages; the poller's cursor never ends", target, MaxPages)
		}
		cursor = next
	}
}

// NewStore opens the worker's store on a private in-memory SQLite database
// (persist.MemoryDSN), migrated, and closes it when the test ends. It is
// the sink the worker would save to, for [Poll] and for handlers under
// [Run] that write state.
func NewStore(t testing.TB) *persist.Store {
	t.Helper()
	st, err := persist.Open(context.Background(), persist.Config{
		Provisioning: persist.DBConfig{DSN: persist.MemoryDSN},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("workertest.NewStore: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("workertest: closing the store: %v", err)
		}
	})
	return st
}

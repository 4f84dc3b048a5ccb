// Package workertest helps test what a host builds on package worker: its
// handlers, its pollers and whole workers, without a broker, a database
// server or a cloud.
//
// [Run] calls a handler once with an action and returns what the worker's
// subscriber would do next, as worker.RetryPolicy.Decide decides it:
// handled, retried after a wait, snoozed, or poisoned with a reason. A
// panic is a permanent error, as in the subscriber.
//
//	res := workertest.Run(t, worker.HandlerFunc(handleLaunch), a)
//	require.Equal(t, worker.Handled, res.Outcome)
//
// [Env] is a whole worker for one test: the embedded transport, an
// in-memory SQLite database and a simulated cloud (cloud/sim) on one fake
// clock, everything else as shipped. The test registers pollers and
// handlers, starts it, moves the clock with [Env.Advance] (which waits
// until the work that came due has run) and reads the results from the
// cloud, the store and the events ([Env.Event]).
//
//	env := workertest.NewEnv(t)
//	compute, _ := env.Cloud.Compute()
//	require.NoError(t, env.Worker.Register(cloud.ServerPoller{Compute: compute}, time.Minute))
//	require.NoError(t, env.Worker.Watch("acct-1", "acme"))
//	env.Start(t)
//	env.Advance(t, time.Minute, 5*time.Second)
//	changed := env.Event(t, "server.changed")
//
// [Poll] drives a poller through its pages into a state sink ([NewStore]:
// the worker's store on an in-memory database) and returns the changes the
// sink reported; [Pages] returns the pages alone.
//
// The helpers take a testing.TB and fail the test through it; they make
// no assertion of their own about what the code under test did.
package workertest

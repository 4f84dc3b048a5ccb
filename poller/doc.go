// Package poller is the scheduling engine for polls and tracked jobs: it
// decides when each target is due, hands out dispatches with leases, and keeps
// every account inside its cloud API budget.
//
// The publisher side of a worker owns one [Schedule]. Subscribers run the
// polls it dispatches and report the outcomes back; because the schedule is
// the one place that dispatches, backoff and the API budget hold for the
// whole fleet, however many subscribers there are.
//
// # Targets
//
// A target is a [state.Target]: one kind of resource in one cloud account
// (Resource "") or a single resource with its own pace. [Schedule.Register]
// sets a kind's default interval, [Schedule.Watch] schedules every registered
// kind for an account, [Schedule.Set] adds a target with its own interval
// (a resource, or a tracked job that [Outcome].Complete removes), and
// [Schedule.Unwatch] and [Schedule.Remove] take targets away.
//
// # Due heap
//
// All targets sit in one min-heap ordered by the time they are next due (or,
// while in flight, by the time their lease expires); [Schedule.Due] pops the
// due ones and [Schedule.NextWake] says when to look again. There is no
// goroutine or timer per target: [Schedule.Run] sleeps on a single timer.
// A new target's first due time is spread over its interval
// (Config.InitialSpread), and every later one is spread by ±Config.Jitter of
// the interval around a fixed grid, so the jitter does not accumulate and a
// target is polled at its interval on average. A million targets take about
// 125 bytes each, including the index and their resource ids.
//
// # Leases and stale polls
//
// Each [Dispatch] carries a lease. A target has at most one dispatch in flight:
// it is not dispatched again until its outcome is reported with
// [Schedule.Report] or its lease expires (Config.InFlightTimeout), when it is
// presumed lost and becomes due again. A report or poll whose lease is no
// longer current — its target was dispatched again, removed or unwatched —
// is stale: Report ignores it and returns false, and a subscriber that calls
// [Schedule.Current] before running a poll drops it instead of executing it.
//
// # Budgets
//
// Each account has a token bucket (Config.Budget, or Config.Budgets per
// account) and every dispatch spends one token. A due target whose account is
// out of tokens waits in that account's queue, oldest first, until a token
// arrives; other accounts' targets are not held up. [Outcome].Calls charges
// extra API calls of a multi-page poll.
//
// # Backoff and throttling
//
// A failed poll is retried after an exponential backoff delay (see [Backoff]);
// the first success resets it. A throttled poll ([Outcome].Throttled) is
// retried after the cloud's RetryAfter and pauses the whole account until
// then ([Schedule.Pause]), so its sibling targets wait too, while other
// accounts go on.
//
// Time comes from a [Clock]; tests use a [FakeClock] and never sleep.
package poller

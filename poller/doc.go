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
// # Backoff and recovery
//
// A failed poll is retried after an exponential backoff delay bounded by the
// target's interval I: after the n-th consecutive failure the wait is
//
//	delay(n) = min(min(Backoff.InitialInterval, I) × Backoff.Multiplier^(n-1), cap)
//	cap      = max(I, min(Backoff.MaxInterval, Backoff.MaxTargetIntervals × I))
//
// spread by ±Jitter and folded back below cap (see [Backoff]). With the
// defaults (5 s, 15 min, ×2, 10 intervals) the first retry never comes later
// than the next healthy poll would, a 500 ms target is retried at least every
// 5 s and a 1 min target every 10 min however long the outage, and a target
// slower than 15 min is retried at least once per interval.
//
// The first success resets the count. A success also tells that the
// account's provider answers again: the account's other targets that back
// off because of errors are reset and made due within one interval, spread as
// new targets are (Config.InitialSpread) and dispatched within the account's
// budget, so an account recovers at its intervals, not at its backoff. A
// target that fails again right after such a reset keeps backing off (its
// errors are its own), so a broken resource among healthy ones is not
// hammered. See [Schedule.Report].
//
// A throttled poll ([Outcome].Throttled) is retried after the cloud's
// RetryAfter and pauses the whole account until then ([Schedule.Pause]), so
// its sibling targets wait too, while other accounts go on. A sibling's
// success does not cut a throttled target's wait short.
//
// # Time and clock steps
//
// Time comes from a [Clock]; tests use a [FakeClock] and never sleep. The
// schedule runs on a monotonic timeline: the wall-clock time when it was
// created plus the clock's Monotonic time elapsed since. Due times, lease
// expiries, pauses and the token buckets are all kept on it, and Run sleeps
// on timers, which measure durations. So when the wall clock is stepped (an
// NTP step, an operator, a VM resumed and resynchronised), back or forward,
// every target stays on its interval: nothing stalls for the size of the
// step, nothing bursts, and no budget is refilled or drained.
//
// Wall-clock times appear only at the edges, converted with the wall clock as
// it reads at the call: the times the schedule returns ([Dispatch].DueAt,
// [Entry].NextDue, [Schedule.NextWake]) are what another process compares
// against its own wall clock, and the times it takes ([Schedule.Due]'s now,
// [Schedule.Pause]'s until) are read against the current wall clock. Leases
// start at the wall-clock creation time, so a restarted schedule does not
// reuse its predecessor's. [FakeClock.Step] simulates a wall-clock step;
// [FakeClock.Advance] lets time pass.
//
// With [RealClock], Monotonic is the Go runtime's monotonic clock. On Linux
// it does not advance while the machine is suspended (nor do Go's timers):
// after a suspend the schedule resumes where it stopped, every target due
// within one interval, rather than dispatching everything at once.
package poller

package poller_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stratusworks/worker/poller"
)

// A firewall listing every 15 s and a budget check every minute for one
// account, on a fake clock without jitter. The firewall poll at 0:30 fails and
// is retried after the 5 s backoff.
func Example() {
	clock := poller.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := poller.New(poller.Config{Clock: clock, Seed: 1, Jitter: -1, InitialSpread: -1})
	if err != nil {
		panic(err)
	}
	_ = s.Register("firewall", 15*time.Second)
	_ = s.Register("budget", time.Minute)
	_ = s.Watch("acct-1", "cust-1")

	for clock.Now().Before(time.Date(2025, 1, 1, 0, 1, 0, 0, time.UTC)) {
		for _, d := range s.Due(clock.Now(), 0) {
			// The publisher would publish a "poll" action; a subscriber runs it
			// (if s.Current(d)) and reports back.
			var outcome poller.Outcome
			if d.Target.Kind == "firewall" && clock.Now().Second() == 30 {
				outcome.Err = errors.New("connection reset")
			}
			fmt.Println(clock.Now().Format("04:05"), "poll", d.Target, "err:", outcome.Err)
			s.Report(d, outcome)
		}
		next, _ := s.NextWake()
		clock.Set(next)
	}
	// Output:
	// 00:00 poll acct-1/firewall err: <nil>
	// 00:00 poll acct-1/budget err: <nil>
	// 00:15 poll acct-1/firewall err: <nil>
	// 00:30 poll acct-1/firewall err: connection reset
	// 00:35 poll acct-1/firewall err: <nil>
	// 00:50 poll acct-1/firewall err: <nil>
}

// Run drives the schedule on its clock's timer and hands due targets to a
// callback, which would publish them.
func ExampleSchedule_Run() {
	clock := poller.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s, _ := poller.New(poller.Config{Clock: clock, Seed: 1, Jitter: -1, InitialSpread: -1})
	_ = s.Register("server", time.Minute)
	_ = s.Watch("acct-1", "cust-1")

	go func() { // time passes while Run sleeps on its timer
		for range 2 {
			clock.BlockUntilTimers(1)
			clock.Advance(time.Minute)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	polls := 0
	_ = s.Run(ctx, func(_ context.Context, batch []poller.Dispatch) error {
		for _, d := range batch {
			fmt.Println(clock.Now().Format("04:05"), "publish poll", d.Target)
			s.Report(d, poller.Outcome{}) // normally done by the subscriber
			if polls++; polls == 3 {
				cancel()
			}
		}
		return nil
	})
	// Output:
	// 00:00 publish poll acct-1/server
	// 01:00 publish poll acct-1/server
	// 02:00 publish poll acct-1/server
}

// An NTP step sets the wall clock back an hour after the first poll. The
// schedule runs on monotonic time, so the next poll still comes one minute
// later; the times it reports follow the stepped wall clock.
func ExampleFakeClock_Step() {
	clock := poller.NewFakeClock(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC))
	s, _ := poller.New(poller.Config{Clock: clock, Seed: 1, Jitter: -1, InitialSpread: -1})
	_ = s.Register("server", time.Minute)
	_ = s.Watch("acct-1", "cust-1")

	for i := range 3 {
		for _, d := range s.Due(clock.Now(), 0) {
			fmt.Println(clock.Now().Format("15:04:05"), "poll", d.Target, "due", d.DueAt.Format("15:04:05"))
			s.Report(d, poller.Outcome{})
		}
		if i == 0 {
			clock.Step(-time.Hour)
		}
		next, _ := s.NextWake()
		clock.Advance(next.Sub(clock.Now()))
	}
	// Output:
	// 12:00:00 poll acct-1/server due 12:00:00
	// 11:01:00 poll acct-1/server due 11:01:00
	// 11:02:00 poll acct-1/server due 11:02:00
}

package status

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/persist"
)

// Source is what Gather reads; *persist.Store implements it.
type Source interface {
	Instances(ctx context.Context) ([]persist.Instance, error)
	Probes(ctx context.Context, account string) ([]persist.Probe, error)
	PollHealth(ctx context.Context) ([]persist.PollHealth, error)
	Accounts(ctx context.Context, after string, limit int) ([]accounts.Account, error)
	RunningJobs(ctx context.Context, after string, limit int) ([]persist.Job, error)
	FinishedJobs(ctx context.Context, since time.Time, limit int, states ...persist.JobState) ([]persist.Job, error)
	PoisonCounts(ctx context.Context) ([]persist.PoisonCount, error)
}

// Options tune Gather.
type Options struct {
	// Now is the time the status is taken at. Default time.Now().
	Now time.Time
	// DeadAfter is how many of its beat intervals an instance may miss
	// before it counts as dead (worker.HeartbeatConfig.DeadAfter). Default 3.
	DeadAfter int
	// FailedWithin is how far back failed jobs are listed. Default 24h.
	FailedWithin time.Duration
	// MaxJobs bounds each list of jobs. Default 100.
	MaxJobs int
}

// Instance statuses.
const (
	Alive   = "alive"
	Dead    = "dead"
	Stopped = "stopped"
)

// Instance is one worker process from its heartbeat row.
type Instance struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"` // alive, dead or stopped
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Roles     []string  `json:"roles"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	BeatAt    time.Time `json:"beat_at"`
	// BeatAgeSeconds is how long ago the last beat was.
	BeatAgeSeconds float64 `json:"beat_age_seconds"`
	// Failing names the dependencies whose last check failed.
	Failing []string `json:"failing_dependencies,omitempty"`
}

// Poll is one failing (account, kind): its polls have not succeeded since
// Since, so its data is StaleSeconds old at least, LagSeconds beyond its
// interval.
type Poll struct {
	Account         string    `json:"account"`
	Kind            string    `json:"kind"`
	StaleSeconds    float64   `json:"stale_seconds"`
	LagSeconds      float64   `json:"lag_seconds"`
	IntervalSeconds float64   `json:"interval_seconds"`
	Failures        int       `json:"failures"`
	Throttled       bool      `json:"throttled"`
	Error           string    `json:"error,omitempty"`
	Since           time.Time `json:"since"`
	LastFailure     time.Time `json:"last_failure"`
}

// Kind sums up the failing polls of one kind.
type Kind struct {
	Kind string `json:"kind"`
	// Accounts counts the accounts whose polls of the kind fail; Lagging
	// those more than one interval behind.
	Accounts        int     `json:"failing_accounts"`
	Lagging         int     `json:"lagging_accounts"`
	MaxStaleSeconds float64 `json:"max_stale_seconds"`
	MaxLagSeconds   float64 `json:"max_lag_seconds"`
}

// Account states, worst first.
const (
	AccountAuthFailing = "auth_failing" // a pinger's probe was refused the credential
	AccountFailing     = "failing"      // polls fail
	AccountThrottled   = "throttled"    // the cloud throttles its polls
	AccountUnreachable = "unreachable"  // a pinger's probe failed
	AccountPaused      = "paused"
)

// Account is an account that needs a look: why, and since when.
type Account struct {
	ID       string    `json:"id"`
	Customer string    `json:"customer,omitempty"`
	State    string    `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	Since    time.Time `json:"since,omitzero"`
}

// Status is the deployment at one time.
type Status struct {
	At        time.Time             `json:"at"`
	Instances []Instance            `json:"instances"`
	Kinds     []Kind                `json:"kinds"`
	Polls     []Poll                `json:"polls"`
	Accounts  []Account             `json:"accounts"`
	Running   []persist.Job         `json:"running_jobs"`
	Failed    []persist.Job         `json:"failed_jobs"`
	Poison    []persist.PoisonCount `json:"poison"`
}

// Gather reads the status from src.
func Gather(ctx context.Context, src Source, o Options) (Status, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.DeadAfter = cmp.Or(o.DeadAfter, 3)
	o.FailedWithin = cmp.Or(o.FailedWithin, 24*time.Hour)
	o.MaxJobs = cmp.Or(o.MaxJobs, 100)
	st := Status{At: o.Now.UTC(), Instances: []Instance{}, Kinds: []Kind{}, Polls: []Poll{}, Accounts: []Account{}}
	var err error
	if st.Instances, err = instances(ctx, src, o); err != nil {
		return Status{}, err
	}
	health, err := src.PollHealth(ctx)
	if err != nil {
		return Status{}, err
	}
	st.Polls, st.Kinds = polls(health, o.Now)
	if st.Accounts, err = accountProblems(ctx, src, health); err != nil {
		return Status{}, err
	}
	if st.Running, err = src.RunningJobs(ctx, "", o.MaxJobs); err != nil {
		return Status{}, err
	}
	slices.SortStableFunc(st.Running, func(a, b persist.Job) int { return a.CreatedAt.Compare(b.CreatedAt) })
	if st.Failed, err = src.FinishedJobs(ctx, o.Now.Add(-o.FailedWithin), o.MaxJobs); err != nil {
		return Status{}, err
	}
	if st.Poison, err = src.PoisonCounts(ctx); err != nil {
		return Status{}, err
	}
	if st.Running == nil {
		st.Running = []persist.Job{}
	}
	if st.Failed == nil {
		st.Failed = []persist.Job{}
	}
	if st.Poison == nil {
		st.Poison = []persist.PoisonCount{}
	}
	return st, nil
}

func instances(ctx context.Context, src Source, o Options) ([]Instance, error) {
	ins, err := src.Instances(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Instance, 0, len(ins))
	for _, in := range ins {
		i := Instance{ID: in.ID, Status: Dead, Host: in.Host, PID: in.PID, Roles: in.Roles, Version: in.Version,
			StartedAt: in.StartedAt, BeatAt: in.BeatAt, BeatAgeSeconds: seconds(o.Now.Sub(in.BeatAt))}
		switch {
		case !in.StoppedAt.IsZero():
			i.Status = Stopped
		case o.Now.Sub(in.BeatAt) <= time.Duration(o.DeadAfter)*in.Interval:
			i.Status = Alive
		}
		if i.Roles == nil {
			i.Roles = []string{}
		}
		for _, d := range in.Dependencies {
			if !d.OK {
				i.Failing = append(i.Failing, d.Name)
			}
		}
		out = append(out, i)
	}
	rank := map[string]int{Dead: 0, Stopped: 1, Alive: 2}
	slices.SortStableFunc(out, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(rank[a.Status], rank[b.Status]), cmp.Compare(a.Host, b.Host), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

func polls(health []persist.PollHealth, now time.Time) ([]Poll, []Kind) {
	ps := make([]Poll, 0, len(health))
	kinds := map[string]*Kind{}
	for _, h := range health {
		stale := max(now.Sub(h.Since), 0)
		lag := max(stale-h.Interval, 0)
		ps = append(ps, Poll{Account: h.Account, Kind: h.Kind, StaleSeconds: seconds(stale), LagSeconds: seconds(lag),
			IntervalSeconds: seconds(h.Interval), Failures: h.Failures, Throttled: h.Throttled, Error: h.LastError,
			Since: h.Since, LastFailure: h.LastFailure})
		k := kinds[h.Kind]
		if k == nil {
			k = &Kind{Kind: h.Kind}
			kinds[h.Kind] = k
		}
		k.Accounts++
		if lag > 0 {
			k.Lagging++
		}
		k.MaxStaleSeconds = max(k.MaxStaleSeconds, seconds(stale))
		k.MaxLagSeconds = max(k.MaxLagSeconds, seconds(lag))
	}
	slices.SortStableFunc(ps, func(a, b Poll) int {
		return cmp.Or(cmp.Compare(b.LagSeconds, a.LagSeconds), cmp.Compare(b.StaleSeconds, a.StaleSeconds),
			cmp.Compare(a.Account, b.Account), cmp.Compare(a.Kind, b.Kind))
	})
	ks := make([]Kind, 0, len(kinds))
	for _, k := range kinds {
		ks = append(ks, *k)
	}
	slices.SortFunc(ks, func(a, b Kind) int {
		return cmp.Or(cmp.Compare(b.MaxLagSeconds, a.MaxLagSeconds), cmp.Compare(b.MaxStaleSeconds, a.MaxStaleSeconds),
			cmp.Compare(a.Kind, b.Kind))
	})
	return ps, ks
}

// accountProblems lists the accounts that are paused, whose polls fail or
// are throttled (the worst kind's reason), or whose probes fail.
func accountProblems(ctx context.Context, src Source, health []persist.PollHealth) ([]Account, error) {
	byID := map[string]*Account{}
	rank := map[string]int{AccountAuthFailing: 0, AccountFailing: 1, AccountThrottled: 2, AccountUnreachable: 3, AccountPaused: 4}
	note := func(a Account) {
		if cur, ok := byID[a.ID]; ok && (rank[cur.State] < rank[a.State] ||
			rank[cur.State] == rank[a.State] && !a.Since.Before(cur.Since)) {
			return // keep the worse state, or the older of the same
		}
		byID[a.ID] = &a
	}
	for _, h := range health {
		a := Account{ID: h.Account, State: AccountFailing, Reason: h.Kind + ": " + h.LastError, Since: h.Since}
		if h.Throttled {
			a.State = AccountThrottled
			if h.LastError == "" {
				a.Reason = h.Kind + ": throttled by the cloud"
			}
		}
		note(a)
	}
	probes, err := src.Probes(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, p := range probes {
		switch {
		case !p.AuthOK:
			note(Account{ID: p.Account, State: AccountAuthFailing, Reason: "probe by " + p.Instance + ": " + p.Error, Since: p.CheckedAt})
		case !p.OK:
			note(Account{ID: p.Account, State: AccountUnreachable, Reason: "probe by " + p.Instance + ": " + p.Error, Since: p.CheckedAt})
		}
	}
	after := ""
	customers := map[string]string{}
	for {
		page, err := src.Accounts(ctx, after, 500)
		if err != nil {
			return nil, err
		}
		for _, a := range page {
			customers[a.ID] = a.Customer
			if a.Paused {
				note(Account{ID: a.ID, State: AccountPaused, Reason: a.PausedReason, Since: a.UpdatedAt})
			}
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	out := make([]Account, 0, len(byID))
	for _, a := range byID {
		a.Customer = customers[a.ID]
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Account) int {
		return cmp.Or(cmp.Compare(rank[a.State], rank[b.State]), a.Since.Compare(b.Since), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

func seconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

// Age formats a duration for people: "1h30m", "45s", "2d3h".
func Age(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < 0:
		return "-" + Age(-d)
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return trim(fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60))
	case d < 48*time.Hour:
		return trim(fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60))
	}
	return trim(fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24))
}

func trim(s string) string {
	for _, z := range []string{"m0s", "h0m", "d0h"} {
		if len(s) > len(z) && s[len(s)-len(z):] == z {
			return s[:len(s)-len(z)+1]
		}
	}
	return s
}

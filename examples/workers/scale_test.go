package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	worker "github.com/stratusworks/worker"
	"github.com/stratusworks/worker/accounts"
	"github.com/stratusworks/worker/internal/testenv"
)

// scaleRun is one run of the scale-out test: how many sim accounts (each
// has two targets at the short interval, server and server-status, the
// only kinds polled: schedule.kinds), the interval and the lease period.
// The process logs are not rotated during the run (max_size_mb), so the
// test reads every handled dispatch.
type scaleRun struct {
	accounts int
	every    time.Duration
	lease    time.Duration
	shards   int
}

// TestProcessesScaleOut (issue 14) runs three publisher and two subscriber
// processes on RabbitMQ and MariaDB. In steady state each target is polled
// once per interval, with at most 0.1 % duplicates (targets dispatched
// twice within half an interval, by the dispatch times the subscribers log;
// polls that only bunch up in handling because the subscribers fell behind
// are counted and logged apart) and no gap longer than interval + lease.
// One publisher is restarted (SIGTERM, then a new
// process): no target misses an interval. The publisher holding the outbox relay is SIGKILLed:
// its targets are polled again within about a lease of its death, and
// every outbox event reaches the events queue (duplicates only around the
// kill, with the same ids). Another publisher is paused with SIGSTOP past
// its lease and resumed: it counts the dispatches it fenced and no poll of
// an older lease generation is handled after it resumes. The variant with
// 10,000 targets is TestProcessesScaleOutHeavy (faults tag).
func TestProcessesScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the scale-out run is skipped")
	}
	// A 3 s lease (default 15 s) so that the SIGKILL and SIGSTOP phases end in
	// seconds; the default lease is what TestProcessesScaleOutHeavy runs.
	testScaleOut(t, scaleRun{accounts: 100, every: 2 * time.Second, lease: 3 * time.Second, shards: 16})
}

// poll is one handled dispatch, as a subscriber logged it: when it was
// handled (at) and when its owner dispatched it.
type poll struct {
	at, dispatched time.Time
	target         string
	owner          string
	gen            int64
}

// pollLog reads the subscribers' "dispatch handled" lines (JSON logs)
// incrementally: each read parses only what the files gained since the
// last one, so waiting on a run of 10,000 targets does not re-read
// hundreds of megabytes every 100 ms.
type pollLog struct {
	files  []string
	offset []int64
	polls  map[string][]poll
}

func newPollLog(files ...string) *pollLog {
	return &pollLog{files: files, offset: make([]int64, len(files)), polls: map[string][]poll{}}
}

// read returns every poll logged so far, by target, in time order. The map
// is the log's own: the caller reads it and does not keep it across reads.
func (l *pollLog) read(t *testing.T) map[string][]poll {
	t.Helper()
	touched := map[string]bool{}
	for i, path := range l.files {
		f, err := os.Open(path)
		require.NoError(t, err)
		_, err = f.Seek(l.offset[i], io.SeekStart)
		require.NoError(t, err)
		r := bufio.NewReaderSize(f, 1<<20)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				break // EOF: a line still being written is read next time
			}
			l.offset[i] += int64(len(line))
			if !bytes.Contains(line, []byte(`"dispatch handled"`)) {
				continue
			}
			var rec struct {
				Time       time.Time `json:"time"`
				Dispatched time.Time `json:"dispatched_at"`
				Target     string    `json:"target"`
				Owner      string    `json:"owner"`
				Gen        int64     `json:"gen"`
			}
			if json.Unmarshal(line, &rec) != nil {
				continue
			}
			l.polls[rec.Target] = append(l.polls[rec.Target], poll{at: rec.Time, dispatched: rec.Dispatched, target: rec.Target, owner: rec.Owner, gen: rec.Gen})
			touched[rec.Target] = true
		}
		_ = f.Close()
	}
	for tg := range touched {
		ps := l.polls[tg]
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].at.Before(ps[j].at) })
	}
	return l.polls
}

// pollStats is what the polls of the short-interval targets show in [from, to].
//
// A duplicate is a target dispatched twice within half its interval: by two
// owners, or twice by one. It is counted on the dispatch times, which are
// the schedule's decisions; the handled times also bunch up when the
// subscribers fall behind (a poll handled late, the next on time), with no
// extra dispatch — those are counted apart, as bunched, with the queue lag
// (dispatch to handling) that causes them.
type pollStats struct {
	polls, duplicates, bunched int
	maxGap                     time.Duration
	worst                      string
	lagP50, lagP99             time.Duration
}

func statsOf(polls map[string][]poll, targets []string, every time.Duration, from, to time.Time) pollStats {
	var s pollStats
	var lags []time.Duration
	for _, tg := range targets {
		last := from
		var prev, prevDispatch time.Time
		for _, p := range polls[tg] {
			if p.at.Before(from) {
				prev, prevDispatch = p.at, p.dispatched
				continue
			}
			if p.at.After(to) {
				break
			}
			s.polls++
			lags = append(lags, p.at.Sub(p.dispatched))
			if !prevDispatch.IsZero() && p.dispatched.Sub(prevDispatch).Abs() < every/2 {
				s.duplicates++
			} else if !prev.IsZero() && p.at.Sub(prev) < every/2 {
				s.bunched++
			}
			if g := p.at.Sub(last); g > s.maxGap {
				s.maxGap, s.worst = g, tg
			}
			last, prev, prevDispatch = p.at, p.at, p.dispatched
		}
		if g := to.Sub(last); g > s.maxGap {
			s.maxGap, s.worst = g, tg
		}
	}
	if len(lags) > 0 {
		slices.Sort(lags)
		s.lagP50, s.lagP99 = lags[len(lags)/2], lags[len(lags)*99/100]
	}
	return s
}

// String is the stats as the test logs them.
func (s pollStats) String() string {
	return fmt.Sprintf("%d polls, %d duplicates (dispatched twice within half an interval), %d bunched (handled within half an interval of the last, dispatched an interval apart), queue lag p50 %v p99 %v, longest gap %v (%s)",
		s.polls, s.duplicates, s.bunched, s.lagP50.Round(time.Millisecond), s.lagP99.Round(time.Millisecond), s.maxGap.Round(time.Millisecond), s.worst)
}

func testScaleOut(t *testing.T, run scaleRun) {
	url := testenv.AMQPURL(t)
	dsn := testenv.MySQLDSN(t)
	prefix := testenv.UniqueName(t)
	testenv.DeleteQueuesOnCleanup(t, url, worker.Topology{Prefix: prefix}.Topics()...)
	d := &deployment{t: t, dir: t.TempDir(), bin: workersBinary(t)}
	d.logDir = filepath.Join(d.dir, "log")
	keepLogs(t, d.logDir)
	yaml := fmt.Sprintf(`allow_inline_secrets: true
process:
  shutdown_timeout: 20s
mq:
  url: %q
  prefix: %s
provisioning_db:
  driver: mysql
  dsn: %q
logging:
  dir: %s
  process_log: worker.log
  format: json
  level: debug
  max_size_mb: 1024
pinger:
  interval: %s
  dead_after: %d
schedule:
  kinds: [server, server-status]
  intervals:
    server: %s
    server-status: %s
  lease_period: %s
  shards: %d
  account_sync_interval: 300ms
`, url, prefix, dsn, d.logDir, beat, deadAfter, run.every, run.every, run.lease, run.shards)
	d.config = filepath.Join(d.dir, "worker.yaml")
	require.NoError(t, os.WriteFile(d.config, []byte(yaml), 0o600))
	ctx := t.Context()
	obs := d.observer(ctx)
	db, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	// The accounts are in the registry before the publishers start.
	var targets []string
	putAccount := func(id string) {
		_, err := obs.Accounts().Put(ctx, accounts.Account{ID: id, Customer: "cust", Provider: "sim", Settings: json.RawMessage(`{"servers":1}`)})
		require.NoError(t, err)
	}
	for i := range run.accounts {
		id := fmt.Sprintf("acct-%05d", i)
		putAccount(id)
		targets = append(targets, id+"/server", id+"/server-status")
	}
	events := consumeEvents(t, url, prefix+".events")

	subs := []*proc{d.start("subscriber"), d.start("subscriber")}
	pubs := []*proc{d.start("publisher"), d.start("publisher"), d.start("publisher")}
	waitAlive(t, ctx, obs, append(append([]*proc{}, subs...), pubs...)...)
	subLogs := newPollLog(filepath.Join(d.logDir, subs[0].logName), filepath.Join(d.logDir, subs[1].logName))
	by, _, err := membersOf(ctx, obs, pubs)
	require.NoError(t, err)
	instance := func(p *proc) string { return by[p.pid()].ID }

	owners := func() (map[string]int, string) {
		rows, err := db.QueryContext(ctx, "SELECT owner, COUNT(*) FROM worker_leases WHERE name LIKE 'shard/%' AND owner <> '' AND expires_at > UTC_TIMESTAMP(6) GROUP BY owner")
		if err != nil {
			return nil, err.Error()
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var o string
			var n int
			if rows.Scan(&o, &n) == nil {
				out[o] = n
			}
		}
		return out, fmt.Sprint(out)
	}
	eventually(t, "the three publishers to share the shards", func() (bool, string) {
		o, s := owners()
		total := 0
		for _, n := range o {
			total += n
		}
		return len(o) == 3 && total == run.shards, s
	})
	eventually(t, "every target polled", func() (bool, string) {
		ps := subLogs.read(t)
		for _, tg := range targets {
			if len(ps[tg]) == 0 {
				return false, tg + " not polled yet"
			}
		}
		return true, ""
	})

	// Steady state.
	from := time.Now().Add(run.every) // the polls of the last rebalance are behind
	time.Sleep(run.every + 3*run.every)
	to := time.Now()
	st := statsOf(subLogs.read(t), targets, run.every, from, to)
	t.Logf("steady state, %d targets in %v: %v", len(targets), to.Sub(from).Round(time.Millisecond), st)
	require.LessOrEqual(t, float64(st.duplicates), 0.001*float64(st.polls), "duplicates ≤ 0.1%%")
	require.LessOrEqual(t, st.maxGap, run.every+run.lease, "no target unpolled longer than interval + lease")

	// A rolling restart: one publisher stopped with SIGTERM hands its
	// shards over with their due times, and a new one takes a share back.
	restartAt := time.Now()
	pubs[0].signal(t, syscall.SIGTERM)
	require.Equal(t, 0, pubs[0].wait(t), "the restarted publisher exits 0")
	pubs[0] = d.start("publisher")
	waitAlive(t, ctx, obs, pubs...)
	by, _, err = membersOf(ctx, obs, pubs)
	require.NoError(t, err)
	eventually(t, "the three publishers to share the shards again", func() (bool, string) {
		o, s := owners()
		total := 0
		for _, n := range o {
			total += n
		}
		return len(o) == 3 && o[instance(pubs[0])] > 0 && total == run.shards, s
	})
	time.Sleep(run.every)
	st = statsOf(subLogs.read(t), targets, run.every, restartAt.Add(-run.every), time.Now())
	t.Logf("across the rolling restart: %v", st)
	// One interval and its jitter; a target due between the release and a
	// survivor's next round (≤ lease/3) waits for that round; and the
	// report's way back.
	require.LessOrEqual(t, st.maxGap, run.every+run.every/5+run.lease/3+time.Second, "no interval lost in the rolling restart")
	require.LessOrEqual(t, float64(st.duplicates), 0.001*float64(st.polls)+1, "no duplicates beyond the handover's")

	// SIGKILL the publisher that relays the outbox, with events on their
	// way: the first polls of new accounts write them.
	var relayOwner string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT owner FROM worker_leases WHERE name = 'relay'").Scan(&relayOwner))
	var killed *proc
	var rest []*proc
	for _, p := range pubs {
		if instance(p) == relayOwner {
			killed = p
		} else {
			rest = append(rest, p)
		}
	}
	require.NotNil(t, killed, "the relay's holder %q is one of the publishers", relayOwner)
	for i := range 10 {
		putAccount(fmt.Sprintf("late-%02d", i))
	}
	time.Sleep(run.every / 2)
	killedAt := time.Now()
	killed.signal(t, syscall.SIGKILL)
	require.Equal(t, -1, killed.wait(t))
	for i := 10; i < 20; i++ {
		putAccount(fmt.Sprintf("late-%02d", i))
	}
	eventually(t, "the killed publisher's shards taken over", func() (bool, string) {
		o, s := owners()
		total := 0
		for _, n := range o {
			total += n
		}
		return o[relayOwner] == 0 && total == run.shards, s
	})
	time.Sleep(run.lease/3 + run.every) // the taken-over targets come due within lease/10
	st = statsOf(subLogs.read(t), targets, run.every, killedAt.Add(-run.every), time.Now())
	t.Logf("around the SIGKILL: %v", st)
	// The lease runs out (≤ lease after the kill), a survivor claims the
	// shard right after (its round is set for the expiry) and spreads the
	// targets over a tenth of the lease: within a lease of the next due
	// time, with a third of one for the claim and the report's way back.
	require.LessOrEqual(t, st.maxGap, run.every+run.lease+run.lease/3, "the killed publisher's targets polled again within a lease")

	// Every outbox event reaches the events queue; duplicates carry the same
	// ids. With thousands of accounts polled, new events keep coming (the
	// taken-over targets' first polls): the check is on every event written
	// up to the moment each late account has its own.
	eventually(t, "the late accounts' events", func() (bool, string) {
		var late int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(DISTINCT account) FROM worker_outbox WHERE account LIKE 'late-%'").Scan(&late); err != nil {
			return false, err.Error()
		}
		return late == 20, fmt.Sprintf("%d late accounts with events", late)
	})
	var cutoff int64
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM worker_outbox").Scan(&cutoff))
	eventually(t, "the outbox relayed", func() (bool, string) {
		var unsent, all, unsentAll int
		if err := db.QueryRowContext(ctx, "SELECT COALESCE(SUM(id <= ? AND sent_at IS NULL), 0), COUNT(*), COALESCE(SUM(sent_at IS NULL), 0) FROM worker_outbox", cutoff).Scan(&unsent, &all, &unsentAll); err != nil {
			return false, err.Error()
		}
		return unsent == 0, fmt.Sprintf("%d unsent of the events up to id %d (outbox: %d events, %d unsent)", unsent, cutoff, all, unsentAll)
	})
	var want []string
	rows, err := db.QueryContext(ctx, "SELECT event_id FROM worker_outbox WHERE id <= ?", cutoff)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		want = append(want, id)
	}
	require.NoError(t, rows.Close())
	eventually(t, "every outbox event on the events queue", func() (bool, string) {
		got := events.counts()
		for _, id := range want {
			if got[id] == 0 {
				return false, "missing " + id
			}
		}
		return true, ""
	})
	dups := 0
	got := events.counts()
	for _, id := range want {
		dups += got[id] - 1
	}
	t.Logf("outbox: %d events, %d published twice (around the kill)", len(want), dups)
	require.LessOrEqual(t, dups, 100, "duplicates bounded by one relay batch")

	// SIGSTOP a publisher past its lease, then SIGCONT: it fences what it
	// would have dispatched, and no dispatch of an older generation is
	// handled after it resumes.
	paused := rest[0]
	pausedID := instance(paused)
	paused.signal(t, syscall.SIGSTOP)
	eventually(t, "the paused publisher's shards taken over", func() (bool, string) {
		o, s := owners()
		total := 0
		for _, n := range o {
			total += n
		}
		return o[pausedID] == 0 && total == run.shards, s
	})
	time.Sleep(run.every) // its targets come due
	resumed := time.Now()
	paused.signal(t, syscall.SIGCONT)
	pausedLog := filepath.Join(d.logDir, paused.logName)
	var fencedLine string
	eventually(t, "the resumed publisher to report what it fenced", func() (bool, string) {
		b, err := os.ReadFile(pausedLog)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "fenced") {
				fencedLine = line
				return true, ""
			}
		}
		return false, fmt.Sprint(err)
	})
	t.Logf("the resumed publisher: %s", fencedLine)
	time.Sleep(run.lease)
	stale := 0
	for _, ps := range subLogs.read(t) {
		var maxGen int64
		for _, p := range ps {
			if p.gen < maxGen && p.at.After(resumed.Add(run.lease/3)) {
				stale++
			}
			maxGen = max(maxGen, p.gen)
		}
	}
	require.Zero(t, stale, "no dispatch of an older lease generation handled after the resume")

	for _, p := range append(append([]*proc{}, subs...), rest...) {
		p.signal(t, syscall.SIGTERM)
	}
	for _, p := range append(append([]*proc{}, subs...), rest...) {
		require.Equal(t, 0, p.wait(t), "%s exits 0 after SIGTERM", p.role)
	}
}

// keepLogs copies the processes' logs to $WORKER_TEST_KEEP_LOGS (when
// set) if the test fails, for a look after the temporary directory is gone.
func keepLogs(t *testing.T, logDir string) {
	keep := os.Getenv("WORKER_TEST_KEEP_LOGS")
	if keep == "" {
		return
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		dst := filepath.Join(keep, t.Name())
		if err := os.CopyFS(dst, os.DirFS(logDir)); err != nil {
			t.Logf("keeping the logs in %s: %v", dst, err)
			return
		}
		t.Logf("the processes' logs are in %s", dst)
	})
}

// eventLog counts the messages on the events queue by message id.
type eventLog struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *eventLog) counts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.n))
	for k, v := range e.n {
		out[k] = v
	}
	return out
}

// consumeEvents declares the events queue (as the workers do: durable) and
// consumes it for the test.
func consumeEvents(t *testing.T, url, queue string) *eventLog {
	t.Helper()
	conn, err := amqp.Dial(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	require.NoError(t, err)
	if _, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil); err != nil {
		// Not declared yet: the workers declare it with their arguments;
		// wait for the first of them.
		_ = conn.Close()
		deadline := time.Now().Add(waitLong)
		for {
			conn, err = amqp.Dial(url)
			require.NoError(t, err)
			ch, err = conn.Channel()
			require.NoError(t, err)
			if _, err = ch.QueueDeclarePassive(queue, true, false, false, false, nil); err == nil {
				break
			}
			_ = conn.Close()
			require.True(t, time.Now().Before(deadline), "the events queue %s was never declared", queue)
			time.Sleep(100 * time.Millisecond)
		}
		t.Cleanup(func() { _ = conn.Close() })
	}
	ds, err := ch.Consume(queue, "", true, false, false, false, nil)
	require.NoError(t, err)
	e := &eventLog{n: map[string]int{}}
	go func() {
		for d := range ds {
			e.mu.Lock()
			e.n[d.MessageId]++
			e.mu.Unlock()
		}
	}()
	return e
}

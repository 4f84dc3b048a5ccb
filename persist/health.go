package persist

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

const maxHealthErrorLen = 2000

// PollHealth is the persisted summary of the failing polls of one kind of
// one account (table worker_poll_health): the schedule of a publisher
// writes it when the polls start failing, when throttling starts or stops,
// and when the failure count reaches a power of two, and deletes it when a
// poll succeeds again. Writes are rare by design: a healthy schedule writes
// nothing. It is what a short-lived status process reads in place of the
// publishers' memory.
type PollHealth struct {
	Account string
	Kind    string
	// Failures counts consecutive failed or throttled polls, as of the last
	// write (at least this many).
	Failures int
	// LastError is the last failure's error; Throttled says the cloud was
	// throttling the account.
	LastError string
	Throttled bool
	// Interval is the kind's poll interval for the account.
	Interval time.Duration
	// Since is when the failures began: no poll of the kind has succeeded
	// since. LastFailure is the last failure as of the last write.
	Since, LastFailure time.Time
	// Instance is the publisher that wrote the row.
	Instance string
}

type pollHealthRow struct {
	Account     string    `gorm:"column:account;primaryKey"`
	Kind        string    `gorm:"column:kind;primaryKey"`
	Failures    int64     `gorm:"column:failures"`
	LastError   string    `gorm:"column:last_error"`
	Throttled   bool      `gorm:"column:throttled"`
	IntervalMS  int64     `gorm:"column:interval_ms"`
	Since       time.Time `gorm:"column:since"`
	LastFailure time.Time `gorm:"column:last_failure"`
	Instance    string    `gorm:"column:instance_id"`
}

func (pollHealthRow) TableName() string { return tblPollHealth }

var pollHealthDDL = tableDef{
	name: tblPollHealth,
	columns: []string{
		fmt.Sprintf("account $BYTES(%d) NOT NULL", maxAccountLen),
		fmt.Sprintf("kind $BYTES(%d) NOT NULL", maxKindLen),
		"failures BIGINT NOT NULL",
		"last_error $TEXT NOT NULL",
		"throttled BOOLEAN NOT NULL",
		"interval_ms BIGINT NOT NULL",
		"since $TIME NOT NULL",
		"last_failure $TIME NOT NULL",
		fmt.Sprintf("instance_id $BYTES(%d) NOT NULL", MaxInstanceIDLen),
	},
	primaryKey: "account, kind",
}

// PutPollHealth creates or replaces the rows of failing (account, kind)
// pairs.
//
// It is a step of the worker's protocol, taken by the schedule: a host that
// runs a worker does not call it (see the package documentation).
func (s *Store) PutPollHealth(ctx context.Context, hs ...PollHealth) error {
	if len(hs) == 0 {
		return nil
	}
	rows := make([]pollHealthRow, 0, len(hs))
	for _, h := range hs {
		if h.Account == "" || len(h.Account) > maxAccountLen || h.Kind == "" || len(h.Kind) > maxKindLen ||
			len(h.Instance) > MaxInstanceIDLen {
			return invalidf("persist: put poll health %q/%q: account must be 1-%d bytes, kind 1-%d, instance 0-%d",
				h.Account, h.Kind, maxAccountLen, maxKindLen, MaxInstanceIDLen)
		}
		rows = append(rows, pollHealthRow{Account: h.Account, Kind: h.Kind, Failures: int64(h.Failures),
			LastError: cut(validText(h.LastError), maxHealthErrorLen), Throttled: h.Throttled,
			IntervalMS: h.Interval.Milliseconds(), Since: dbTime(h.Since), LastFailure: dbTime(h.LastFailure),
			Instance: h.Instance})
	}
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{
			Columns: []clause.Column{{Name: "account"}, {Name: "kind"}},
			DoUpdates: clause.AssignmentColumns([]string{"failures", "last_error", "throttled", "interval_ms",
				"since", "last_failure", "instance_id"}),
		}).CreateInBatches(&rows, 200).Error
	})
	if err != nil {
		return fmt.Errorf("persist: put %d poll health row(s): %w", len(rows), err)
	}
	return nil
}

// DeletePollHealth deletes the row of (account, kind), or every row of the
// account when kind is "": its polls succeed again, or it is no longer
// polled.
//
// It is a step of the worker's protocol, taken by the schedule: a host that
// runs a worker does not call it (see the package documentation).
func (s *Store) DeletePollHealth(ctx context.Context, account, kind string) error {
	err := retry(ctx, func() error {
		q := s.prov.writer.WithContext(ctx).Where("account = ?", account)
		if kind != "" {
			q = q.Where("kind = ?", kind)
		}
		return q.Delete(&pollHealthRow{}).Error
	})
	if err != nil {
		return fmt.Errorf("persist: delete poll health %q/%q: %w", account, kind, err)
	}
	return nil
}

// PollHealth returns the rows of every failing (account, kind), ordered by
// account then kind.
func (s *Store) PollHealth(ctx context.Context) ([]PollHealth, error) {
	var rows []pollHealthRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Order("account, kind").Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: poll health: %w", err)
	}
	out := make([]PollHealth, 0, len(rows))
	for _, r := range rows {
		out = append(out, PollHealth{Account: r.Account, Kind: r.Kind, Failures: int(r.Failures),
			LastError: r.LastError, Throttled: r.Throttled, Interval: time.Duration(r.IntervalMS) * time.Millisecond,
			Since: r.Since.UTC(), LastFailure: r.LastFailure.UTC(), Instance: r.Instance})
	}
	return out, nil
}

// FinishedJobs returns up to limit jobs that reached one of the given
// terminal states at or after since, most recent first. No states means
// failed and timed out. A limit <= 0 means 100.
func (s *Store) FinishedJobs(ctx context.Context, since time.Time, limit int, states ...JobState) ([]Job, error) {
	if limit <= 0 {
		limit = 100
	}
	if len(states) == 0 {
		states = []JobState{JobFailed, JobTimedOut}
	}
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = string(st)
	}
	var rows []jobRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("state IN ? AND updated_at >= ?", names, dbTime(since)).
			Order("updated_at DESC, id").Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: finished jobs: %w", err)
	}
	out := make([]Job, len(rows))
	for i, r := range rows {
		out[i] = r.decode()
	}
	return out, nil
}

// PoisonCount is how many poison messages not yet replayed share a reason
// and an action type.
type PoisonCount struct {
	Reason     string `json:"reason"`
	ActionType string `json:"action_type"`
	Count      int    `json:"count"`
}

// PoisonCounts counts the poison messages not yet replayed by reason and
// action type, most first (then by reason and action type).
func (s *Store) PoisonCounts(ctx context.Context) ([]PoisonCount, error) {
	var out []PoisonCount
	err := retry(ctx, func() error {
		out = out[:0]
		return s.prov.reader.WithContext(ctx).Table(tblPoison).
			Select("reason, action_type, COUNT(*) AS count").Where("replayed_at IS NULL").
			Group("reason, action_type").Order("count DESC, reason, action_type").Scan(&out).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: poison counts: %w", err)
	}
	return out, nil
}

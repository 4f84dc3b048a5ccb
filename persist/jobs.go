package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// JobState is where a tracked cloud operation stands.
type JobState string

// The states of a [Job]. A job starts running and ends in exactly one of the
// terminal states.
const (
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobTimedOut  JobState = "timed_out"
)

// Terminal reports whether the job is over.
func (s JobState) Terminal() bool {
	return s == JobSucceeded || s == JobFailed || s == JobTimedOut
}

// eventType is the outbox event announcing that a job reached s.
func (s JobState) eventType() string {
	switch s {
	case JobSucceeded:
		return EventJobCompleted
	case JobFailed:
		return EventJobFailed
	default:
		return EventJobTimedOut
	}
}

// Job is a long-running cloud operation the worker follows to completion
// (table worker_jobs).
type Job struct {
	// ID identifies the job; tracking the same ID again is a no-op.
	ID          string          `json:"id"`
	Account     string          `json:"account"`
	Customer    string          `json:"customer,omitempty"`
	Kind        string          `json:"kind"`                   // what the job does or acts on, e.g. "server"
	OperationID string          `json:"operation_id,omitempty"` // the provider's operation id
	ResourceID  string          `json:"resource_id,omitempty"`  // the resource, once known
	State       JobState        `json:"state"`
	Result      json.RawMessage `json:"result,omitempty"` // set when the job finished; nil if none
	Error       string          `json:"error,omitempty"`  // why it failed or timed out
	// Deadline is when a running job should be given up as timed out; zero
	// means none. The store records it; the tracker acts on it.
	Deadline  time.Time `json:"deadline,omitzero"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int64     `json:"version"` // 1 when tracked, 2 once finished
}

type jobRow struct {
	ID          string     `gorm:"column:id;primaryKey"`
	Account     string     `gorm:"column:account"`
	Customer    string     `gorm:"column:customer"`
	Kind        string     `gorm:"column:kind"`
	OperationID string     `gorm:"column:operation_id"`
	ResourceID  string     `gorm:"column:resource_id"`
	State       string     `gorm:"column:state"`
	Result      *string    `gorm:"column:result"`
	Error       string     `gorm:"column:error"`
	Deadline    *time.Time `gorm:"column:deadline"`
	CreatedAt   time.Time  `gorm:"column:created_at;autoCreateTime:false"`
	UpdatedAt   time.Time  `gorm:"column:updated_at;autoUpdateTime:false"`
	Version     int64      `gorm:"column:version"`
}

func (jobRow) TableName() string { return tblJobs }

func (r jobRow) decode() Job {
	j := Job{
		ID: r.ID, Account: r.Account, Customer: r.Customer, Kind: r.Kind, OperationID: r.OperationID,
		ResourceID: r.ResourceID, State: JobState(r.State), Error: r.Error,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Version: r.Version,
	}
	if r.Result != nil {
		j.Result = json.RawMessage(*r.Result)
	}
	if r.Deadline != nil {
		j.Deadline = r.Deadline.UTC()
	}
	return j
}

// validJSON checks an optional JSON value and returns it as a nullable column.
func validJSON(raw json.RawMessage) (*string, bool) {
	if len(raw) == 0 {
		return nil, true
	}
	if !json.Valid(raw) {
		return nil, false
	}
	s := string(raw)
	return &s, true
}

// TrackJob records a job as running. It is idempotent by ID: when a job with
// that ID exists it returns the stored job and created == false, whatever
// its state. The store sets State (running), Version (1) and UpdatedAt, and
// CreatedAt when zero; j.Result and j.Error are ignored. ID, Account and
// Kind are required.
//
// It is a step of the worker's protocol, taken by the job tracker: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) TrackJob(ctx context.Context, j Job) (Job, bool, error) {
	switch {
	case j.ID == "":
		return Job{}, false, invalidf("persist: track job: ID is required")
	case len(j.ID) > maxJobIDLen:
		return Job{}, false, invalidf("persist: track job %s: ID is longer than %d bytes", j.ID, maxJobIDLen)
	case j.Account == "":
		return Job{}, false, invalidf("persist: track job %s: Account is required", j.ID)
	case j.Kind == "":
		return Job{}, false, invalidf("persist: track job %s: Kind is required", j.ID)
	case len(j.Account) > maxAccountLen, len(j.Customer) > maxCustomerLen, len(j.Kind) > maxKindLen,
		len(j.OperationID) > maxOpIDLen, len(j.ResourceID) > maxResourceLen:
		return Job{}, false, invalidf("persist: track job %s: Account, Customer, Kind, OperationID or ResourceID is too long", j.ID)
	}
	now := dbTime(s.now())
	row := jobRow{
		ID: j.ID, Account: j.Account, Customer: j.Customer, Kind: j.Kind, OperationID: j.OperationID,
		ResourceID: j.ResourceID, State: string(JobRunning), CreatedAt: now, UpdatedAt: now, Version: 1,
	}
	if !j.CreatedAt.IsZero() {
		row.CreatedAt = dbTime(j.CreatedAt)
	}
	if !j.Deadline.IsZero() {
		d := dbTime(j.Deadline)
		row.Deadline = &d
	}
	var created bool
	var stored jobRow
	err := retry(ctx, func() error {
		db := s.prov.writer.WithContext(ctx)
		res := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoNothing: true}).Create(&row)
		if res.Error != nil {
			return res.Error
		}
		if created = res.RowsAffected == 1; created {
			stored = row
			return nil
		}
		return db.Where("id = ?", j.ID).Take(&stored).Error
	})
	if err != nil {
		return Job{}, false, fmt.Errorf("persist: track job %s: %w", j.ID, err)
	}
	return stored.decode(), created, nil
}

// Job returns a job by ID, or an error matching [ErrNotFound].
func (s *Store) Job(ctx context.Context, id string) (Job, error) {
	var rows []jobRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&rows).Error
	})
	if err != nil {
		return Job{}, fmt.Errorf("persist: job %s: %w", id, err)
	}
	if len(rows) == 0 {
		return Job{}, fmt.Errorf("persist: job %s: %w", id, ErrNotFound)
	}
	return rows[0].decode(), nil
}

// RunningJobs returns up to limit running jobs with IDs greater than after,
// in ID order: pass the last ID of a page to get the next one, "" to start.
// A limit <= 0 means 100. It is meant for re-scheduling the checks of jobs
// after a restart.
//
// It is a step of the worker's protocol, taken by the job tracker: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) RunningJobs(ctx context.Context, after string, limit int) ([]Job, error) {
	if limit <= 0 {
		limit = 100
	}
	var rows []jobRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("state = ? AND id > ?", string(JobRunning), after).
			Order("id").Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: running jobs: %w", err)
	}
	out := make([]Job, len(rows))
	for i, r := range rows {
		out[i] = r.decode()
	}
	return out, nil
}

// FinishJob moves a running job to the terminal state st, exactly once. In
// one transaction it updates the job only if it is still running and writes
// the outbox event "job.completed" (succeeded), "job.failed" or
// "job.timed_out", whose payload is the finished [Job]; then it returns true.
// If the job had already finished (another worker won) it writes nothing and
// returns false. resourceID, when not empty, replaces the job's ResourceID;
// result (nil for none) must be valid JSON. A job that does not exist fails
// with [ErrNotFound]; a non-terminal st with [ErrInvalid].
//
// It is a step of the worker's protocol, taken by the job tracker: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) FinishJob(ctx context.Context, id string, st JobState, resourceID string, result json.RawMessage, errMsg string) (bool, error) {
	if !st.Terminal() {
		return false, invalidf("persist: finish job %s: state %q is not terminal", id, st)
	}
	if len(resourceID) > maxResourceLen {
		return false, invalidf("persist: finish job %s: resource id is longer than %d bytes", id, maxResourceLen)
	}
	res, ok := validJSON(result)
	if !ok {
		return false, invalidf("persist: finish job %s: result is not valid JSON", id)
	}
	now := dbTime(s.now())
	var finished bool
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			set := map[string]any{
				"state": string(st), "result": nil, "error": errMsg, "updated_at": now, "version": gorm.Expr("version + 1"),
			}
			if res != nil {
				set["result"] = *res
			}
			if resourceID != "" {
				set["resource_id"] = resourceID
			}
			upd := tx.Model(&jobRow{}).Where("id = ? AND state = ?", id, string(JobRunning)).Updates(set)
			if upd.Error != nil {
				return fmt.Errorf("update %s: %w", tblJobs, upd.Error)
			}
			var rows []jobRow
			if err := tx.Where("id = ?", id).Limit(1).Find(&rows).Error; err != nil {
				return fmt.Errorf("read %s: %w", tblJobs, err)
			}
			if len(rows) == 0 {
				return ErrNotFound
			}
			if finished = upd.RowsAffected == 1; !finished {
				return nil
			}
			j := rows[0].decode()
			payload, err := json.Marshal(j)
			if err != nil {
				return fmt.Errorf("encode job: %w", err)
			}
			return insertEvents(tx, []eventRow{{
				EventID: newEventID(), Type: st.eventType(), Account: j.Account, Customer: j.Customer,
				Kind: j.Kind, ResourceID: j.ResourceID, Payload: string(payload), CreatedAt: now,
			}})
		})
	})
	if err != nil {
		return false, fmt.Errorf("persist: finish job %s: %w", id, err)
	}
	return finished, nil
}

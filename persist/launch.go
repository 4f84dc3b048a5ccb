package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
)

// States of a [LaunchIntent].
const (
	LaunchClaimed  = "claimed"  // a handler took the launch on; the server may or may not exist yet
	LaunchLaunched = "launched" // the launch was started: ServerID, OperationID and JobID are known
)

// LaunchIntent makes a server launch idempotent across redelivery (table
// worker_launch_intents). The handler of a launch action first claims the
// action's idempotency key; only the claimant launches (tagging the server
// with the key), and it records the result with [Store.RecordLaunch]. A
// redelivered action finds the intent: "launched" means there is nothing
// left to do; "claimed" means an earlier attempt may have died mid-way, and
// the server tagged with the key, if any, is the one it launched.
type LaunchIntent struct {
	Key         string          `json:"key"` // the action's idempotency key
	Account     string          `json:"account"`
	Customer    string          `json:"customer,omitempty"`
	Request     json.RawMessage `json:"request,omitempty"` // the launch request, as JSON
	State       string          `json:"state"`             // LaunchClaimed or LaunchLaunched
	ServerID    string          `json:"server_id,omitempty"`
	OperationID string          `json:"operation_id,omitempty"`
	JobID       string          `json:"job_id,omitempty"`
	ClaimedAt   time.Time       `json:"claimed_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

type launchRow struct {
	Key         string    `gorm:"column:idempotency_key;primaryKey"`
	Account     string    `gorm:"column:account"`
	Customer    string    `gorm:"column:customer"`
	Request     string    `gorm:"column:request"`
	State       string    `gorm:"column:state"`
	ServerID    string    `gorm:"column:server_id"`
	OperationID string    `gorm:"column:operation_id"`
	JobID       string    `gorm:"column:job_id"`
	ClaimedAt   time.Time `gorm:"column:claimed_at"`
	UpdatedAt   time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (launchRow) TableName() string { return tblLaunches }

func (r launchRow) decode() LaunchIntent {
	in := LaunchIntent{
		Key: r.Key, Account: r.Account, Customer: r.Customer, State: r.State, ServerID: r.ServerID,
		OperationID: r.OperationID, JobID: r.JobID, ClaimedAt: r.ClaimedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.Request != "" {
		in.Request = json.RawMessage(r.Request)
	}
	return in
}

// ClaimLaunch stores in as a "claimed" intent if no intent has its Key and
// returns it with claimed == true; otherwise it returns the existing intent
// and false. Of any number of concurrent claims of one key, from any process,
// exactly one wins. Key and Account are required; Request (optional) must be
// valid JSON; State, ServerID, OperationID, JobID and the times are set by
// the store.
//
// It is a step of the worker's protocol, taken by the launcher: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) ClaimLaunch(ctx context.Context, in LaunchIntent) (LaunchIntent, bool, error) {
	switch {
	case in.Key == "":
		return LaunchIntent{}, false, invalidf("persist: claim launch: Key is required")
	case len(in.Key) > maxKeyLen:
		return LaunchIntent{}, false, invalidf("persist: claim launch %s: Key is longer than %d bytes", in.Key, maxKeyLen)
	case in.Account == "":
		return LaunchIntent{}, false, invalidf("persist: claim launch %s: Account is required", in.Key)
	case len(in.Account) > maxAccountLen, len(in.Customer) > maxCustomerLen:
		return LaunchIntent{}, false, invalidf("persist: claim launch %s: Account or Customer is too long", in.Key)
	}
	req, ok := validJSON(in.Request)
	if !ok {
		return LaunchIntent{}, false, invalidf("persist: claim launch %s: Request is not valid JSON", in.Key)
	}
	now := dbTime(s.now())
	row := launchRow{
		Key: in.Key, Account: in.Account, Customer: in.Customer, State: LaunchClaimed, ClaimedAt: now, UpdatedAt: now,
	}
	if req != nil {
		row.Request = *req
	}
	var claimed bool
	var stored launchRow
	err := retry(ctx, func() error {
		db := s.prov.writer.WithContext(ctx)
		res := db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "idempotency_key"}}, DoNothing: true}).Create(&row)
		if res.Error != nil {
			return res.Error
		}
		if claimed = res.RowsAffected == 1; claimed {
			stored = row
			return nil
		}
		return db.Where("idempotency_key = ?", in.Key).Take(&stored).Error
	})
	if err != nil {
		return LaunchIntent{}, false, fmt.Errorf("persist: claim launch %s: %w", in.Key, err)
	}
	return stored.decode(), claimed, nil
}

// RecordLaunch marks the intent with this key "launched" and records what
// the launch started. Recording again overwrites the ids. It fails with
// [ErrNotFound] if the key was never claimed.
//
// It is a step of the worker's protocol, taken by the launcher: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) RecordLaunch(ctx context.Context, key, serverID, operationID, jobID string) error {
	switch {
	case len(serverID) > maxResourceLen:
		return invalidf("persist: record launch %s: server id is longer than %d bytes", key, maxResourceLen)
	case len(operationID) > maxOpIDLen:
		return invalidf("persist: record launch %s: operation id is longer than %d bytes", key, maxOpIDLen)
	case len(jobID) > maxJobIDLen:
		return invalidf("persist: record launch %s: job id is longer than %d bytes", key, maxJobIDLen)
	}
	now := dbTime(s.now())
	var found bool
	err := retry(ctx, func() error {
		db := s.prov.writer.WithContext(ctx)
		res := db.Model(&launchRow{}).Where("idempotency_key = ?", key).Updates(map[string]any{
			"state": LaunchLaunched, "server_id": serverID, "operation_id": operationID, "job_id": jobID, "updated_at": now,
		})
		if res.Error != nil {
			return res.Error
		}
		if found = res.RowsAffected == 1; found {
			return nil
		}
		// MySQL counts only rows that changed: recording the same values
		// again affects none. Tell that apart from a missing claim.
		var n int64
		err := db.Model(&launchRow{}).Where("idempotency_key = ?", key).Count(&n).Error
		found = n > 0
		return err
	})
	if err != nil {
		return fmt.Errorf("persist: record launch %s: %w", key, err)
	}
	if !found {
		return fmt.Errorf("persist: record launch %s: %w", key, ErrNotFound)
	}
	return nil
}

// LaunchIntent returns the intent with this key, or an error matching
// [ErrNotFound].
func (s *Store) LaunchIntent(ctx context.Context, key string) (LaunchIntent, error) {
	var rows []launchRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("idempotency_key = ?", key).Limit(1).Find(&rows).Error
	})
	if err != nil {
		return LaunchIntent{}, fmt.Errorf("persist: launch intent %s: %w", key, err)
	}
	if len(rows) == 0 {
		return LaunchIntent{}, fmt.Errorf("persist: launch intent %s: %w", key, ErrNotFound)
	}
	return rows[0].decode(), nil
}

// RenewLaunch moves the claim of a launch that is still "claimed" to now,
// provided its ClaimedAt is still claimedAt, the value the caller last saw:
// a compare-and-set. It reports whether this call renewed the claim. The
// claimant renews its claim while its slow cloud calls run, so that a
// redelivered copy of the action sees a live claim and waits; an attempt
// that finds a claim older than its consistency window takes it over the
// same way, so that of several such attempts exactly one goes on to launch.
// It returns the new ClaimedAt for the next renewal. Renewing at the very
// instant of the last claim is a no-op that reports true.
//
// It is a step of the worker's protocol, taken by the launcher: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) RenewLaunch(ctx context.Context, key string, claimedAt time.Time) (time.Time, bool, error) {
	now := dbTime(s.now())
	from := dbTime(claimedAt)
	if now.Equal(from) {
		return now, true, nil
	}
	var renewed bool
	err := retry(ctx, func() error {
		res := s.prov.writer.WithContext(ctx).Model(&launchRow{}).
			Where("idempotency_key = ? AND state = ? AND claimed_at = ?", key, LaunchClaimed, from).
			Updates(map[string]any{"claimed_at": now, "updated_at": now})
		renewed = res.RowsAffected == 1
		return res.Error
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("persist: renew launch claim %s: %w", key, err)
	}
	if !renewed {
		return claimedAt, false, nil
	}
	return now, true, nil
}

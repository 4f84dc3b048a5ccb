package persist

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Limits of the lease tables (bytes).
const (
	MaxLeaseNameLen = 128 // Lease.Name
	maxReportLen    = 64 << 10
)

// Lease is one row of worker_leases: a named piece of work (a shard of the
// poll schedule, the outbox relay, a publisher's presence) held by one
// process until ExpiresAt. Generation grows by one every time the lease
// changes hands, so that what its holder writes can be told apart from what
// an earlier holder wrote (a fencing token).
type Lease struct {
	Name       string
	Owner      string // instance id; "" when free
	Generation int64
	ExpiresAt  time.Time
	// Handoff is what the last holder left for the next one when it let
	// the lease go (the due times of a shard's targets); "" otherwise.
	Handoff string
}

type leaseRow struct {
	Name       string    `gorm:"column:name;primaryKey"`
	Owner      string    `gorm:"column:owner"`
	Generation int64     `gorm:"column:generation"`
	ExpiresAt  time.Time `gorm:"column:expires_at"`
	Handoff    string    `gorm:"column:handoff"`
}

func (leaseRow) TableName() string { return tblLeases }

// ForwardedReport is a poll outcome that reached a publisher which does not
// own its target (table worker_schedule_reports): the owner of the shard
// takes it from there.
type ForwardedReport struct {
	ID         int64
	Shard      int
	Generation int64
	Body       []byte
	CreatedAt  time.Time
}

type reportRow struct {
	ID         int64     `gorm:"column:id;primaryKey;autoIncrement"`
	Shard      int64     `gorm:"column:shard"`
	Generation int64     `gorm:"column:generation"`
	Body       string    `gorm:"column:body"`
	CreatedAt  time.Time `gorm:"column:created_at"`
}

func (reportRow) TableName() string { return tblReports }

var (
	leasesDDL = tableDef{
		name: tblLeases,
		columns: []string{
			fmt.Sprintf("name $BYTES(%d) NOT NULL", MaxLeaseNameLen),
			fmt.Sprintf("owner $BYTES(%d) NOT NULL", MaxInstanceIDLen),
			"generation BIGINT NOT NULL",
			"expires_at $TIME NOT NULL",
			"handoff $TEXT NOT NULL",
		},
		primaryKey: "name",
	}
	reportsDDL = tableDef{
		name: tblReports,
		columns: []string{
			"id $ID",
			"shard BIGINT NOT NULL",
			"generation BIGINT NOT NULL",
			"body $TEXT NOT NULL",
			"created_at $TIME NOT NULL",
		},
		indexes: []string{"shard, id"},
	}
)

// The steps below are a step of the worker's protocol, taken by the
// publishers' lease keeper: a host that runs a worker does not call them
// (see the package documentation).

// EnsureLeases creates the named leases, free, where they do not exist.
func (s *Store) EnsureLeases(ctx context.Context, names ...string) error {
	if len(names) == 0 {
		return nil
	}
	rows := make([]leaseRow, 0, len(names))
	for _, n := range names {
		if n == "" || len(n) > MaxLeaseNameLen {
			return invalidf("persist: lease name %q must be 1-%d bytes", n, MaxLeaseNameLen)
		}
		rows = append(rows, leaseRow{Name: n, ExpiresAt: dbTime(time.Unix(0, 0))})
	}
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}}, DoNothing: true}).
			CreateInBatches(&rows, 500).Error
	})
	if err != nil {
		return fmt.Errorf("persist: ensure %d lease(s): %w", len(rows), err)
	}
	return nil
}

// Leases returns every lease whose name starts with prefix, by name. It
// reads the primary (the writer), never a replica: a lease read late is a
// lease held twice.
func (s *Store) Leases(ctx context.Context, prefix string) ([]Lease, error) {
	var rows []leaseRow
	err := retry(ctx, func() error {
		rows = rows[:0]
		// The handoff is read by the one that takes a lease (TakeHandoff).
		q := s.prov.writer.WithContext(ctx).Select("name, owner, generation, expires_at, '' AS handoff").Order("name")
		if prefix != "" {
			q = q.Where("name >= ? AND name < ?", prefix, prefix+"\xff")
		}
		return q.Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: leases: %w", err)
	}
	out := make([]Lease, len(rows))
	for i, r := range rows {
		out[i] = Lease{Name: r.Name, Owner: r.Owner, Generation: r.Generation, ExpiresAt: r.ExpiresAt.UTC()}
	}
	return out, nil
}

// RenewLeases extends every lease owner holds to until, in one statement,
// and returns how many it extended.
func (s *Store) RenewLeases(ctx context.Context, owner string, until time.Time) (int, error) {
	if owner == "" {
		return 0, invalidf("persist: renew leases: owner is required")
	}
	var n int64
	err := retry(ctx, func() error {
		res := s.prov.writer.WithContext(ctx).Model(&leaseRow{}).Where("owner = ?", owner).
			Update("expires_at", dbTime(until))
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, fmt.Errorf("persist: renew leases of %q: %w", owner, err)
	}
	return int(n), nil
}

// ClaimLease takes the lease name for owner until until, if it is still at
// generation gen and free or expired at now; the lease is then at gen+1.
// It reports whether the claim won: of two processes claiming the same
// lease at the same generation, one does.
func (s *Store) ClaimLease(ctx context.Context, name, owner string, gen int64, now, until time.Time) (bool, error) {
	if owner == "" || len(owner) > MaxInstanceIDLen {
		return false, invalidf("persist: claim lease %q: owner %q must be 1-%d bytes", name, owner, MaxInstanceIDLen)
	}
	var n int64
	err := retry(ctx, func() error {
		res := s.prov.writer.WithContext(ctx).Model(&leaseRow{}).
			Where("name = ? AND generation = ? AND (owner = '' OR expires_at < ?)", name, gen, dbTime(now)).
			Updates(map[string]any{"owner": owner, "generation": gen + 1, "expires_at": dbTime(until)})
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return false, fmt.Errorf("persist: claim lease %q: %w", name, err)
	}
	return n == 1, nil
}

// ReleaseLease lets a lease owner holds go, leaving handoff for the next
// holder; it reports whether owner held it.
func (s *Store) ReleaseLease(ctx context.Context, name, owner, handoff string) (bool, error) {
	var n int64
	err := retry(ctx, func() error {
		res := s.prov.writer.WithContext(ctx).Model(&leaseRow{}).Where("name = ? AND owner = ?", name, owner).
			Updates(map[string]any{"owner": "", "expires_at": dbTime(time.Unix(0, 0)), "handoff": handoff})
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return false, fmt.Errorf("persist: release lease %q: %w", name, err)
	}
	return n == 1, nil
}

// TakeHandoff returns the handoff left on a lease that owner now holds at
// generation gen, and clears it.
func (s *Store) TakeHandoff(ctx context.Context, name, owner string, gen int64) (string, error) {
	var handoff string
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var rows []leaseRow
			if err := tx.Where("name = ? AND owner = ? AND generation = ?", name, owner, gen).Limit(1).Find(&rows).Error; err != nil {
				return err
			}
			if len(rows) == 0 || rows[0].Handoff == "" {
				handoff = ""
				return nil
			}
			handoff = rows[0].Handoff
			return tx.Model(&leaseRow{}).Where("name = ? AND generation = ?", name, gen).Update("handoff", "").Error
		})
	})
	if err != nil {
		return "", fmt.Errorf("persist: take the handoff of lease %q: %w", name, err)
	}
	return handoff, nil
}

// DeleteLease deletes a lease row owner holds (a publisher's presence, at
// its shutdown).
func (s *Store) DeleteLease(ctx context.Context, name, owner string) error {
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Where("name = ? AND owner = ?", name, owner).Delete(&leaseRow{}).Error
	})
	if err != nil {
		return fmt.Errorf("persist: delete lease %q: %w", name, err)
	}
	return nil
}

// CreateLease creates a lease held by owner until until (a publisher's
// presence), or takes it over if it exists.
func (s *Store) CreateLease(ctx context.Context, name, owner string, until time.Time) error {
	if name == "" || len(name) > MaxLeaseNameLen || owner == "" || len(owner) > MaxInstanceIDLen {
		return invalidf("persist: create lease %q for %q: name must be 1-%d bytes, owner 1-%d", name, owner, MaxLeaseNameLen, MaxInstanceIDLen)
	}
	row := leaseRow{Name: name, Owner: owner, Generation: 1, ExpiresAt: dbTime(until)}
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}},
			DoUpdates: clause.AssignmentColumns([]string{"owner", "expires_at"})}).Create(&row).Error
	})
	if err != nil {
		return fmt.Errorf("persist: create lease %q: %w", name, err)
	}
	return nil
}

// PurgeLeases deletes the leases whose name starts with prefix and that
// expired before olderThan (the presence of publishers long gone).
func (s *Store) PurgeLeases(ctx context.Context, prefix string, olderThan time.Time) (int, error) {
	if prefix == "" {
		return 0, invalidf("persist: purge leases: a prefix is required")
	}
	var n int64
	err := retry(ctx, func() error {
		res := s.prov.writer.WithContext(ctx).Where("name >= ? AND name < ? AND expires_at < ?", prefix, prefix+"\xff", dbTime(olderThan)).
			Delete(&leaseRow{})
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, fmt.Errorf("persist: purge leases: %w", err)
	}
	return int(n), nil
}

// ForwardReports stores poll outcomes for the owners of their shards (at
// the generation each dispatch said), in one statement per 500.
func (s *Store) ForwardReports(ctx context.Context, rs ...ForwardedReport) error {
	if len(rs) == 0 {
		return nil
	}
	rows := make([]reportRow, 0, len(rs))
	at := dbTime(s.now())
	for _, r := range rs {
		if len(r.Body) > maxReportLen {
			return invalidf("persist: forward report: %d bytes, at most %d", len(r.Body), maxReportLen)
		}
		rows = append(rows, reportRow{Shard: int64(r.Shard), Generation: r.Generation, Body: string(r.Body), CreatedAt: at})
	}
	err := retry(ctx, func() error {
		for i := range rows {
			rows[i].ID = 0
		}
		return s.prov.writer.WithContext(ctx).CreateInBatches(&rows, 500).Error
	})
	if err != nil {
		return fmt.Errorf("persist: forward %d poll report(s): %w", len(rows), err)
	}
	return nil
}

// ForwardedReports returns up to limit forwarded reports of the given
// shards, oldest first.
func (s *Store) ForwardedReports(ctx context.Context, shards []int, limit int) ([]ForwardedReport, error) {
	if len(shards) == 0 {
		return nil, nil
	}
	if limit <= 0 {
		limit = 500
	}
	var rows []reportRow
	err := retry(ctx, func() error {
		rows = rows[:0]
		return s.prov.writer.WithContext(ctx).Where("shard IN ?", shards).Order("id").Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: forwarded reports: %w", err)
	}
	out := make([]ForwardedReport, len(rows))
	for i, r := range rows {
		out[i] = ForwardedReport{ID: r.ID, Shard: int(r.Shard), Generation: r.Generation, Body: []byte(r.Body), CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}

// DeleteForwardedReports deletes forwarded reports by id (applied).
func (s *Store) DeleteForwardedReports(ctx context.Context, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Where("id IN ?", ids).Delete(&reportRow{}).Error
	})
	if err != nil {
		return fmt.Errorf("persist: delete %d forwarded report(s): %w", len(ids), err)
	}
	return nil
}

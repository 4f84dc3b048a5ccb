package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Limits of the membership tables (bytes).
const (
	MaxInstanceIDLen = 64  // Instance.ID
	maxHostLen       = 255 // Instance.Host
	maxRolesLen      = 255 // Instance.Roles, joined by commas
	maxVersionLen    = 255 // Instance.Version
	maxProbeErrorLen = 2000
)

// Instance is one worker process as its heartbeats describe it (table
// worker_instances, one row per process start, keyed by ID).
type Instance struct {
	// ID identifies the process start: random, new at every start.
	ID      string
	Host    string
	PID     int
	Roles   []string
	Version string
	// StartedAt is when the process started; BeatAt its last beat, on its
	// own clock; Interval how often it beats.
	StartedAt time.Time
	BeatAt    time.Time
	Interval  time.Duration
	// StoppedAt is when it shut down cleanly; zero while it runs (or after
	// it died).
	StoppedAt time.Time
	// Dependencies are its last checks of what it depends on.
	Dependencies []Dependency
}

// Dependency is one check of a dependency's reachability (the message
// broker, a database, the key manager). Error never holds a password.
type Dependency struct {
	Name      string    `json:"name"`
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
}

// Probe is one pinger's last probe of one account's cloud endpoint (table
// worker_probes, keyed by pinger instance and account: pingers never write
// each other's rows).
type Probe struct {
	Instance  string
	Account   string
	CheckedAt time.Time
	Latency   time.Duration
	// OK is true when the probe succeeded; AuthOK is false when the cloud
	// refused the account's credential (cloud.ErrAuthentication).
	OK     bool
	AuthOK bool
	Error  string
}

type instanceRow struct {
	ID         string     `gorm:"column:instance_id;primaryKey"`
	Host       string     `gorm:"column:host"`
	PID        int64      `gorm:"column:pid"`
	Roles      string     `gorm:"column:roles"`
	Version    string     `gorm:"column:version"`
	StartedAt  time.Time  `gorm:"column:started_at"`
	BeatAt     time.Time  `gorm:"column:beat_at"`
	IntervalMS int64      `gorm:"column:interval_ms"`
	StoppedAt  *time.Time `gorm:"column:stopped_at"`
	Deps       string     `gorm:"column:dependencies"`
}

func (instanceRow) TableName() string { return tblInstances }

type probeRow struct {
	Instance  string    `gorm:"column:instance_id;primaryKey"`
	Account   string    `gorm:"column:account;primaryKey"`
	CheckedAt time.Time `gorm:"column:checked_at"`
	LatencyUS int64     `gorm:"column:latency_us"`
	OK        bool      `gorm:"column:ok"`
	AuthOK    bool      `gorm:"column:auth_ok"`
	Error     string    `gorm:"column:error"`
}

func (probeRow) TableName() string { return tblProbes }

var (
	instancesDDL = tableDef{
		name: tblInstances,
		columns: []string{
			fmt.Sprintf("instance_id $BYTES(%d) NOT NULL", MaxInstanceIDLen),
			fmt.Sprintf("host VARCHAR(%d) NOT NULL", maxHostLen),
			"pid BIGINT NOT NULL",
			fmt.Sprintf("roles VARCHAR(%d) NOT NULL", maxRolesLen),
			fmt.Sprintf("version VARCHAR(%d) NOT NULL", maxVersionLen),
			"started_at $TIME NOT NULL",
			"beat_at $TIME NOT NULL",
			"interval_ms BIGINT NOT NULL",
			"stopped_at $TIME NULL",
			"dependencies $TEXT NOT NULL",
		},
		primaryKey: "instance_id",
		indexes:    []string{"beat_at"},
	}
	probesDDL = tableDef{
		name: tblProbes,
		columns: []string{
			fmt.Sprintf("instance_id $BYTES(%d) NOT NULL", MaxInstanceIDLen),
			fmt.Sprintf("account $BYTES(%d) NOT NULL", maxAccountLen),
			"checked_at $TIME NOT NULL",
			"latency_us BIGINT NOT NULL",
			"ok BOOLEAN NOT NULL",
			"auth_ok BOOLEAN NOT NULL",
			"error $TEXT NOT NULL",
		},
		primaryKey: "instance_id, account",
		indexes:    []string{"account", "checked_at"},
	}
)

// PutInstance creates or replaces the row of an instance (its heartbeat).
func (s *Store) PutInstance(ctx context.Context, in Instance) error {
	switch {
	case in.ID == "" || len(in.ID) > MaxInstanceIDLen:
		return invalidf("persist: put instance: id %q must be 1-%d bytes", in.ID, MaxInstanceIDLen)
	case in.Interval <= 0:
		return invalidf("persist: put instance %q: interval %v must be positive", in.ID, in.Interval)
	}
	deps := in.Dependencies
	if deps == nil {
		deps = []Dependency{}
	}
	for i := range deps {
		deps[i].CheckedAt = dbTime(deps[i].CheckedAt)
	}
	b, err := json.Marshal(deps)
	if err != nil {
		return fmt.Errorf("persist: put instance %q: %w", in.ID, err)
	}
	row := instanceRow{ID: in.ID, Host: cut(in.Host, maxHostLen), PID: int64(in.PID),
		Roles: cut(strings.Join(in.Roles, ","), maxRolesLen), Version: cut(in.Version, maxVersionLen),
		StartedAt: dbTime(in.StartedAt), BeatAt: dbTime(in.BeatAt), IntervalMS: in.Interval.Milliseconds(), Deps: string(b)}
	if !in.StoppedAt.IsZero() {
		t := dbTime(in.StoppedAt)
		row.StoppedAt = &t
	}
	err = retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{
			Columns: []clause.Column{{Name: "instance_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"host", "pid", "roles", "version", "started_at", "beat_at",
				"interval_ms", "stopped_at", "dependencies"}),
		}).Create(&row).Error
	})
	if err != nil {
		return fmt.Errorf("persist: put instance %q: %w", in.ID, err)
	}
	return nil
}

// StopInstance marks an instance stopped at the given time (a clean
// shutdown). An instance without a row has nothing to mark.
func (s *Store) StopInstance(ctx context.Context, id string, at time.Time) error {
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Model(&instanceRow{}).Where("instance_id = ?", id).
			Update("stopped_at", dbTime(at)).Error
	})
	if err != nil {
		return fmt.Errorf("persist: stop instance %q: %w", id, err)
	}
	return nil
}

// Instances returns every instance's row, in ID order.
func (s *Store) Instances(ctx context.Context) ([]Instance, error) {
	var rows []instanceRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Order("instance_id").Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: instances: %w", err)
	}
	out := make([]Instance, 0, len(rows))
	for _, r := range rows {
		in := Instance{ID: r.ID, Host: r.Host, PID: int(r.PID), Version: r.Version,
			StartedAt: r.StartedAt.UTC(), BeatAt: r.BeatAt.UTC(), Interval: time.Duration(r.IntervalMS) * time.Millisecond}
		if r.Roles != "" {
			in.Roles = strings.Split(r.Roles, ",")
		}
		if r.StoppedAt != nil {
			in.StoppedAt = r.StoppedAt.UTC()
		}
		if err := json.Unmarshal([]byte(r.Deps), &in.Dependencies); err != nil {
			return nil, fmt.Errorf("persist: instance %q: dependencies: %w", r.ID, err)
		}
		for i := range in.Dependencies {
			in.Dependencies[i].CheckedAt = in.Dependencies[i].CheckedAt.UTC()
		}
		out = append(out, in)
	}
	return out, nil
}

// PurgeInstances deletes the rows of instances whose last beat is older
// than beatBefore, with their probes, and the probes checked before it
// (of accounts no longer probed), and returns how many instances it
// deleted.
func (s *Store) PurgeInstances(ctx context.Context, beatBefore time.Time) (int, error) {
	before := dbTime(beatBefore)
	var n int64
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec("DELETE FROM "+tblProbes+" WHERE checked_at < ? OR instance_id IN (SELECT instance_id FROM "+
				tblInstances+" WHERE beat_at < ?)", before, before).Error; err != nil {
				return fmt.Errorf("purge %s: %w", tblProbes, err)
			}
			res := tx.Exec("DELETE FROM "+tblInstances+" WHERE beat_at < ?", before)
			n = res.RowsAffected
			return res.Error
		})
	})
	if err != nil {
		return 0, fmt.Errorf("persist: purge instances: %w", err)
	}
	return int(n), nil
}

// PutProbes creates or replaces probe rows, each keyed by its Instance and
// Account.
func (s *Store) PutProbes(ctx context.Context, ps ...Probe) error {
	if len(ps) == 0 {
		return nil
	}
	rows := make([]probeRow, 0, len(ps))
	for _, p := range ps {
		if p.Instance == "" || len(p.Instance) > MaxInstanceIDLen || p.Account == "" || len(p.Account) > maxAccountLen {
			return invalidf("persist: put probe %q/%q: instance must be 1-%d bytes, account 1-%d", p.Instance, p.Account,
				MaxInstanceIDLen, maxAccountLen)
		}
		rows = append(rows, probeRow{Instance: p.Instance, Account: p.Account, CheckedAt: dbTime(p.CheckedAt),
			LatencyUS: p.Latency.Microseconds(), OK: p.OK, AuthOK: p.AuthOK, Error: cut(p.Error, maxProbeErrorLen)})
	}
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "instance_id"}, {Name: "account"}},
			DoUpdates: clause.AssignmentColumns([]string{"checked_at", "latency_us", "ok", "auth_ok", "error"}),
		}).CreateInBatches(&rows, 200).Error
	})
	if err != nil {
		return fmt.Errorf("persist: put %d probe(s): %w", len(rows), err)
	}
	return nil
}

// Probes returns the probes of one account by every pinger, or of every
// account when account is "", ordered by account then pinger instance.
func (s *Store) Probes(ctx context.Context, account string) ([]Probe, error) {
	var rows []probeRow
	err := retry(ctx, func() error {
		q := s.prov.reader.WithContext(ctx).Order("account, instance_id")
		if account != "" {
			q = q.Where("account = ?", account)
		}
		return q.Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: probes: %w", err)
	}
	out := make([]Probe, 0, len(rows))
	for _, r := range rows {
		out = append(out, Probe{Instance: r.Instance, Account: r.Account, CheckedAt: r.CheckedAt.UTC(),
			Latency: time.Duration(r.LatencyUS) * time.Microsecond, OK: r.OK, AuthOK: r.AuthOK, Error: r.Error})
	}
	return out, nil
}

// Ping checks that the provisioning and the analytics database answer now
// (one round trip each, no retries). The errors name the database, never
// its password; with one database for both, both errors are the same.
func (s *Store) Ping(ctx context.Context) (provisioning, analytics error) {
	provisioning = s.prov.ping(ctx)
	if s.ana == s.prov {
		return provisioning, provisioning
	}
	return provisioning, s.ana.ping(ctx)
}

func (d *database) ping(ctx context.Context) error {
	db, err := d.writer.DB()
	if err != nil {
		return fmt.Errorf("persist: ping %s: %w", d.desc, err)
	}
	if err := db.PingContext(ctx); err != nil {
		secret := ""
		if d.mysql != nil {
			secret = d.mysql.Passwd
		}
		return fmt.Errorf("persist: ping %s: %w", d.desc, classify(redact(err, secret)))
	}
	return nil
}

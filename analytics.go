package worker

import (
	"context"
	"time"

	"github.com/stratusworks/worker/state"
)

// Defaults of [AnalyticsConfig].
const (
	DefaultSampleRetention = 7 * 24 * time.Hour   // raw usage samples
	DefaultRollupRetention = 400 * 24 * time.Hour // hourly rollups: a year and a month
)

// AnalyticsConfig sets how long the analytics database keeps the servers'
// usage samples (the "server-analytics" kind, cloud.ServerAnalyticsPoller).
// Raw samples are pruned after Retention; their hourly rollups (min, avg,
// max per server and hour) after RollupRetention, so a year of samples
// stays bounded: 24 × 400 rows per server for the rollups, plus a week of
// raw samples. Both are purged by publisher processes every 10 minutes.
type AnalyticsConfig struct {
	// Retention is how long raw samples are kept, at least an hour (an
	// hour's raw samples are pruned together). Default 7 days.
	Retention time.Duration
	// RollupRetention is how long hourly rollups are kept, at least
	// Retention. Default 400 days.
	RollupRetention time.Duration
}

func (c *AnalyticsConfig) setDefaults() {
	if c.Retention == 0 {
		c.Retention = DefaultSampleRetention
	}
	if c.RollupRetention == 0 {
		c.RollupRetention = DefaultRollupRetention
	}
}

// Validate checks the (defaulted) settings and names the bad field.
func (c AnalyticsConfig) Validate() error {
	c.setDefaults()
	switch {
	case c.Retention < time.Hour:
		return configError("Analytics.Retention", "is %v, must be at least 1h", c.Retention)
	case c.RollupRetention < c.Retention:
		return configError("Analytics.RollupRetention", "is %v, must be at least Analytics.Retention (%v)", c.RollupRetention, c.Retention)
	}
	return nil
}

// sampleStore keeps the servers' usage samples in the analytics database:
// the poll runner appends them, the purgers prune them.
type sampleStore interface {
	AppendSamples(ctx context.Context, account string, samples []state.Sample) (int, error)
	PurgeSamples(ctx context.Context, olderThan time.Time) (int, error)
	PurgeRollups(ctx context.Context, olderThan time.Time) (int, error)
}

// samplePurgeEvery is how often publishers prune samples and rollups.
const samplePurgeEvery = 10 * time.Minute

// sampleDuties are the purges of raw samples and rollups.
func (w *Worker) sampleDuties() []duty {
	a := w.cfg.Analytics
	return []duty{
		{name: "purging old usage samples", every: samplePurgeEvery, timeout: 5 * time.Minute,
			run: purger{purge: w.store.PurgeSamples, now: w.now, keep: a.Retention}.run},
		{name: "purging old hourly usage rollups", every: samplePurgeEvery, timeout: 5 * time.Minute,
			run: purger{purge: w.store.PurgeRollups, now: w.now, keep: a.RollupRetention}.run},
	}
}

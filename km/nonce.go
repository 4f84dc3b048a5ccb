package km

import (
	"context"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// nonceRow is one accepted payload-layer nonce (table [NonceTableName]).
type nonceRow struct {
	Nonce     []byte `gorm:"primaryKey"`
	ExpiresAt time.Time
}

func (nonceRow) TableName() string { return NonceTableName }

// nonceGuard makes payload-layer nonces single-use across every server
// sharing the database, and across restarts: a nonce is accepted only if
// inserting it succeeds under the table's primary key. Rows are kept until
// their request's timestamp can no longer pass the skew check on any
// replica: they are purged MaxSkew after that, so replicas whose clocks
// differ by up to MaxSkew still share them.
type nonceGuard struct {
	db   *gorm.DB
	skew time.Duration

	mu        sync.Mutex
	lastPurge time.Time
}

// use records nonce (valid until expires) and reports whether it was new.
func (g *nonceGuard) use(ctx context.Context, nonce []byte, expires, now time.Time) (bool, error) {
	g.purge(ctx, now)
	res := g.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&nonceRow{Nonce: nonce, ExpiresAt: expires.UTC().Truncate(time.Microsecond)})
	if res.Error != nil {
		return false, res.Error
	}
	return res.RowsAffected == 1, nil
}

// purge deletes expired rows, at most once per quarter of the skew (and at
// least 10s apart).
func (g *nonceGuard) purge(ctx context.Context, now time.Time) {
	g.mu.Lock()
	every := max(g.skew/4, 10*time.Second)
	if now.Sub(g.lastPurge) < every {
		g.mu.Unlock()
		return
	}
	g.lastPurge = now
	g.mu.Unlock()
	// Best effort: a failed purge only leaves rows for the next one.
	g.db.WithContext(ctx).Where("expires_at < ?", now.Add(-g.skew).UTC()).Delete(&nonceRow{})
}

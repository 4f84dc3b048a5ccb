package persist

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm/clause"

	"github.com/stratusworks/worker/cloud/guest"
)

// GuestOffsets returns a durable [guest.Offsets] kept in the provisioning
// database (table worker_guest_offsets), for the guest log collector. Server
// ids are limited to 255 bytes and paths to 320, and neither may end with a
// space (MySQL would not tell "a" from "a "); the account, to 128 bytes.
func (s *Store) GuestOffsets() guest.Offsets { return guestOffsets{s: s} }

type guestOffsets struct{ s *Store }

type guestOffsetRow struct {
	Account   string    `gorm:"column:account;primaryKey"`
	ServerID  string    `gorm:"column:server_id;primaryKey"`
	Path      string    `gorm:"column:path;primaryKey"`
	Identity  string    `gorm:"column:identity"`
	Bytes     int64     `gorm:"column:bytes"`
	Size      int64     `gorm:"column:size"`
	TailHash  string    `gorm:"column:tail_hash"`
	LocalSize int64     `gorm:"column:local_size"`
	UpdatedAt time.Time `gorm:"column:updated_at;autoUpdateTime:false"`
}

func (guestOffsetRow) TableName() string { return tblOffsets }

func checkGuestFile(op string, k guest.GuestFile) error {
	switch {
	case len(k.Account) > maxAccountLen:
		return invalidf("persist: %s %s/%s/%s: account is longer than %d bytes", op, k.Account, k.ServerID, k.Path, maxAccountLen)
	case len(k.ServerID) > maxResourceLen:
		return invalidf("persist: %s %s/%s/%s: server id is longer than %d bytes", op, k.Account, k.ServerID, k.Path, maxResourceLen)
	case len(k.Path) > maxPathLen:
		return invalidf("persist: %s %s/%s/%s: path is longer than %d bytes", op, k.Account, k.ServerID, k.Path, maxPathLen)
	case strings.HasSuffix(k.Account, " "), strings.HasSuffix(k.ServerID, " "), strings.HasSuffix(k.Path, " "):
		return invalidf("persist: %s %q/%q/%q: account, server id and path must not end with a space", op, k.Account, k.ServerID, k.Path)
	}
	return nil
}

// Get implements [guest.Offsets].
func (g guestOffsets) Get(ctx context.Context, k guest.GuestFile) (guest.Offset, error) {
	if err := checkGuestFile("guest offset", k); err != nil {
		return guest.Offset{}, err
	}
	var rows []guestOffsetRow
	err := retry(ctx, func() error {
		return g.s.prov.reader.WithContext(ctx).Where("account = ? AND server_id = ? AND path = ?", k.Account, k.ServerID, k.Path).
			Limit(1).Find(&rows).Error
	})
	if err != nil {
		return guest.Offset{}, fmt.Errorf("persist: guest offset %s/%s/%s: %w", k.Account, k.ServerID, k.Path, err)
	}
	if len(rows) == 0 {
		return guest.Offset{}, nil
	}
	r := rows[0]
	return guest.Offset{Identity: r.Identity, Bytes: r.Bytes, Size: r.Size, TailHash: r.TailHash, LocalSize: r.LocalSize}, nil
}

// Put implements [guest.Offsets].
func (g guestOffsets) Put(ctx context.Context, k guest.GuestFile, o guest.Offset) error {
	if err := checkGuestFile("put guest offset", k); err != nil {
		return err
	}
	if len(o.Identity) > maxIdentityLen || len(o.TailHash) > maxTailHashLen {
		return invalidf("persist: put guest offset %s/%s/%s: identity or tail hash is too long", k.Account, k.ServerID, k.Path)
	}
	row := guestOffsetRow{
		Account: k.Account, ServerID: k.ServerID, Path: k.Path, Identity: o.Identity, Bytes: o.Bytes, Size: o.Size,
		TailHash: o.TailHash, LocalSize: o.LocalSize, UpdatedAt: dbTime(g.s.now()),
	}
	err := retry(ctx, func() error {
		return g.s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "account"}, {Name: "server_id"}, {Name: "path"}},
			DoUpdates: clause.AssignmentColumns([]string{"identity", "bytes", "size", "tail_hash", "local_size", "updated_at"}),
		}).Create(&row).Error
	})
	if err != nil {
		return fmt.Errorf("persist: put guest offset %s/%s/%s: %w", k.Account, k.ServerID, k.Path, err)
	}
	return nil
}

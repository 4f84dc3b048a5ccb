package persist

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm/clause"
)

// GuestFile identifies one remote log file of one guest, as the guest log
// collector (package cloud/guest) names it.
type GuestFile struct {
	Account  string
	ServerID string
	Path     string // the remote path
}

// GuestOffset is how far a guest log file has been copied, as the guest log
// collector records it (see guest.Offset for the meaning of each field).
// The zero GuestOffset means nothing has been copied yet.
type GuestOffset struct {
	Identity  string
	Bytes     int64
	Size      int64
	TailHash  string
	LocalSize int64
}

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

func checkGuestFile(op string, k GuestFile) error {
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

// GuestOffset returns the offset stored for a guest log file (table
// worker_guest_offsets), or the zero GuestOffset and a nil error if there is
// none. Server ids are limited to 255 bytes and paths to 320, and neither may
// end with a space (MySQL would not tell "a" from "a "); the account, to 128
// bytes.
//
// It is a step of the worker's protocol, taken by the guest-log collector: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) GuestOffset(ctx context.Context, k GuestFile) (GuestOffset, error) {
	if err := checkGuestFile("guest offset", k); err != nil {
		return GuestOffset{}, err
	}
	var rows []guestOffsetRow
	err := retry(ctx, func() error {
		return s.prov.reader.WithContext(ctx).Where("account = ? AND server_id = ? AND path = ?", k.Account, k.ServerID, k.Path).
			Limit(1).Find(&rows).Error
	})
	if err != nil {
		return GuestOffset{}, fmt.Errorf("persist: guest offset %s/%s/%s: %w", k.Account, k.ServerID, k.Path, err)
	}
	if len(rows) == 0 {
		return GuestOffset{}, nil
	}
	r := rows[0]
	return GuestOffset{Identity: r.Identity, Bytes: r.Bytes, Size: r.Size, TailHash: r.TailHash, LocalSize: r.LocalSize}, nil
}

// PutGuestOffset stores the offset of a guest log file, replacing any
// previous one.
//
// It is a step of the worker's protocol, taken by the guest-log collector: a host that runs
// a worker does not call it (see the package documentation).
func (s *Store) PutGuestOffset(ctx context.Context, k GuestFile, o GuestOffset) error {
	if err := checkGuestFile("put guest offset", k); err != nil {
		return err
	}
	if len(o.Identity) > maxIdentityLen || len(o.TailHash) > maxTailHashLen {
		return invalidf("persist: put guest offset %s/%s/%s: identity or tail hash is too long", k.Account, k.ServerID, k.Path)
	}
	row := guestOffsetRow{
		Account: k.Account, ServerID: k.ServerID, Path: k.Path, Identity: o.Identity, Bytes: o.Bytes, Size: o.Size,
		TailHash: o.TailHash, LocalSize: o.LocalSize, UpdatedAt: dbTime(s.now()),
	}
	err := retry(ctx, func() error {
		return s.prov.writer.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "account"}, {Name: "server_id"}, {Name: "path"}},
			DoUpdates: clause.AssignmentColumns([]string{"identity", "bytes", "size", "tail_hash", "local_size", "updated_at"}),
		}).Create(&row).Error
	})
	if err != nil {
		return fmt.Errorf("persist: put guest offset %s/%s/%s: %w", k.Account, k.ServerID, k.Path, err)
	}
	return nil
}

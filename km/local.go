package km

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// TableName is the table [LocalStore] keeps credentials in.
const TableName = "worker_km_credentials"

// credentialRow is one sealed credential. Provider, kind, field names and
// metadata are copies kept in the clear for listing; Get trusts only the
// authenticated copies inside the envelope. KeyID/KeyVersion mirror the
// envelope header so RewrapAll can find rows under old keys; Revision changes
// on every write and guards RewrapAll's updates.
type credentialRow struct {
	ID         uint64    `gorm:"primaryKey;autoIncrement"`
	Customer   string    `gorm:"size:191;not null;uniqueIndex:ux_worker_km_credentials_key,priority:1"`
	Account    string    `gorm:"size:191;not null;uniqueIndex:ux_worker_km_credentials_key,priority:2"`
	Name       string    `gorm:"size:191;not null;uniqueIndex:ux_worker_km_credentials_key,priority:3"`
	Provider   string    `gorm:"size:191;not null;default:''"`
	Kind       string    `gorm:"size:16;not null"`
	FieldNames string    `gorm:"type:text;not null"` // JSON array
	Meta       string    `gorm:"type:text;not null"` // JSON object
	Envelope   []byte    `gorm:"not null"`
	KeyID      string    `gorm:"size:64;not null;index:ix_worker_km_credentials_keyver,priority:1"`
	KeyVersion int64     `gorm:"not null;index:ix_worker_km_credentials_keyver,priority:2"`
	Revision   int64     `gorm:"not null;default:1"`
	CreatedAt  time.Time `gorm:"not null"`
	UpdatedAt  time.Time `gorm:"not null"`
}

func (credentialRow) TableName() string { return TableName }

// Migrate creates or updates the credential table with GORM's migrator.
// [NewLocalStore] calls it; it is exported so the schema can instead be
// applied from the application's versioned migrations (the table and
// column definitions are those of this package's credentialRow model).
func Migrate(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).AutoMigrate(&credentialRow{}); err != nil {
		return fmt.Errorf("km: migrate %s: %w", TableName, err)
	}
	return nil
}

// DefaultRewrapBatch is how many rows [LocalStore.RewrapAll] reads at once.
const DefaultRewrapBatch = 100

// LocalStore is a [Store] of encrypted credentials in a SQL database (table
// [TableName]), sealed with a [Keyring]. Any GORM dialect works; it is
// tested on SQLite and written for MySQL/MariaDB too. Safe for concurrent use.
type LocalStore struct {
	db    *gorm.DB
	kr    *Keyring
	now   func() time.Time
	batch int
	// beforeRewrapUpdate, if set, runs between RewrapAll's read and update
	// of a row (tests use it to race a Put).
	beforeRewrapUpdate func()
}

// NewLocalStore migrates the credential table (see [Migrate]) and returns a
// store sealing with kr. The store does not own db or kr: close them
// yourself.
func NewLocalStore(db *gorm.DB, kr *Keyring) (*LocalStore, error) {
	if db == nil {
		return nil, invalidf("local store: db is nil")
	}
	if kr == nil {
		return nil, invalidf("local store: keyring is nil")
	}
	if err := Migrate(context.Background(), db); err != nil {
		return nil, err
	}
	return &LocalStore{db: db, kr: kr, now: time.Now, batch: DefaultRewrapBatch}, nil
}

// Put implements [Store]: an upsert that keeps CreatedAt.
func (s *LocalStore) Put(ctx context.Context, c Credential) error {
	if err := c.Validate(); err != nil {
		return err
	}
	env, err := sealCredential(s.kr, c)
	if err != nil {
		return err
	}
	hdr, _ := ParseEnvelope(env)
	names, _ := json.Marshal(c.FieldNames())
	meta, _ := json.Marshal(c.Meta)
	if c.Meta == nil {
		meta = []byte("{}")
	}
	now := s.now().UTC()
	row := credentialRow{
		Customer: c.Customer, Account: c.Account, Name: c.Name,
		Provider: c.Provider, Kind: string(c.Kind), FieldNames: string(names), Meta: string(meta),
		Envelope: env, KeyID: hdr.KeyID, KeyVersion: int64(hdr.KeyVersion), Revision: 1,
		CreatedAt: now, UpdatedAt: now,
	}
	set := clause.AssignmentColumns([]string{"provider", "kind", "field_names", "meta", "envelope", "key_id", "key_version", "updated_at"})
	set = append(set, clause.Assignment{Column: clause.Column{Name: "revision"}, Value: gorm.Expr("revision + 1")})
	err = s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "customer"}, {Name: "account"}, {Name: "name"}},
		DoUpdates: set,
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("km: put credential %s/%s/%s: %w", c.Customer, c.Account, c.Name, err)
	}
	return nil
}

// Get implements [Store].
func (s *LocalStore) Get(ctx context.Context, customer, account, name string) (Credential, error) {
	var row credentialRow
	err := s.db.WithContext(ctx).
		Where("customer = ? AND account = ? AND name = ?", customer, account, name).
		Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Credential{}, errorf(ErrNotFound, "credential %s/%s/%s not found", customer, account, name)
	}
	if err != nil {
		return Credential{}, fmt.Errorf("km: get credential %s/%s/%s: %w", customer, account, name, err)
	}
	c, err := openCredential(s.kr, Binding{customer, account, name}, row.Envelope)
	if err != nil {
		return Credential{}, err
	}
	c.CreatedAt, c.UpdatedAt = row.CreatedAt.UTC(), row.UpdatedAt.UTC()
	return c, nil
}

// Delete implements [Store].
func (s *LocalStore) Delete(ctx context.Context, customer, account, name string) error {
	res := s.db.WithContext(ctx).
		Where("customer = ? AND account = ? AND name = ?", customer, account, name).
		Delete(&credentialRow{})
	if res.Error != nil {
		return fmt.Errorf("km: delete credential %s/%s/%s: %w", customer, account, name, res.Error)
	}
	if res.RowsAffected == 0 {
		return errorf(ErrNotFound, "credential %s/%s/%s not found", customer, account, name)
	}
	return nil
}

// List implements [Store]. It reads no envelopes.
func (s *LocalStore) List(ctx context.Context, customer string) ([]CredentialInfo, error) {
	var rows []credentialRow
	err := s.db.WithContext(ctx).
		Select("customer", "account", "name", "provider", "kind", "field_names", "meta", "key_id", "key_version", "created_at", "updated_at").
		Where("customer = ?", customer).Order("account, name").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("km: list credentials of %s: %w", customer, err)
	}
	out := make([]CredentialInfo, 0, len(rows))
	for _, r := range rows {
		info := CredentialInfo{
			Customer: r.Customer, Account: r.Account, Provider: r.Provider, Kind: Kind(r.Kind), Name: r.Name,
			KeyID: r.KeyID, KeyVersion: int(r.KeyVersion),
			CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		}
		if err := json.Unmarshal([]byte(r.FieldNames), &info.FieldNames); err != nil {
			return nil, fmt.Errorf("km: list credentials of %s: field names of %s/%s: %w", customer, r.Account, r.Name, err)
		}
		if err := json.Unmarshal([]byte(r.Meta), &info.Meta); err != nil {
			return nil, fmt.Errorf("km: list credentials of %s: metadata of %s/%s: %w", customer, r.Account, r.Name, err)
		}
		if len(info.Meta) == 0 {
			info.Meta = nil
		}
		out = append(out, info)
	}
	sortInfos(out) // byte order, whatever the database collation
	return out, nil
}

// RewrapResult reports what [LocalStore.RewrapAll] did.
type RewrapResult struct {
	Rewrapped int // rows moved to the current master key
	Current   int // rows already under the current key when read (written concurrently)
	Conflicts int // rows changed by another writer meanwhile: left alone; run RewrapAll again
	Failed    int // rows that could not be rewrapped; their errors are joined in the returned error
}

// RewrapAll moves every row whose data key is wrapped by an older master key
// to the keyring's current key, with [Keyring.Rewrap]: no payload is
// decrypted. Rows are read in batches (by primary key) and each is updated
// only if its revision is unchanged, so a concurrent Put is never
// overwritten. A row that fails (for example [ErrUnknownKey]) is counted
// and skipped; all such errors are joined into the returned error. Once
// RewrapAll returns with no failures and no conflicts, older master keys can
// be removed from the key file.
func (s *LocalStore) RewrapAll(ctx context.Context) (RewrapResult, error) {
	var res RewrapResult
	var errs []error
	cur := s.kr.Current()
	var lastID uint64
	for {
		var rows []credentialRow
		err := s.db.WithContext(ctx).
			Select("id", "customer", "account", "name", "envelope", "key_id", "key_version", "revision").
			Where("id > ? AND NOT (key_id = ? AND key_version = ?)", lastID, cur.ID, cur.Version).
			Order("id").Limit(s.batch).Find(&rows).Error
		if err != nil {
			return res, errors.Join(append(errs, fmt.Errorf("km: rewrap: read batch after id %d: %w", lastID, err))...)
		}
		for _, r := range rows {
			lastID = r.ID
			env, moved, err := s.kr.rewrap(r.Envelope)
			if err != nil {
				res.Failed++
				errs = append(errs, fmt.Errorf("km: rewrap credential %s/%s/%s: %w", r.Customer, r.Account, r.Name, err))
				continue
			}
			if !moved {
				res.Current++
				continue
			}
			hdr, _ := ParseEnvelope(env)
			if s.beforeRewrapUpdate != nil {
				s.beforeRewrapUpdate()
			}
			upd := s.db.WithContext(ctx).Model(&credentialRow{}).
				Where("id = ? AND revision = ?", r.ID, r.Revision).
				UpdateColumns(map[string]any{ // not Updates: rewrapping leaves updated_at alone
					"envelope":    env,
					"key_id":      hdr.KeyID,
					"key_version": hdr.KeyVersion,
					"revision":    r.Revision + 1,
				})
			if upd.Error != nil {
				return res, errors.Join(append(errs, fmt.Errorf("km: rewrap credential %s/%s/%s: %w", r.Customer, r.Account, r.Name, upd.Error))...)
			}
			if upd.RowsAffected == 0 {
				res.Conflicts++
				continue
			}
			res.Rewrapped++
		}
		if len(rows) < s.batch {
			return res, errors.Join(errs...)
		}
		if err := ctx.Err(); err != nil {
			return res, errors.Join(append(errs, err)...)
		}
	}
}

package km

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// secretRow is one de-identified credential (table [TableName]). Nothing in
// it names a customer, account or credential: CredentialRef and CustomerRef
// are keyed hashes (see refs.go) under the master key KeyID/KeyVersion,
// Info is an envelope holding the names, provider, kind, field names and
// metadata (for listing), and Envelope the whole credential, both sealed
// under that master key. Revision changes on every write and guards every
// update and delete.
type secretRow struct {
	ID            uint64 `gorm:"primaryKey"`
	CredentialRef []byte
	CustomerRef   []byte
	KeyID         string
	KeyVersion    int64
	Info          []byte
	Envelope      []byte
	Revision      int64
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

func (secretRow) TableName() string { return TableName }

// legacyRow is a row of [LegacyTableName].
type legacyRow struct {
	ID                      uint64
	Customer, Account, Name string
	Envelope                []byte
	CreatedAt, UpdatedAt    time.Time
}

func (legacyRow) TableName() string { return LegacyTableName }

// infoLabel is the additional data of info envelopes. It binds no names:
// they are inside, and every read checks them against the row's reference,
// so an info envelope moved to another row is detected.
const infoLabel = "stratusworks/km info v1\x00"

// DefaultRewrapBatch is how many rows [LocalStore.RewrapAll] and
// [LocalStore.MigrateLegacy] read at once.
const DefaultRewrapBatch = 100

// maxWriteAttempts bounds how often Put retries when concurrent writers keep
// changing the row between its read and its conditional update.
const maxWriteAttempts = 8

// LocalStore is a [ConditionalStore] of encrypted, de-identified credentials
// in a SQL database (table [TableName]), sealed with a [Keyring]. SQLite and
// MySQL/MariaDB are supported. A dump of the table shows no customer,
// account or credential name (see "Storage" in the package documentation).
// Safe for concurrent use, also by several processes sharing the database.
type LocalStore struct {
	db    *gorm.DB
	kr    *Keyring
	now   func() time.Time
	batch int
	// legacyLeft counts rows NewLocalStore could not move out of the legacy
	// table; while it is positive a miss looks there, to say why.
	legacyLeft atomic.Int64
	// beforeRewrapUpdate, if set, runs between RewrapAll's read and update
	// of a row (tests use it to race a Put).
	beforeRewrapUpdate func()
}

// NewLocalStore checks the credential table ([CheckSchema]; it never creates
// or alters tables: persist's migrations do), moves any rows left in the
// legacy table to it ([LocalStore.MigrateLegacy]) and returns a store sealing
// with kr. A legacy row that cannot be moved (its master key is not in kr,
// or it fails authentication) stays where it is, and a Get of it fails with
// the reason. The store does not own db or kr: close them yourself.
func NewLocalStore(db *gorm.DB, kr *Keyring) (*LocalStore, error) {
	if db == nil {
		return nil, invalidf("local store: db is nil")
	}
	if kr == nil {
		return nil, invalidf("local store: keyring is nil")
	}
	ctx := context.Background()
	if err := CheckSchema(ctx, db); err != nil {
		return nil, err
	}
	s := &LocalStore{db: db, kr: kr, now: time.Now, batch: DefaultRewrapBatch}
	res, _, fatal := s.migrateLegacy(ctx)
	if fatal != nil {
		return nil, fatal
	}
	s.legacyLeft.Store(int64(res.Failed))
	return s, nil
}

func (s *LocalStore) stamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// sealRow seals c's info and envelope under the current master key and
// returns them with c's references under that key.
func (s *LocalStore) sealRow(c Credential) (info, env []byte, refs keyedRefs, err error) {
	c.CreatedAt, c.UpdatedAt, c.Revision = time.Time{}, time.Time{}, 0
	pt := marshalCredential(c)
	defer clear(pt)
	ipt := marshalCredential(infoOf(c))
	out, key, err := s.kr.sealAll(sealItem{aad: []byte(infoLabel), plaintext: ipt}, sealItem{aad: payloadAAD(c.Binding()), plaintext: pt})
	if err != nil {
		return nil, nil, keyedRefs{}, err
	}
	refs, err = s.kr.refsUnder(key, c.Binding())
	return out[0], out[1], refs, err
}

// infoOf is what an info envelope holds: the credential without secret
// values (field names only) and without timestamps.
func infoOf(c Credential) Credential {
	out := Credential{Customer: c.Customer, Account: c.Account, Provider: c.Provider, Kind: c.Kind, Name: c.Name, Meta: c.Meta}
	out.Fields = make(map[string]Secret, len(c.Fields))
	for name := range c.Fields {
		out.Fields[name] = Secret{}
	}
	return out
}

// openInfo opens a row's info envelope and checks it against the row's
// credential reference.
func (s *LocalStore) openInfo(r secretRow) (Credential, error) {
	pt, err := s.kr.openAAD([]byte(infoLabel), r.Info)
	if errors.Is(err, errPayloadAuth) {
		return Credential{}, errorf(ErrTampered, "credential row %d: its info envelope failed authentication", r.ID)
	}
	if err != nil {
		return Credential{}, fmt.Errorf("km: credential row %d: %w", r.ID, err)
	}
	c, err := openedCredential(pt)
	if err != nil {
		return Credential{}, errorf(ErrTampered, "credential row %d: malformed info", r.ID)
	}
	want, err := s.kr.refsUnder(KeyRef{ID: r.KeyID, Version: int(r.KeyVersion)}, c.Binding())
	if err != nil {
		return Credential{}, fmt.Errorf("km: credential row %d: %w", r.ID, err)
	}
	if !bytes.Equal(want.cred, r.CredentialRef) || !bytes.Equal(want.customer, r.CustomerRef) {
		return Credential{}, errorf(ErrTampered, "credential row %d: its info names another credential (moved from another row)", r.ID)
	}
	return c, nil
}

func refValues(refs []keyedRefs, customer bool) []any {
	out := make([]any, len(refs))
	for i, r := range refs {
		if customer {
			out[i] = r.customer
		} else {
			out[i] = r.cred
		}
	}
	return out
}

// find returns the rows of b under any key the keyring holds (normally one;
// two while hosts with different keyrings write the same credential during a
// rotation), best first: the one under the current key, then the newest.
func (s *LocalStore) find(ctx context.Context, b Binding, columns ...string) ([]secretRow, []keyedRefs, error) {
	refs, err := s.kr.refs(b, false)
	if err != nil {
		return nil, nil, err
	}
	var rows []secretRow
	q := s.db.WithContext(ctx)
	if len(columns) > 0 {
		q = q.Select(columns)
	}
	if err := q.Where("credential_ref IN ?", refValues(refs, false)).Find(&rows).Error; err != nil {
		return nil, nil, err
	}
	cur := refs[0].key
	slices.SortFunc(rows, func(a, b secretRow) int {
		ac := a.KeyID == cur.ID && int(a.KeyVersion) == cur.Version
		bc := b.KeyID == cur.ID && int(b.KeyVersion) == cur.Version
		if ac != bc {
			if ac {
				return -1
			}
			return 1
		}
		return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), cmp.Compare(b.ID, a.ID))
	})
	return rows, refs, nil
}

// Put implements [Store]: it creates the credential or replaces it, keeping
// CreatedAt, whatever its revision.
func (s *LocalStore) Put(ctx context.Context, c Credential) error {
	_, err := s.write(ctx, c, 0, false)
	return err
}

func (s *LocalStore) putRevision(ctx context.Context, c Credential) (int64, error) {
	return s.write(ctx, c, 0, false)
}

// PutIf implements [ConditionalStore].
func (s *LocalStore) PutIf(ctx context.Context, c Credential, revision int64) (int64, error) {
	return s.write(ctx, c, revision, true)
}

func (s *LocalStore) write(ctx context.Context, c Credential, revision int64, conditional bool) (int64, error) {
	if err := c.Validate(); err != nil {
		return 0, err
	}
	if revision < 0 {
		return 0, invalidf("put credential %s/%s/%s: revision %d is negative", c.Customer, c.Account, c.Name, revision)
	}
	info, env, refs, err := s.sealRow(c)
	if err != nil {
		return 0, err
	}
	where := fmt.Sprintf("%s/%s/%s", c.Customer, c.Account, c.Name)
	fail := func(err error) (int64, error) { return 0, fmt.Errorf("km: put credential %s: %w", where, err) }
	for range maxWriteAttempts {
		now := s.stamp()
		rows, _, err := s.find(ctx, c.Binding(), "id", "revision", "key_id", "key_version", "created_at", "updated_at")
		if err != nil {
			return fail(err)
		}
		if len(rows) == 0 {
			if conditional && revision != 0 {
				return 0, errorf(ErrConflict, "put credential %s: it does not exist (expected revision %d)", where, revision)
			}
			row := secretRow{CredentialRef: refs.cred, CustomerRef: refs.customer, KeyID: refs.key.ID, KeyVersion: int64(refs.key.Version),
				Info: info, Envelope: env, Revision: 1, CreatedAt: now, UpdatedAt: now}
			res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&row)
			if res.Error != nil {
				return fail(res.Error)
			}
			if res.RowsAffected == 1 {
				return 1, nil
			}
			if conditional {
				return 0, errorf(ErrConflict, "put credential %s: created concurrently (expected it absent)", where)
			}
			continue // created concurrently: replace it
		}
		target := rows[0]
		if conditional && target.Revision != revision {
			return 0, errorf(ErrConflict, "put credential %s: it is at revision %d, not %d", where, target.Revision, revision)
		}
		if err := s.dropDuplicates(ctx, rows[1:]); err != nil {
			return fail(err)
		}
		upd := s.db.WithContext(ctx).Model(&secretRow{}).
			Where("id = ? AND revision = ?", target.ID, target.Revision).
			UpdateColumns(map[string]any{
				"credential_ref": refs.cred, "customer_ref": refs.customer,
				"key_id": refs.key.ID, "key_version": refs.key.Version,
				"info": info, "envelope": env,
				"revision": target.Revision + 1, "updated_at": now,
			})
		if upd.Error != nil {
			return fail(upd.Error)
		}
		if upd.RowsAffected == 1 {
			return target.Revision + 1, nil
		}
		if conditional {
			return 0, errorf(ErrConflict, "put credential %s: changed concurrently (expected revision %d)", where, revision)
		}
	}
	return 0, errorf(ErrConflict, "put credential %s: gave up after %d attempts: the credential kept changing concurrently", where, maxWriteAttempts)
}

// dropDuplicates deletes older rows of the same credential (under other
// master keys), each only at the revision it was read at.
func (s *LocalStore) dropDuplicates(ctx context.Context, rows []secretRow) error {
	for _, r := range rows {
		if err := s.db.WithContext(ctx).Where("id = ? AND revision = ?", r.ID, r.Revision).Delete(&secretRow{}).Error; err != nil {
			return err
		}
	}
	return nil
}

// Get implements [Store].
func (s *LocalStore) Get(ctx context.Context, customer, account, name string) (Credential, error) {
	if err := validateKey(customer, account, name); err != nil {
		return Credential{}, err
	}
	b := Binding{customer, account, name}
	var rows []secretRow
	for attempt := 0; ; attempt++ {
		var err error
		rows, _, err = s.find(ctx, b, "id", "key_id", "key_version", "envelope", "revision", "created_at", "updated_at")
		if err != nil {
			return Credential{}, fmt.Errorf("km: get credential %s/%s/%s: %w", customer, account, name, err)
		}
		if len(rows) > 0 {
			break
		}
		moved, err := s.legacyMiss(ctx, b)
		if err != nil {
			return Credential{}, err
		}
		if !moved || attempt > 0 {
			return Credential{}, s.missError(ctx, b)
		}
	}
	row := rows[0]
	c, err := openCredential(s.kr, b, row.Envelope)
	if err != nil {
		return Credential{}, err
	}
	c.CreatedAt, c.UpdatedAt, c.Revision = row.CreatedAt.UTC(), row.UpdatedAt.UTC(), row.Revision
	return c, nil
}

// Delete implements [Store].
func (s *LocalStore) Delete(ctx context.Context, customer, account, name string) error {
	if err := validateKey(customer, account, name); err != nil {
		return err
	}
	refs, err := s.kr.refs(Binding{customer, account, name}, false)
	if err != nil {
		return err
	}
	res := s.db.WithContext(ctx).Where("credential_ref IN ?", refValues(refs, false)).Delete(&secretRow{})
	if res.Error != nil {
		return fmt.Errorf("km: delete credential %s/%s/%s: %w", customer, account, name, res.Error)
	}
	if res.RowsAffected == 0 {
		return s.missError(ctx, Binding{customer, account, name})
	}
	return nil
}

// missError explains a miss. Rows are found by references keyed by the
// master key, so a keyring holding the wrong key, or lacking the key some
// rows are under, finds nothing rather than failing to open: missError
// reports [ErrWrongKey] when the table has rows under a key id and version
// the keyring holds with other bytes (its key check value differs), and
// otherwise [ErrNotFound], which also matches [ErrUnknownKey] when some rows
// are under master keys the keyring lacks (the credential may be one of
// them).
func (s *LocalStore) missError(ctx context.Context, b Binding) error {
	where := fmt.Sprintf("%s/%s/%s", b.Customer, b.Account, b.Name)
	var keys []struct {
		KeyID      string
		KeyVersion int64
	}
	if err := s.db.WithContext(ctx).Model(&secretRow{}).Distinct("key_id", "key_version").Find(&keys).Error; err != nil {
		return errorf(ErrNotFound, "credential %s not found", where)
	}
	held := map[KeyRef]bool{}
	for _, k := range s.kr.Keys() {
		held[k] = true
	}
	var unknown []string
	for _, k := range keys {
		ref := KeyRef{ID: k.KeyID, Version: int(k.KeyVersion)}
		if !held[ref] {
			unknown = append(unknown, ref.String())
			continue
		}
		var sample secretRow
		err := s.db.WithContext(ctx).Select("id", "envelope").
			Where("key_id = ? AND key_version = ?", ref.ID, ref.Version).Take(&sample).Error
		if err != nil {
			continue
		}
		if e, err := parseEnvelope(sample.Envelope); err == nil && s.kr.kcvDiffers(ref, e.kcv) {
			return errorf(ErrWrongKey, "credential %s not found: rows under master key %s were sealed with another key than the keyring's (key check value differs): the keyring was loaded from the wrong file or environment", where, ref)
		}
	}
	if len(unknown) > 0 {
		return &missUnknown{msg: fmt.Sprintf("km: credential %s not found under the keyring's master keys; some rows are under master keys the keyring does not hold (%s), and it may be one of them",
			where, strings.Join(unknown, ", "))}
	}
	return errorf(ErrNotFound, "credential %s not found", where)
}

// missUnknown is a miss that matches both ErrNotFound and ErrUnknownKey.
type missUnknown struct{ msg string }

func (e *missUnknown) Error() string { return e.msg }
func (e *missUnknown) Is(target error) bool {
	return target == ErrNotFound || target == ErrUnknownKey
}

// DeleteIf implements [ConditionalStore].
func (s *LocalStore) DeleteIf(ctx context.Context, customer, account, name string, revision int64) error {
	if err := validateKey(customer, account, name); err != nil {
		return err
	}
	where := fmt.Sprintf("%s/%s/%s", customer, account, name)
	rows, _, err := s.find(ctx, Binding{customer, account, name}, "id", "revision", "key_id", "key_version", "updated_at")
	if err != nil {
		return fmt.Errorf("km: delete credential %s: %w", where, err)
	}
	if len(rows) == 0 {
		return s.missError(ctx, Binding{customer, account, name})
	}
	if rows[0].Revision != revision {
		return errorf(ErrConflict, "delete credential %s: it is at revision %d, not %d", where, rows[0].Revision, revision)
	}
	res := s.db.WithContext(ctx).Where("id = ? AND revision = ?", rows[0].ID, revision).Delete(&secretRow{})
	if res.Error != nil {
		return fmt.Errorf("km: delete credential %s: %w", where, res.Error)
	}
	if res.RowsAffected == 0 {
		return errorf(ErrConflict, "delete credential %s: changed concurrently (expected revision %d)", where, revision)
	}
	if err := s.dropDuplicates(ctx, rows[1:]); err != nil {
		return fmt.Errorf("km: delete credential %s: %w", where, err)
	}
	return nil
}

// List implements [Store]. It finds the customer's rows by their customer
// reference and opens their info envelopes (names, provider, kind, field
// names, metadata); it decrypts no secret value.
func (s *LocalStore) List(ctx context.Context, customer string) ([]CredentialInfo, error) {
	if err := validateID("Customer", customer); err != nil {
		return nil, err
	}
	refs, err := s.kr.refs(Binding{Customer: customer}, true)
	if err != nil {
		return nil, err
	}
	var rows []secretRow
	err = s.db.WithContext(ctx).
		Select("id", "credential_ref", "customer_ref", "key_id", "key_version", "info", "revision", "created_at", "updated_at").
		Where("customer_ref IN ?", refValues(refs, true)).Order("id").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("km: list credentials of %s: %w", customer, err)
	}
	byName := map[[2]string]CredentialInfo{}
	for _, r := range rows {
		c, err := s.openInfo(r)
		if err != nil {
			return nil, fmt.Errorf("km: list credentials of %s: %w", customer, err)
		}
		if c.Customer != customer {
			return nil, errorf(ErrTampered, "list credentials of %s: row %d names another customer", customer, r.ID)
		}
		info := c.Info()
		info.KeyID, info.KeyVersion = r.KeyID, int(r.KeyVersion)
		info.CreatedAt, info.UpdatedAt, info.Revision = r.CreatedAt.UTC(), r.UpdatedAt.UTC(), r.Revision
		if len(info.Meta) == 0 {
			info.Meta = nil
		}
		k := [2]string{c.Account, c.Name}
		if prev, dup := byName[k]; !dup || info.UpdatedAt.After(prev.UpdatedAt) {
			byName[k] = info
		}
	}
	out := make([]CredentialInfo, 0, len(byName))
	for _, info := range byName {
		out = append(out, info)
	}
	sortInfos(out)
	return out, nil
}

// RewrapResult reports what [LocalStore.RewrapAll] did.
type RewrapResult struct {
	Rewrapped int // rows moved to the current master key
	Current   int // rows already under the current key when read (written concurrently)
	// Superseded counts rows under an older key that a newer row of the same
	// credential under the current key replaces: they were deleted.
	Superseded int
	Conflicts  int // rows changed by another writer meanwhile: left alone; run RewrapAll again
	Failed     int // rows that could not be rewrapped; their errors are joined in the returned error
}

// RewrapAll moves every row under an older master key to the keyring's
// current key: both envelopes' data keys are rewrapped with
// [Keyring.Rewrap] (no secret payload is decrypted; the info envelope is
// opened to recompute the row's references, which are keyed by the master
// key). Rows are read in batches (by primary key) and each is updated only
// if its revision is unchanged, so a concurrent Put is never overwritten. A
// row that fails (for example [ErrUnknownKey]) is counted and skipped; all
// such errors are joined into the returned error. Once RewrapAll returns
// with no failures and no conflicts, older master keys can be removed from
// the key file.
func (s *LocalStore) RewrapAll(ctx context.Context) (RewrapResult, error) {
	var res RewrapResult
	var errs []error
	cur := s.kr.Current()
	var lastID uint64
	for {
		var rows []secretRow
		err := s.db.WithContext(ctx).
			Where("id > ? AND NOT (key_id = ? AND key_version = ?)", lastID, cur.ID, cur.Version).
			Order("id").Limit(s.batch).Find(&rows).Error
		if err != nil {
			return res, errors.Join(append(errs, fmt.Errorf("km: rewrap: read batch after row %d: %w", lastID, err))...)
		}
		for _, r := range rows {
			lastID = r.ID
			if err := s.rewrapRow(ctx, r, &res); err != nil {
				var dbErr *dbError
				if errors.As(err, &dbErr) {
					return res, errors.Join(append(errs, dbErr.err)...)
				}
				res.Failed++
				errs = append(errs, err)
			}
		}
		if len(rows) < s.batch {
			return res, errors.Join(errs...)
		}
		if err := ctx.Err(); err != nil {
			return res, errors.Join(append(errs, err)...)
		}
	}
}

// dbError marks a database failure that ends RewrapAll (rather than one
// row's failure).
type dbError struct{ err error }

func (e *dbError) Error() string { return e.err.Error() }

func (s *LocalStore) rewrapRow(ctx context.Context, r secretRow, res *RewrapResult) error {
	c, err := s.openInfo(r)
	if err != nil {
		return fmt.Errorf("km: rewrap: %w", err)
	}
	where := fmt.Sprintf("%s/%s/%s", c.Customer, c.Account, c.Name)
	out, to, moved, err := s.kr.rewrapAll(r.Info, r.Envelope)
	if err != nil {
		return fmt.Errorf("km: rewrap credential %s: %w", where, err)
	}
	if !moved {
		res.Current++
		return nil
	}
	refs, err := s.kr.refsUnder(to, c.Binding())
	if err != nil {
		return fmt.Errorf("km: rewrap credential %s: %w", where, err)
	}
	var newer int64
	if err := s.db.WithContext(ctx).Model(&secretRow{}).Where("credential_ref = ?", refs.cred).Count(&newer).Error; err != nil {
		return &dbError{fmt.Errorf("km: rewrap credential %s: %w", where, err)}
	}
	if s.beforeRewrapUpdate != nil {
		s.beforeRewrapUpdate()
	}
	if newer > 0 {
		del := s.db.WithContext(ctx).Where("id = ? AND revision = ?", r.ID, r.Revision).Delete(&secretRow{})
		if del.Error != nil {
			return &dbError{fmt.Errorf("km: rewrap credential %s: %w", where, del.Error)}
		}
		res.Superseded++
		return nil
	}
	upd := s.db.WithContext(ctx).Model(&secretRow{}).
		Where("id = ? AND revision = ?", r.ID, r.Revision).
		UpdateColumns(map[string]any{ // not Updates: rewrapping leaves updated_at alone
			"credential_ref": refs.cred, "customer_ref": refs.customer,
			"key_id": to.ID, "key_version": to.Version,
			"info": out[0], "envelope": out[1],
			"revision": r.Revision + 1,
		})
	if upd.Error != nil {
		return &dbError{fmt.Errorf("km: rewrap credential %s: %w", where, upd.Error)}
	}
	if upd.RowsAffected == 0 {
		res.Conflicts++
		return nil
	}
	res.Rewrapped++
	return nil
}

// LegacyResult reports what [LocalStore.MigrateLegacy] did.
type LegacyResult struct {
	Moved   int // rows rewritten into the de-identified table and deleted from the legacy one
	Present int // rows whose credential the new table already held (written since): deleted
	Failed  int // rows left in the legacy table; their errors are joined in the returned error
}

// MigrateLegacy moves every row of [LegacyTableName] (customer, account and
// name in clear text, persist migrations 7 and 8) into the de-identified
// table: each row is opened with the keyring (so a row that fails
// authentication is not carried over), sealed again as [LocalStore.Put]
// would, keeping its timestamps, and deleted from the legacy table. A
// credential the new table already holds is not overwritten. Rows that fail
// stay and are counted; their errors are joined. Safe to run concurrently
// and again; [NewLocalStore] runs it. Nothing happens when the legacy table
// does not exist (persist migration 9 drops it when it is empty).
func (s *LocalStore) MigrateLegacy(ctx context.Context) (LegacyResult, error) {
	res, rowErrs, fatal := s.migrateLegacy(ctx)
	s.legacyLeft.Store(int64(res.Failed))
	return res, errors.Join(append(rowErrs, fatal)...)
}

func (s *LocalStore) migrateLegacy(ctx context.Context) (res LegacyResult, rowErrs []error, fatal error) {
	if !s.db.WithContext(ctx).Migrator().HasTable(LegacyTableName) {
		return res, nil, nil
	}
	var lastID uint64
	for {
		var rows []legacyRow
		err := s.db.WithContext(ctx).Select("id", "customer", "account", "name", "envelope", "created_at", "updated_at").
			Where("id > ?", lastID).Order("id").Limit(s.batch).Find(&rows).Error
		if err != nil {
			return res, rowErrs, fmt.Errorf("km: migrate %s: read rows after %d: %w", LegacyTableName, lastID, err)
		}
		for _, r := range rows {
			lastID = r.ID
			moved, err := s.moveLegacy(ctx, r)
			var dbErr *dbError
			switch {
			case errors.As(err, &dbErr):
				return res, rowErrs, dbErr.err
			case err != nil:
				res.Failed++
				rowErrs = append(rowErrs, err)
			case moved:
				res.Moved++
			default:
				res.Present++
			}
		}
		if len(rows) < s.batch {
			return res, rowErrs, nil
		}
	}
}

func (s *LocalStore) moveLegacy(ctx context.Context, r legacyRow) (moved bool, err error) {
	b := Binding{r.Customer, r.Account, r.Name}
	where := fmt.Sprintf("%s/%s/%s", r.Customer, r.Account, r.Name)
	c, err := openCredential(s.kr, b, r.Envelope)
	if err != nil {
		return false, fmt.Errorf("km: migrate legacy credential %s (row %d): %w", where, r.ID, err)
	}
	defer c.Destroy()
	info, env, refs, err := s.sealRow(c)
	if err != nil {
		return false, fmt.Errorf("km: migrate legacy credential %s (row %d): %w", where, r.ID, err)
	}
	rows, _, err := s.find(ctx, b, "id")
	if err != nil {
		return false, &dbError{fmt.Errorf("km: migrate legacy credential %s: %w", where, err)}
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if len(rows) == 0 {
			row := secretRow{CredentialRef: refs.cred, CustomerRef: refs.customer, KeyID: refs.key.ID, KeyVersion: int64(refs.key.Version),
				Info: info, Envelope: env, Revision: 1,
				CreatedAt: r.CreatedAt.UTC().Truncate(time.Microsecond), UpdatedAt: r.UpdatedAt.UTC().Truncate(time.Microsecond)}
			ins := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row)
			if ins.Error != nil {
				return ins.Error
			}
			moved = ins.RowsAffected == 1
		}
		return tx.Where("id = ?", r.ID).Delete(&legacyRow{}).Error
	})
	if err != nil {
		return false, &dbError{fmt.Errorf("km: migrate legacy credential %s: %w", where, err)}
	}
	return moved, nil
}

// legacyMiss looks for a missing credential among the legacy rows that
// NewLocalStore could not move: it moves the row if it now can (the master
// key was added since), else returns why it cannot; false, nil when there is
// no such row.
func (s *LocalStore) legacyMiss(ctx context.Context, b Binding) (bool, error) {
	if s.legacyLeft.Load() <= 0 {
		return false, nil
	}
	var rows []legacyRow
	err := s.db.WithContext(ctx).Select("id", "customer", "account", "name", "envelope").
		Where("customer = ? AND account = ? AND name = ?", b.Customer, b.Account, b.Name).Find(&rows).Error
	if err != nil {
		return false, nil // the table may be gone; the miss stands
	}
	for _, r := range rows {
		if r.Customer != b.Customer || r.Account != b.Account || r.Name != b.Name {
			continue // a padding or case-insensitive collation matched a look-alike
		}
		if _, err := s.moveLegacy(ctx, r); err != nil {
			return false, fmt.Errorf("km: credential %s/%s/%s is still in the legacy table %s and could not be moved: %w",
				b.Customer, b.Account, b.Name, LegacyTableName, err)
		}
		s.legacyLeft.Add(-1)
		return true, nil
	}
	return false, nil
}

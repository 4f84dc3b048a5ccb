package km

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Audit operations and outcomes ([AuditRecord]).
const (
	OpConnect = "connect" // a TLS handshake (refusals only)
	OpGet     = "get"
	OpPut     = "put"
	OpDelete  = "delete"
	OpList    = "list"
	OpUnknown = "unknown" // a request no operation matched

	OutcomeStarted   = "started"   // recorded before the operation; replaced by its outcome
	OutcomeOK        = "ok"        // done
	OutcomeRefused   = "refused"   // authentication failed (certificate, signature, timestamp, replay)
	OutcomeForbidden = "forbidden" // authenticated, but not allowed this customer or operation
	OutcomeNotFound  = "not_found"
	OutcomeConflict  = "conflict"
	OutcomeInvalid   = "invalid"
	OutcomeError     = "error" // the store failed
)

// AuditRecord is one entry of the key service's audit log: who did (or
// tried) what to which credential, when, from where, and how it ended. It
// never holds a secret.
type AuditRecord struct {
	Time time.Time
	// Client is the identity the request acted as: its certificate's
	// CommonName, or the payload layer's client for a relayed request; ""
	// when none was established.
	Client string
	// Peer is the TLS peer's identity when it differs from Client (an
	// intermediary relaying the request), or when authentication failed
	// after the handshake.
	Peer   string
	Remote string // the network address the connection came from
	Op     string // OpGet, OpPut, …
	// Customer, Account and Name identify the credential (Customer only for
	// a listing; empty when the request named none).
	Customer, Account, Name string
	Outcome                 string // OutcomeOK, OutcomeRefused, …
	Reason                  string // why it was refused or failed, in fixed words
}

// auditRow is one row of [AuditTableName]. Like the credential table it
// holds no names: the credential is named by keyed references and a sealed
// copy of its names (see refs.go).
type auditRow struct {
	ID            uint64 `gorm:"primaryKey"`
	At            time.Time
	Client        string
	Peer          string
	Remote        string
	Op            string
	Outcome       string
	Reason        string
	CustomerRef   []byte
	CredentialRef []byte
	KeyID         string
	KeyVersion    int64
	Names         []byte
}

func (auditRow) TableName() string { return AuditTableName }

const auditLabel = "stratusworks/km audit v1\x00"

// Column limits of the audit table.
const (
	maxAuditText  = 255
	maxAuditShort = 32
)

// AuditLog is the key service's durable audit log, in the table
// [AuditTableName] of a database that persist's migrations prepared. [Server]
// writes it; read it with [AuditLog.Records]. Safe for concurrent use.
type AuditLog struct {
	db  *gorm.DB
	kr  *Keyring
	now func() time.Time
}

// NewAuditLog checks the audit table (see [CheckSchema]) and returns the log.
// kr seals the names of credentials in it and keys their references.
func NewAuditLog(db *gorm.DB, kr *Keyring) (*AuditLog, error) {
	if db == nil {
		return nil, invalidf("audit log: db is nil")
	}
	if kr == nil {
		return nil, invalidf("audit log: keyring is nil")
	}
	if err := checkTables(context.Background(), db, auditSpec); err != nil {
		return nil, err
	}
	return &AuditLog{db: db, kr: kr, now: time.Now}, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// row builds the stored form of r.
func (a *AuditLog) row(r AuditRecord) (auditRow, error) {
	row := auditRow{At: r.Time.UTC().Truncate(time.Microsecond),
		Client: clip(r.Client, maxAuditText), Peer: clip(r.Peer, maxAuditText), Remote: clip(r.Remote, maxAuditText),
		Op: clip(r.Op, maxAuditShort), Outcome: clip(r.Outcome, maxAuditShort), Reason: clip(r.Reason, maxAuditText),
		CustomerRef: []byte{}, CredentialRef: []byte{}, Names: []byte{}}
	if row.At.IsZero() {
		row.At = a.now().UTC().Truncate(time.Microsecond)
	}
	if r.Customer == "" {
		return row, nil
	}
	b := Binding{r.Customer, r.Account, r.Name}
	names := marshalCredential(Credential{Customer: r.Customer, Account: r.Account, Name: r.Name})
	out, key, err := a.kr.sealAll(sealItem{aad: []byte(auditLabel), plaintext: names})
	if err != nil {
		return row, err
	}
	refs, err := a.kr.refsUnder(key, b)
	if err != nil {
		return row, err
	}
	row.CustomerRef, row.KeyID, row.KeyVersion, row.Names = refs.customer, key.ID, int64(key.Version), out[0]
	if r.Account != "" || r.Name != "" {
		row.CredentialRef = refs.cred
	}
	return row, nil
}

// record appends r and returns its row id.
func (a *AuditLog) record(ctx context.Context, r AuditRecord) (uint64, error) {
	row, err := a.row(r)
	if err != nil {
		return 0, fmt.Errorf("km: audit: %w", err)
	}
	if err := a.db.WithContext(ctx).Create(&row).Error; err != nil {
		return 0, fmt.Errorf("km: audit: write record: %w", err)
	}
	return row.ID, nil
}

// finish sets the outcome of a record written as OutcomeStarted.
func (a *AuditLog) finish(ctx context.Context, id uint64, outcome, reason string) error {
	err := a.db.WithContext(ctx).Model(&auditRow{}).Where("id = ?", id).
		UpdateColumns(map[string]any{"outcome": clip(outcome, maxAuditShort), "reason": clip(reason, maxAuditText)}).Error
	if err != nil {
		return fmt.Errorf("km: audit: finish record %d: %w", id, err)
	}
	return nil
}

// AuditQuery selects audit records. Zero fields select everything.
type AuditQuery struct {
	Customer string    // only records of this customer's credentials
	Client   string    // only records of this client identity
	Since    time.Time // only records at or after
	// Limit caps the records returned (the most recent ones). Default 1000.
	Limit int
}

// DefaultAuditLimit is the default AuditQuery.Limit.
const DefaultAuditLimit = 1000

// Records returns the audit records q selects, oldest first. Names of
// credentials are opened with the keyring; a record under a master key the
// keyring no longer holds is returned without them.
func (a *AuditLog) Records(ctx context.Context, q AuditQuery) ([]AuditRecord, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	db := a.db.WithContext(ctx)
	if q.Customer != "" {
		refs, err := a.kr.refs(Binding{Customer: q.Customer}, true)
		if err != nil {
			return nil, err
		}
		db = db.Where("customer_ref IN ?", refValues(refs, true))
	}
	if q.Client != "" {
		db = db.Where("client = ?", q.Client)
	}
	if !q.Since.IsZero() {
		db = db.Where("at >= ?", q.Since.UTC())
	}
	var rows []auditRow
	if err := db.Order("id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("km: audit: read records: %w", err)
	}
	out := make([]AuditRecord, 0, len(rows))
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		rec := AuditRecord{Time: r.At.UTC(), Client: r.Client, Peer: r.Peer, Remote: r.Remote, Op: r.Op, Outcome: r.Outcome, Reason: r.Reason}
		if len(r.Names) > 0 {
			if c, err := a.openNames(r); err == nil {
				rec.Customer, rec.Account, rec.Name = c.Customer, c.Account, c.Name
			}
		}
		out = append(out, rec)
	}
	return out, nil
}

func (a *AuditLog) openNames(r auditRow) (Credential, error) {
	pt, err := a.kr.openAAD([]byte(auditLabel), r.Names)
	if err != nil {
		return Credential{}, err
	}
	c, err := openedCredential(pt)
	if err != nil {
		return Credential{}, err
	}
	refs, err := a.kr.refsUnder(KeyRef{ID: r.KeyID, Version: int(r.KeyVersion)}, c.Binding())
	if err != nil {
		return Credential{}, err
	}
	if !bytes.Equal(refs.customer, r.CustomerRef) {
		return Credential{}, errors.New("names moved from another record")
	}
	return c, nil
}

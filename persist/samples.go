package persist

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/stratusworks/worker/state"
)

// Usage samples: time series in the analytics database, not state. See the
// package documentation ("Usage samples") for the schema and the reasons
// behind it.

// The usage tables (analytics database, migration 2 of its set).
const (
	tblSamples   = "worker_usage_samples"   // raw samples, kept for the raw retention
	tblHourly    = "worker_usage_hourly"    // min/avg/max per server and hour, kept for the rollup retention
	tblSampleCut = "worker_usage_retention" // one row: the cutoff of the last raw purge
)

// Limits of the usage tables' writes and reads.
const (
	// SampleBatch is the most rows one INSERT of AppendSamples carries (two
	// bound parameters each: under any SQLite's and MySQL's limit).
	SampleBatch = 500
	// MaxUsagePage is the most rows UsageSamples and UsageRollups return.
	MaxUsagePage = 10_000

	defaultSamplePurgeBatch = 5000 // rows per DELETE of PurgeSamples and PurgeRollups
	hourSeconds             = 3600
)

// usageMetrics are the measured columns, in the order of state.Sample's
// fields; cpu and mem are stored in hundredths of a percent.
var usageMetrics = []string{"cpu", "mem", "disk_read", "disk_write", "net_rx", "net_tx"}

var (
	samplesDDL = tableDef{
		name: tblSamples,
		columns: []string{
			fmt.Sprintf("account VARCHAR(%d) NOT NULL", maxAccountLen),
			fmt.Sprintf("server VARCHAR(%d) NOT NULL", maxResourceLen),
			"hour BIGINT NOT NULL", // at - at % 3600: leads the key
			"at BIGINT NOT NULL",   // Unix seconds
			"cpu INT NOT NULL",     // 0.01 %
			"mem INT NOT NULL",     // 0.01 %
			"disk_read BIGINT NOT NULL",
			"disk_write BIGINT NOT NULL",
			"net_rx BIGINT NOT NULL",
			"net_tx BIGINT NOT NULL",
		},
		// The hour first: a purge deletes a range of the key and an
		// hour's rollup reads one range per server, with no second index
		// (which would take a third of a sample's bytes), and rows arrive
		// at the key's end, so pages fill.
		primaryKey:   "hour, account, server, at",
		withoutRowID: true,
	}
	hourlyDDL = tableDef{
		name: tblHourly,
		columns: append([]string{
			fmt.Sprintf("account VARCHAR(%d) NOT NULL", maxAccountLen),
			fmt.Sprintf("server VARCHAR(%d) NOT NULL", maxResourceLen),
			"hour BIGINT NOT NULL", // Unix seconds, a multiple of 3600
			"samples INT NOT NULL",
		}, hourlyColumns("BIGINT NOT NULL")...),
		primaryKey:   "account, server, hour",
		indexes:      []string{"hour"},
		withoutRowID: true,
	}
	sampleCutDDL = tableDef{
		name:       tblSampleCut,
		columns:    []string{"id INT NOT NULL", "raw_before BIGINT NOT NULL"},
		primaryKey: "id",
	}
)

// hourlyColumns returns the rollup's value columns (<metric>_min, _avg,
// _max), each followed by suffix.
func hourlyColumns(suffix string) []string {
	var out []string
	for _, m := range usageMetrics {
		for _, agg := range []string{"min", "avg", "max"} {
			out = append(out, strings.TrimSpace(m+"_"+agg+" "+suffix))
		}
	}
	return out
}

// createUsageTables is analytics migration 2. The retention table starts
// empty (no cutoff), so that a new database is empty for a restore.
var createUsageTables = createTables(samplesDDL, hourlyDDL, sampleCutDDL)

// UsageStat is one metric of a server over an hour.
type UsageStat struct {
	Min, Avg, Max float64
}

// UsageHour is the rollup of one server's samples over one hour.
type UsageHour struct {
	Server  string
	Hour    time.Time // the start of the hour, UTC
	Samples int       // how many raw samples it summarises
	// The metrics, in the units of state.Sample (percent, bytes per second).
	CPU, Memory, DiskRead, DiskWrite, NetRx, NetTx UsageStat
}

// sampleRow is a state.Sample as stored.
type sampleRow struct {
	server                   string
	at                       int64
	cpu, mem                 int64
	diskR, diskW, netR, netT int64
}

// checkSample validates sample i of a batch.
func checkSample(account string, i int, x state.Sample) (sampleRow, error) {
	bad := func(field string, v any, want string) error {
		return invalidf("persist: append samples of account %q: sample %d (server %q): %s is %v (%s)", account, i, x.Server, field, v, want)
	}
	pct := func(field string, v float64) (int64, error) {
		if math.IsNaN(v) || v < 0 || v > 100 {
			return 0, bad(field, v, "want a percentage from 0 to 100")
		}
		return int64(math.Round(v * 100)), nil
	}
	r := sampleRow{server: x.Server, at: x.At.Unix(), diskR: x.DiskRead, diskW: x.DiskWrite, netR: x.NetRx, netT: x.NetTx}
	var err error
	switch {
	case x.Server == "":
		return r, bad("Server", `""`, "required")
	case len(x.Server) > maxResourceLen:
		return r, bad("Server", fmt.Sprintf("%d bytes long", len(x.Server)), fmt.Sprintf("at most %d", maxResourceLen))
	case x.At.IsZero():
		return r, bad("At", "zero", "required")
	case x.DiskRead < 0:
		return r, bad("DiskRead", x.DiskRead, "want >= 0")
	case x.DiskWrite < 0:
		return r, bad("DiskWrite", x.DiskWrite, "want >= 0")
	case x.NetRx < 0:
		return r, bad("NetRx", x.NetRx, "want >= 0")
	case x.NetTx < 0:
		return r, bad("NetTx", x.NetTx, "want >= 0")
	}
	if r.cpu, err = pct("CPU", x.CPU); err != nil {
		return r, err
	}
	if r.mem, err = pct("Memory", x.Memory); err != nil {
		return r, err
	}
	return r, nil
}

// AppendSamples appends usage samples of account's servers to the
// analytics database and brings the hourly rollup of every (server, hour)
// they fall in up to date, in one transaction: when it returns nil, the
// samples and their rollups are durable together. It returns how many
// samples were new.
//
// It is safe under redelivery and overlap: a sample whose (account, server,
// time) is stored already is dropped, and a rollup is recomputed from the
// stored raw samples of its hour, never incremented, so a sample that
// arrives twice or late counts once. A sample older than the cutoff of the
// last [Store.PurgeSamples] is dropped too: its hour's raw samples are gone,
// and recomputing the hour from what is left would shrink a rollup that is
// right.
//
// Samples are written SampleBatch rows per INSERT. No change is detected and
// no event is written. A bad sample (no server, a zero time, a percentage
// outside 0–100, a negative throughput) fails the whole call with an error
// matching [ErrInvalid] that names it, its field and value.
func (s *Store) AppendSamples(ctx context.Context, account string, samples []state.Sample) (int, error) {
	if account == "" || len(account) > maxAccountLen {
		return 0, invalidf("persist: append samples: account %q (want 1 to %d bytes)", account, maxAccountLen)
	}
	if len(samples) == 0 {
		return 0, nil
	}
	rows := make([]sampleRow, len(samples))
	for i, x := range samples {
		r, err := checkSample(account, i, x)
		if err != nil {
			return 0, err
		}
		rows[i] = r
	}
	d := s.ana
	var inserted int
	err := retry(ctx, func() error {
		inserted = 0
		return d.writer.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			cut, err := sampleCutoff(tx, d.driver, true)
			if err != nil {
				return err
			}
			live := rows
			if slices.ContainsFunc(rows, func(r sampleRow) bool { return r.at < cut }) {
				live = slices.DeleteFunc(slices.Clone(rows), func(r sampleRow) bool { return r.at < cut })
			}
			for chunk := range slices.Chunk(live, SampleBatch) {
				n, err := insertSamples(tx, d.driver, account, chunk)
				if err != nil {
					return err
				}
				inserted += n
			}
			if inserted == 0 {
				return nil // all duplicates: the rollups are right as they are
			}
			return rollUp(tx, d.driver, account, live)
		})
	})
	if err != nil {
		return 0, fmt.Errorf("persist: append %d samples of account %q: %w", len(samples), account, err)
	}
	return inserted, nil
}

// rawCutoff reads the cutoff of the last raw purge (0 if none).
func (s *Store) rawCutoff(ctx context.Context) (int64, error) {
	var cut int64
	err := retry(ctx, func() error {
		var err error
		cut, err = sampleCutoff(s.ana.reader.WithContext(ctx), s.ana.driver, false)
		return err
	})
	return cut, err
}

// sampleCutoff reads the cutoff of the last raw purge. With share set (in
// an append's transaction) it holds a shared lock on MySQL (on the row, or
// on the gap where it would be), so a purge moving the cutoff waits for the
// append to commit.
func sampleCutoff(tx *gorm.DB, d Driver, share bool) (int64, error) {
	q := "SELECT raw_before FROM " + tblSampleCut + " WHERE id = 1"
	if share && d == MySQL {
		q += " LOCK IN SHARE MODE"
	}
	var cut []int64
	if err := tx.Raw(q).Scan(&cut).Error; err != nil {
		return 0, fmt.Errorf("read the sample retention cutoff: %w", err)
	}
	if len(cut) == 0 {
		return 0, nil
	}
	return cut[0], nil
}

// insertSamples inserts one multi-row INSERT's worth of rows, skipping
// those stored already, and returns how many were new. The numbers are
// written into the statement (they are int64s this code formats) and only
// the strings are bound: two parameters a row, not nine, which keeps the
// SQLite driver's binding (quadratic in the parameters) cheap.
func insertSamples(tx *gorm.DB, d Driver, account string, rows []sampleRow) (int, error) {
	b := make([]byte, 0, 64+80*len(rows))
	b = append(b, "INSERT INTO "+tblSamples+" (account, server, hour, at, "+strings.Join(usageMetrics, ", ")+") VALUES "...)
	args := make([]any, 0, 2*len(rows))
	for i, r := range rows {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, "(?, ?"...)
		for _, v := range [...]int64{r.at - mod(r.at, hourSeconds), r.at, r.cpu, r.mem, r.diskR, r.diskW, r.netR, r.netT} {
			b = append(b, ", "...)
			b = strconv.AppendInt(b, v, 10)
		}
		b = append(b, ')')
		args = append(args, account, r.server)
	}
	if d == MySQL {
		b = append(b, " ON DUPLICATE KEY UPDATE at = at"...) // a no-op update: 0 rows affected
	} else {
		b = append(b, " ON CONFLICT (hour, account, server, at) DO NOTHING"...)
	}
	res := tx.Exec(string(b), args...)
	if res.Error != nil {
		return 0, fmt.Errorf("insert %d samples: %w", len(rows), res.Error)
	}
	return int(res.RowsAffected), nil
}

// rollUp recomputes the hourly rollup of every (server, hour) the rows
// fall in from the raw samples stored for it: one INSERT … SELECT per hour
// and up to inListChunk servers.
func rollUp(tx *gorm.DB, d Driver, account string, rows []sampleRow) error {
	servers := map[int64][]string{} // hour -> servers
	for _, r := range rows {
		h := r.at - mod(r.at, hourSeconds)
		servers[h] = append(servers[h], r.server)
	}
	var sel, set []string
	for _, m := range usageMetrics {
		sel = append(sel, "MIN("+m+")", "ROUND(AVG("+m+"))", "MAX("+m+")")
	}
	for _, c := range append([]string{"samples"}, hourlyColumns("")...) {
		if d == MySQL {
			set = append(set, c+" = VALUES("+c+")")
		} else {
			set = append(set, c+" = excluded."+c)
		}
	}
	upsert := " ON CONFLICT (account, server, hour) DO UPDATE SET " + strings.Join(set, ", ")
	if d == MySQL {
		upsert = " ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
	}
	head := "INSERT INTO " + tblHourly + " (account, server, hour, samples, " + strings.Join(hourlyColumns(""), ", ") + ")" +
		" SELECT account, server, ?, COUNT(*), " + strings.Join(sel, ", ") +
		" FROM " + tblSamples + " WHERE hour = ? AND account = ? AND server IN ?" +
		" GROUP BY account, server" + upsert
	for _, h := range slices.Sorted(maps.Keys(servers)) {
		list := servers[h]
		slices.Sort(list)
		list = slices.Compact(list)
		for chunk := range slices.Chunk(list, inListChunk) {
			if err := tx.Exec(head, h, h, account, chunk).Error; err != nil {
				return fmt.Errorf("roll up the hour of %s: %w", time.Unix(h, 0).UTC().Format(time.RFC3339), err)
			}
		}
	}
	return nil
}

// mod is the non-negative remainder (times before 1970 round down too).
func mod(a, b int64) int64 { return ((a % b) + b) % b }

// PurgeSamples deletes the raw samples taken before olderThan, rounded down
// to the hour (so an hour's raw samples are all kept or all gone), and
// returns how many it deleted. It first records that cutoff, so that
// [Store.AppendSamples] drops samples older than it from then on; the
// hourly rollups stay (see [Store.PurgeRollups]). It deletes in batches,
// each its own short transaction; what it deleted stays deleted if it fails
// part way.
//
// It is a step of the worker's protocol, taken by the sample purge.
func (s *Store) PurgeSamples(ctx context.Context, olderThan time.Time) (int, error) {
	cut := olderThan.Unix()
	cut -= mod(cut, hourSeconds)
	d := s.ana
	err := retry(ctx, func() error {
		// Only forward: two purgers with different settings never
		// resurrect an hour.
		q := "INSERT INTO " + tblSampleCut + " (id, raw_before) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET raw_before = MAX(raw_before, excluded.raw_before)"
		if d.driver == MySQL {
			q = "INSERT INTO " + tblSampleCut + " (id, raw_before) VALUES (1, ?) ON DUPLICATE KEY UPDATE raw_before = GREATEST(raw_before, VALUES(raw_before))"
		}
		return d.writer.WithContext(ctx).Exec(q, cut).Error
	})
	if err != nil {
		return 0, fmt.Errorf("persist: purge samples: record the cutoff: %w", err)
	}
	n, err := s.purgeUsage(ctx, tblSamples, "hour", "hour, account, server, at", cut)
	if err != nil {
		return n, fmt.Errorf("persist: purge samples before %s: %w", time.Unix(cut, 0).UTC().Format(time.RFC3339), err)
	}
	return n, nil
}

// PurgeRollups deletes the hourly rollups of the hours that started before
// olderThan and returns how many it deleted, in batches like
// [Store.PurgeSamples].
//
// It is a step of the worker's protocol, taken by the rollup purge.
func (s *Store) PurgeRollups(ctx context.Context, olderThan time.Time) (int, error) {
	n, err := s.purgeUsage(ctx, tblHourly, "hour", "account, server, hour", olderThan.Unix())
	if err != nil {
		return n, fmt.Errorf("persist: purge hourly rollups before %s: %w", olderThan.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}

// purgeUsage deletes the rows of table whose column (the key's first, or
// an indexed one) is below cut, oldest first, in batches.
func (s *Store) purgeUsage(ctx context.Context, table, column, key string, cut int64) (int, error) {
	batch := s.purgeBatch
	if batch <= 0 {
		batch = defaultSamplePurgeBatch
	}
	d := s.ana
	q := "DELETE FROM " + table + " WHERE " + column + " < ? ORDER BY " + column + " LIMIT ?"
	if d.driver == SQLite { // no DELETE … LIMIT: by key through the column's index
		q = "DELETE FROM " + table + " WHERE (" + key + ") IN (SELECT " + key + " FROM " + table +
			" WHERE " + column + " < ? ORDER BY " + column + " LIMIT ?)"
	}
	total := 0
	for {
		var n int64
		err := retry(ctx, func() error {
			res := d.writer.WithContext(ctx).Exec(q, cut, batch)
			n = res.RowsAffected
			return res.Error
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < int64(batch) {
			return total, nil
		}
	}
}

// usageRange checks the arguments of the usage reads.
func usageRange(what, account, server string, from, to time.Time, limit int) error {
	switch {
	case account == "":
		return invalidf("persist: %s: account is required", what)
	case server == "":
		return invalidf("persist: %s of account %q: server is required", what, account)
	case to.Before(from):
		return invalidf("persist: %s of %s/%s: to %s is before from %s", what, account, server,
			to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	case limit <= 0 || limit > MaxUsagePage:
		return invalidf("persist: %s of %s/%s: limit is %d (want 1 to %d)", what, account, server, limit, MaxUsagePage)
	}
	return nil
}

// UsageSamples returns up to limit raw samples of one server taken in
// [from, to), oldest first (limit at most MaxUsagePage; page on by the
// last one's At + 1s).
func (s *Store) UsageSamples(ctx context.Context, account, server string, from, to time.Time, limit int) ([]state.Sample, error) {
	if err := usageRange("usage samples", account, server, from, to, limit); err != nil {
		return nil, err
	}
	type row struct {
		At        int64 `gorm:"column:at"`
		CPU       int64 `gorm:"column:cpu"`
		Mem       int64 `gorm:"column:mem"`
		DiskRead  int64 `gorm:"column:disk_read"`
		DiskWrite int64 `gorm:"column:disk_write"`
		NetRx     int64 `gorm:"column:net_rx"`
		NetTx     int64 `gorm:"column:net_tx"`
	}
	// The raw key leads with the hour: find the server's hours in its
	// rollups (one range of their key; every stored sample has its hour's
	// rollup), from the raw cutoff on, and ask for them with IN, a week of
	// hours at a time, each one seek.
	first, last := from.Unix(), to.Unix()
	cut, err := s.rawCutoff(ctx)
	if err != nil {
		return nil, fmt.Errorf("persist: usage samples of %s/%s: %w", account, server, err)
	}
	var hours []int64
	err = retry(ctx, func() error {
		hours = nil
		return s.ana.reader.WithContext(ctx).Raw("SELECT hour FROM "+tblHourly+" WHERE account = ? AND server = ? AND hour >= ? AND hour < ? ORDER BY hour",
			account, server, max(first-mod(first, hourSeconds), cut), last).Scan(&hours).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: usage samples of %s/%s: %w", account, server, err)
	}
	var rows []row
	for chunk := range slices.Chunk(hours, 168) {
		if len(rows) >= limit {
			break
		}
		var more []row
		err := retry(ctx, func() error {
			more = nil
			return s.ana.reader.WithContext(ctx).Raw("SELECT at, cpu, mem, disk_read, disk_write, net_rx, net_tx FROM "+tblSamples+
				" WHERE hour IN ? AND account = ? AND server = ? AND at >= ? AND at < ? ORDER BY at LIMIT ?",
				chunk, account, server, first, last, limit-len(rows)).Scan(&more).Error
		})
		if err != nil {
			return nil, fmt.Errorf("persist: usage samples of %s/%s: %w", account, server, err)
		}
		rows = append(rows, more...)
	}
	out := make([]state.Sample, len(rows))
	for i, r := range rows {
		out[i] = state.Sample{Server: server, At: time.Unix(r.At, 0).UTC(), CPU: float64(r.CPU) / 100, Memory: float64(r.Mem) / 100,
			DiskRead: r.DiskRead, DiskWrite: r.DiskWrite, NetRx: r.NetRx, NetTx: r.NetTx}
	}
	return out, nil
}

// UsageRollups returns up to limit hourly rollups of one server for the
// hours that start in [from, to), oldest first (limit at most
// MaxUsagePage).
func (s *Store) UsageRollups(ctx context.Context, account, server string, from, to time.Time, limit int) ([]UsageHour, error) {
	if err := usageRange("usage rollups", account, server, from, to, limit); err != nil {
		return nil, err
	}
	var rows []hourRow
	err := retry(ctx, func() error {
		rows = nil
		return s.ana.reader.WithContext(ctx).Raw("SELECT hour, samples, "+strings.Join(hourlyColumns(""), ", ")+" FROM "+tblHourly+
			" WHERE account = ? AND server = ? AND hour >= ? AND hour < ? ORDER BY hour LIMIT ?",
			account, server, from.Unix(), to.Unix(), limit).Scan(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("persist: usage rollups of %s/%s: %w", account, server, err)
	}
	out := make([]UsageHour, len(rows))
	for i, r := range rows {
		pct := func(a, b, c int64) UsageStat { return UsageStat{float64(a) / 100, float64(b) / 100, float64(c) / 100} }
		rate := func(a, b, c int64) UsageStat { return UsageStat{float64(a), float64(b), float64(c)} }
		out[i] = UsageHour{Server: server, Hour: time.Unix(r.Hour, 0).UTC(), Samples: int(r.Samples),
			CPU: pct(r.CPUMin, r.CPUAvg, r.CPUMax), Memory: pct(r.MemMin, r.MemAvg, r.MemMax),
			DiskRead: rate(r.DiskReadMin, r.DiskReadAvg, r.DiskReadMax), DiskWrite: rate(r.DiskWriteMin, r.DiskWriteAvg, r.DiskWriteMax),
			NetRx: rate(r.NetRxMin, r.NetRxAvg, r.NetRxMax), NetTx: rate(r.NetTxMin, r.NetTxAvg, r.NetTxMax)}
	}
	return out, nil
}

// hourRow is a row of the hourly rollup.
type hourRow struct {
	Hour         int64 `gorm:"column:hour"`
	Samples      int64 `gorm:"column:samples"`
	CPUMin       int64 `gorm:"column:cpu_min"`
	CPUAvg       int64 `gorm:"column:cpu_avg"`
	CPUMax       int64 `gorm:"column:cpu_max"`
	MemMin       int64 `gorm:"column:mem_min"`
	MemAvg       int64 `gorm:"column:mem_avg"`
	MemMax       int64 `gorm:"column:mem_max"`
	DiskReadMin  int64 `gorm:"column:disk_read_min"`
	DiskReadAvg  int64 `gorm:"column:disk_read_avg"`
	DiskReadMax  int64 `gorm:"column:disk_read_max"`
	DiskWriteMin int64 `gorm:"column:disk_write_min"`
	DiskWriteAvg int64 `gorm:"column:disk_write_avg"`
	DiskWriteMax int64 `gorm:"column:disk_write_max"`
	NetRxMin     int64 `gorm:"column:net_rx_min"`
	NetRxAvg     int64 `gorm:"column:net_rx_avg"`
	NetRxMax     int64 `gorm:"column:net_rx_max"`
	NetTxMin     int64 `gorm:"column:net_tx_min"`
	NetTxAvg     int64 `gorm:"column:net_tx_avg"`
	NetTxMax     int64 `gorm:"column:net_tx_max"`
}

package persist_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/state"
)

// A backup of an embedded (SQLite) store, restored into a new database:
// here another SQLite file; a MySQL/MariaDB DBConfig restores it the same
// way. A second restore into the same database is refused.
func ExampleStore_Export() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "backup-example")
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)

	src, err := persist.Open(ctx, persist.Config{Provisioning: persist.DBConfig{DSN: filepath.Join(dir, "worker.db")}, Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer src.Close()
	target := state.Target{Account: "acct-1", Customer: "acme", Kind: "server"}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	_, err = src.Save(ctx, target, state.Snapshot{Observations: []state.Observation{
		{ID: "i-1", Attributes: json.RawMessage(`{"state":"running"}`), ObservedAt: at},
		{ID: "i-2", Attributes: json.RawMessage(`{"state":"stopped"}`), ObservedAt: at},
	}})
	if err != nil {
		panic(err)
	}

	var archive bytes.Buffer // a file, in real life
	stats, err := src.Export(ctx, &archive, persist.ExportOptions{})
	if err != nil {
		panic(err)
	}
	for _, t := range stats.Tables {
		if t.Rows > 0 {
			fmt.Println(t.Table, t.Rows)
		}
	}

	restored := persist.Config{Provisioning: persist.DBConfig{DSN: filepath.Join(dir, "restored.db")}, Logger: quiet}
	in, err := persist.Import(ctx, bytes.NewReader(archive.Bytes()), restored, persist.ImportOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("restored", in.Rows, "rows from", in.Header.Provisioning)

	_, err = persist.Import(ctx, bytes.NewReader(archive.Bytes()), restored, persist.ImportOptions{})
	fmt.Println(errors.Is(err, persist.ErrNotEmpty))

	// Output:
	// worker_resources 2
	// worker_outbox 2
	// worker_resource_history 2
	// restored 6 rows from sqlite
	// true
}

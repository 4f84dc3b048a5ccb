package worker

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stratusworks/worker/persist"
	"github.com/stratusworks/worker/sqlitemq"
)

// sqliteQueuePath is the queue file of MQ.URL "sqlite" or "sqlite:<path>",
// or "" for another transport. Bare "sqlite" puts the queue next to the
// store's SQLite file: "worker.db" -> "worker-queue.db".
func (c Config) sqliteQueuePath() (string, error) {
	if k, _ := c.MQ.transport(); k != transportSQLite {
		return "", nil
	}
	if path, ok := strings.CutPrefix(c.MQ.URL, "sqlite:"); ok {
		if path == "" {
			return "", configError("MQ.URL", `%q names no file: want "sqlite:<path>", or "sqlite" for a file beside the store's`, c.MQ.URL)
		}
		if err := (sqlitemq.Config{Path: path}).Validate(); err != nil {
			return "", fmt.Errorf("%w: MQ.URL %q: %w", ErrInvalidConfig, c.MQ.URL, err)
		}
		return path, nil
	}
	db := c.Store.Provisioning
	switch {
	case c.Storage != nil:
		return "", configError("MQ.URL", `"sqlite" puts the queue next to the built-in store's SQLite file, but Storage is the host's own: name the file, "sqlite:<path>"`)
	case db.Driver != "" && db.Driver != persist.SQLite:
		return "", configError("MQ.URL", `"sqlite" puts the queue next to the store's SQLite file, but Store.Provisioning.Driver is %q: name the file, "sqlite:<path>"`, db.Driver)
	case db.DSN == persist.MemoryDSN:
		return "", configError("MQ.URL", `"sqlite" puts the queue next to the store's SQLite file, but the store is in memory (%q): a durable queue beside it keeps actions for state that is gone; name the file, "sqlite:<path>"`, db.DSN)
	}
	dsn := db.DSN
	if dsn == "" {
		dsn = persist.DefaultSQLiteDSN
	}
	ext := filepath.Ext(dsn)
	return strings.TrimSuffix(dsn, ext) + "-queue" + ext, nil
}

// sqliteTransport opens the embedded durable queue. One subscription per
// queue (MQ.Consumers) holds up to MQ.Prefetch messages, the Subscriber's
// Concurrency handlers take them, and each is deleted from the file as
// soon as its handler is done.
func (w *Worker) sqliteTransport(ctx context.Context) (message.Publisher, message.Subscriber, message.SubscribeInitializer, int, error) {
	path, err := w.cfg.sqliteQueuePath()
	if err != nil {
		return nil, nil, nil, 0, err
	}
	q, err := sqlitemq.New(ctx, sqlitemq.Config{Path: path, MaxInFlight: w.cfg.MQ.Prefetch, Logger: w.log})
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("worker: %w", err)
	}
	w.closers = append([]func() error{q.Close}, w.closers...)
	return q, q, q, w.cfg.MQ.Consumers, nil
}

func (w *Worker) describeSQLiteQueue() string {
	path, _ := w.cfg.sqliteQueuePath()
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return "sqlite queue " + path
}

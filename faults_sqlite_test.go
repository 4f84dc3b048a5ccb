//go:build faults

package worker

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
	"github.com/stratusworks/worker/persist"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
)

// Environment of the child process TestFaultsSQLiteQueueKilled starts.
const (
	sqliteChildEnv = "WORKER_SQLITEQ_CHILD" // the directory of the child's files
	sqliteActions  = 10_000
	sqliteEffect   = "sqliteq.effect"
)

// TestFaultsSQLiteQueueKilled: a child process (this test binary again)
// publishes 10,000 actions on the embedded durable queue (MQ.URL "sqlite",
// default config) and handles them; it is killed with SIGKILL three times
// while it publishes (at about 20, 45 and 70 % of the stream) and started
// again each time, each new child publishing what the log of returned
// publishes does not have yet. Every publish that returned nil must be
// handled (lost=0), and each key's effect must be applied once.
//
//	go test -tags faults -run '^TestFaultsSQLiteQueueKilled$' -count=1 -v .
func TestFaultsSQLiteQueueKilled(t *testing.T) {
	if os.Getenv(sqliteChildEnv) != "" {
		sqliteQueueChild(t, os.Getenv(sqliteChildEnv))
		return
	}
	dir := t.TempDir()
	publishedLog := filepath.Join(dir, "published.log")
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFaultsSQLiteQueueKilled$", "-test.count=1")
		cmd.Env = append(os.Environ(), sqliteChildEnv+"="+dir)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		return cmd
	}
	began := time.Now()
	for _, at := range []int{sqliteActions * 20 / 100, sqliteActions * 45 / 100, sqliteActions * 70 / 100} {
		cmd := start()
		deadline := time.Now().Add(2 * time.Minute)
		for len(readKeys(t, publishedLog)) < at {
			require.True(t, time.Now().Before(deadline), "child did not reach %d publishes", at)
			time.Sleep(2 * time.Millisecond)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		t.Logf("killed at %d returned publishes", len(readKeys(t, publishedLog)))
	}
	cmd := start() // the last child publishes the rest and exits when all are handled
	require.NoError(t, waitExit(cmd, 5*time.Minute))

	published := readKeys(t, publishedLog)
	db, err := sql.Open("sqlite", filepath.Join(dir, "worker.db"))
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query("SELECT k, n FROM sqliteq_effects")
	require.NoError(t, err)
	effects := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		require.NoError(t, rows.Scan(&k, &n))
		effects[k] = n
	}
	require.NoError(t, rows.Err())
	lost, twice := 0, 0
	for k := range published {
		if effects[k] == 0 {
			lost++
		}
	}
	for _, n := range effects {
		if n > 1 {
			twice++
		}
	}
	calls := len(readLines(t, filepath.Join(dir, "calls.log")))
	fmt.Printf("sqlite queue, kill -9 x3: published=%d handled=%d handler_calls=%d effects_twice=%d lost=%d in %v\n",
		len(published), len(effects), calls, twice, lost, time.Since(began).Round(time.Second))
	require.Equal(t, sqliteActions, len(published))
	require.Zero(t, lost)
	require.Zero(t, twice)
}

// sqliteQueueChild is the child: a default embedded worker on the durable
// queue whose handler applies an effect (a row per key) with HandleTx.
func sqliteQueueChild(t *testing.T, dir string) {
	w, err := New(context.Background(), Config{
		MQ:     MQConfig{URL: "sqlite"},
		Store:  persist.Config{Provisioning: persist.DBConfig{DSN: filepath.Join(dir, "worker.db")}, Logger: discardLogger()},
		Logger: discardLogger(),
	})
	require.NoError(t, err)
	require.NoError(t, w.db.DB().Exec("CREATE TABLE IF NOT EXISTS sqliteq_effects (k TEXT PRIMARY KEY, n INTEGER NOT NULL)").Error)
	calls := appendFile(t, filepath.Join(dir, "calls.log"))
	require.NoError(t, w.HandleTx(sqliteEffect, func(ctx context.Context, tx *gorm.DB, a Action) error {
		calls(a.Key)
		return tx.Exec("INSERT INTO sqliteq_effects (k, n) VALUES (?, 1) ON CONFLICT (k) DO UPDATE SET n = n + 1", a.Key).Error
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-w.Running()

	publishedLog := filepath.Join(dir, "published.log")
	have := readKeys(t, publishedLog)
	record := appendFile(t, publishedLog)
	todo := make(chan string)
	go func() {
		defer close(todo)
		for i := range sqliteActions {
			if k := fmt.Sprintf("k-%05d", i); !have[k] {
				todo <- k
			}
		}
	}()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range todo {
				if err := w.Publish(ctx, Action{Type: sqliteEffect, Key: k}); err != nil {
					t.Errorf("publish %s: %v", k, err)
					return
				}
				record(k) // only after Publish returned nil
			}
		}()
	}
	wg.Wait()
	for {
		var n int64
		require.NoError(t, w.db.DB().Raw("SELECT COUNT(*) FROM sqliteq_effects").Scan(&n).Error)
		if n >= sqliteActions {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)
}

// appendFile returns a function that appends a line to path with one
// write: it survives a SIGKILL of the process once the call returned.
func appendFile(t *testing.T, path string) func(string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return func(line string) {
		if _, err := f.WriteString(line + "\n"); err != nil {
			t.Errorf("append to %s: %v", path, err)
		}
	}
}

func readLines(t *testing.T, path string) []string {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "k-") && len(l) == len("k-00000") {
			out = append(out, l) // a line cut by the kill is not a returned publish
		}
	}
	require.NoError(t, sc.Err())
	return out
}

func readKeys(t *testing.T, path string) map[string]bool {
	keys := map[string]bool{}
	for _, k := range readLines(t, path) {
		keys[k] = true
	}
	return keys
}

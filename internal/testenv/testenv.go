// Package testenv gives integration tests their services: a fresh MySQL/MariaDB
// database and unique RabbitMQ queue names per test, or a visible skip when the
// service is not configured. In CI (CI=true) a missing service fails the test
// instead, so integration tests never silently skip there.
//
// For the fault tests (build tag faults) it also controls the services'
// processes: [MariaDB] (kill, start, freeze, thaw, read_only) for the shared
// server or a private one, [RabbitMQ] (stop, start), both found by pid file or
// port ([FindPID]), never by process name; [QueueCounts] reads a queue's
// depth; [LogRecorder] counts a logger's records per level.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Environment variables that enable integration tests.
const (
	AMQPURLEnv  = "WORKER_TEST_AMQP_URL"  // e.g. amqp://guest:guest@127.0.0.1:5672/
	MySQLDSNEnv = "WORKER_TEST_MYSQL_DSN" // e.g. root@tcp(127.0.0.1:3306)/test
)

func need(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set but CI=true: integration tests must not skip in CI (%s)", env, what)
	}
	t.Skipf("skipping %s integration test: set %s to run it", what, env)
	return ""
}

// Suffix returns a short random hex string for unique names.
func Suffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var unsafeName = regexp.MustCompile(`[^a-z0-9]+`)

// UniqueName returns a name derived from the test's name plus a random suffix,
// made of [a-z0-9_] only, at most 48 characters.
func UniqueName(t testing.TB) string {
	base := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(base) > 30 {
		base = base[len(base)-30:]
	}
	return strings.Trim("t_"+base, "_") + "_" + Suffix()
}

// AMQPURL returns the broker URL for integration tests, or skips (fails in CI).
func AMQPURL(t testing.TB) string {
	t.Helper()
	return need(t, AMQPURLEnv, "RabbitMQ")
}

// DeleteQueuesOnCleanup deletes the named queues when the test ends.
func DeleteQueuesOnCleanup(t testing.TB, url string, queues ...string) {
	t.Helper()
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Logf("testenv: cannot delete queues %v: %v", queues, err)
			return
		}
		defer conn.Close()
		for _, q := range queues {
			ch, err := conn.Channel()
			if err != nil {
				t.Logf("testenv: channel: %v", err)
				return
			}
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Logf("testenv: delete queue %s: %v", q, err)
			}
			_ = ch.Close()
		}
	})
}

// MySQLDSN creates a fresh database on the server named by WORKER_TEST_MYSQL_DSN,
// drops it when the test ends, and returns a DSN that points at it.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	base := need(t, MySQLDSNEnv, "MySQL/MariaDB")
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("testenv: %s is not a valid DSN: %v", MySQLDSNEnv, err)
	}
	return createDatabase(t, cfg)
}

// MustEnv is for helper processes: it returns the variable or panics with a clear message.
func MustEnv(name string) string {
	v := os.Getenv(name)
	if v == "" {
		panic(fmt.Sprintf("testenv: %s is not set", name))
	}
	return v
}

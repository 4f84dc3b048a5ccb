package workertest_test

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// failTB is the real test's TB, except that Fatalf and Errorf are recorded
// instead of failing it: for testing how the helpers fail.
type failTB struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (f *failTB) Helper() {}

func (f *failTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

func (f *failTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

// failure runs f on its own goroutine (Fatalf ends it) and returns what the
// helper under test reported, "" if nothing.
func failure(t *testing.T, f func(tb testing.TB)) string {
	t.Helper()
	tb := &failTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.msgs) == 0 {
		return ""
	}
	return tb.msgs[0]
}

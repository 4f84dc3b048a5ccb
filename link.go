package worker

import (
	"github.com/stratusworks/worker/internal/workerlink"
	"github.com/stratusworks/worker/persist"
)

// The module's other packages (workertest) reach the built-in store and the
// subscriber's attempt through internal/workerlink, not through this
// package's API.
func init() {
	workerlink.BuiltinStore = func(w any) *persist.Store {
		if w, ok := w.(*Worker); ok && w != nil {
			return w.db
		}
		return nil
	}
	workerlink.Attempt = runAttempt
}

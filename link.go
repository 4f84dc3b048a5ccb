package worker

import (
	"fmt"
	"time"

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
	workerlink.Deliver = func(a any, now time.Time) (any, error) {
		act, ok := a.(Action)
		if !ok {
			return nil, fmt.Errorf("worker: Deliver: %T is not an Action", a)
		}
		m, err := encode(act.defaulted(now.UTC()), defaultMaxPayload)
		if err != nil {
			return Action{}, fmt.Errorf("the action would not publish: %w", err)
		}
		out, err := decode(m, defaultMaxPayload)
		if err != nil {
			return Action{}, fmt.Errorf("a subscriber would poison the action: %w", err)
		}
		return out, nil
	}
}

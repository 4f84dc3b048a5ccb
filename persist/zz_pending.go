package persist

import "errors"

// ErrUnavailable: placeholder until the persist branch lands (lead's note; deleted at merge).
var ErrUnavailable = errors.New("persist: database unavailable")

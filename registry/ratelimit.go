package registry

import (
	"net/http"
	"strconv"
	"time"
)

// maxBackoff bounds a Retry-After so a hostile registry cannot silence
// pullsafe's checks for days.
const maxBackoff = 15 * time.Minute

// retryAfter reads Retry-After as seconds or as an HTTP date; def when it is
// absent or unusable, capped at maxBackoff.
func retryAfter(h http.Header, now time.Time, def time.Duration) time.Duration {
	v := h.Get("Retry-After")
	d := def
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		d = def
	}
	return min(d, maxBackoff)
}

package registry

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxBackoff bounds a Retry-After so a hostile registry cannot silence
// pullsafe's checks for days.
const maxBackoff = 15 * time.Minute

// backoffs are the rate-limit windows opened by 429 answers, per registry host
// and credential: while one is open, lookups answer RateLimited at once
// instead of spending more of the quota.
type backoffs struct {
	mu    sync.Mutex
	until map[string]time.Time
	now   func() time.Time
}

func newBackoffs(now func() time.Time) *backoffs {
	return &backoffs{until: map[string]time.Time{}, now: now}
}

// open starts a window of d for key, never shortening one already open.
func (b *backoffs) open(key string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t := b.now().Add(d); t.After(b.until[key]) {
		b.until[key] = t
	}
}

// remaining reports how long the window for key stays open, 0 if none is.
func (b *backoffs) remaining(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.until[key]
	if !ok {
		return 0
	}
	d := t.Sub(b.now())
	if d <= 0 {
		delete(b.until, key)
		return 0
	}
	return d
}

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

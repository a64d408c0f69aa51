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

// maxWindows caps the windows held at once. Anyone who may create a Pod
// chooses the registry host, so per-host state must be bounded: past the
// cap, the windows that end soonest are dropped (the registry is then simply
// asked again).
const maxWindows = 4096

// sweepEvery is how often expired windows are removed even when nobody asks
// about their host again.
const sweepEvery = time.Minute

// window is a period during which pullsafe answers for a registry from
// memory instead of asking it: a 429's back-off (per host and credential) or
// an outage (per host).
type window struct {
	since time.Time // first failure of this episode
	until time.Time
	err   *Error    // what opened it, answered again while it is open
	probe time.Time // when the probe now out started; zero if none
	// length is the last window's duration: how long an unsettled probe
	// holds the window (not the episode's length, which grows with it).
	length time.Duration
}

// windows holds the open windows, bounded in count and swept when expired.
type windows struct {
	mu        sync.Mutex
	m         map[string]*window
	now       func() time.Time
	max       int
	lastSweep time.Time
}

func newWindows(now func() time.Time, max int) *windows {
	return &windows{m: map[string]*window{}, now: now, max: max, lastSweep: now()}
}

// open starts or extends the window for key to last d from now, never
// shortening one already open; an episode keeps the time its first failure
// began (ago before now: a timeout began a lookup timeout earlier).
func (w *windows) open(key string, ago, d time.Duration, err *Error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	w.sweep(now)
	cur, ok := w.m[key]
	if !ok {
		cur = &window{since: now.Add(-ago)}
		w.m[key] = cur
	}
	if t := now.Add(d); t.After(cur.until) {
		cur.until = t
	}
	cur.err, cur.probe, cur.length = err, time.Time{}, d
}

// get reports whether key's window is open now. With probe, a window that
// has ended stays in force for everyone but one caller, the probe, who is
// let through to ask the registry (until it settles with open or close, or
// for at most one more window length if it never does). Without probe an
// ended window is simply gone.
func (w *windows) get(key string, probe bool) (window, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cur, ok := w.m[key]
	if !ok {
		return window{}, false
	}
	now := w.now()
	if now.Before(cur.until) {
		return *cur, true
	}
	if !probe {
		delete(w.m, key)
		return window{}, false
	}
	if cur.probe.IsZero() || now.Sub(cur.probe) > cur.length {
		cur.probe = now
		return window{}, false
	}
	return *cur, true
}

// close ends key's window: the registry answered.
func (w *windows) close(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, key)
}

func (w *windows) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

// sweep drops ended windows with no probe out, every sweepEvery or when
// full; if still full, the windows that end soonest go. Called locked.
func (w *windows) sweep(now time.Time) {
	if len(w.m) < w.max && now.Sub(w.lastSweep) < sweepEvery {
		return
	}
	w.lastSweep = now
	for k, cur := range w.m {
		if !now.Before(cur.until) && cur.probe.IsZero() {
			delete(w.m, k)
		}
	}
	for len(w.m) >= w.max {
		var (
			first string
			end   time.Time
		)
		for k, cur := range w.m {
			if first == "" || cur.until.Before(end) {
				first, end = k, cur.until
			}
		}
		delete(w.m, first)
	}
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

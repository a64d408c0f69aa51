package registry

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Remembered failures. A registry that is down answers every lookup the
// same way after a full lookup timeout; a Helm release creating pods during
// an outage would wait that long for each. So an outage (timeout, refused
// connection, 5xx) opens a window per host, as nodes reach it, during which
// lookups there answer "cannot verify" at once; when it ends, one probe asks
// the registry again and its answer closes or reopens the window. A 429
// opens a window per host and credential for its Retry-After.

// remembered answers for ep from an open window, or nil to ask it.
func (r *Resolver) remembered(ep endpoint, c Credential) *Error {
	host := canonicalHost(ep.host)
	if w, ok := r.backoff.get(host+"|"+c.Fingerprint(), false); ok {
		d := w.until.Sub(r.o.now())
		return &Error{Reason: RateLimited, Registry: ep.host, RetryAfter: d, Status: http.StatusTooManyRequests,
			Message: fmt.Sprintf("rate limited; pullsafe waits %s before asking again", d.Round(time.Second))}
	}
	if r.o.outageWindow <= 0 {
		return nil
	}
	w, ok := r.outages.get(host, true)
	if !ok || w.err == nil {
		return nil
	}
	now := r.o.now()
	e := *w.err
	e.Registry, e.Err = ep.host, errRemembered
	e.Message = fmt.Sprintf("%s; remembered: unreachable for the last %s, asked again in %s",
		w.err.Message, now.Sub(w.since).Round(time.Second), max(w.until.Sub(now), 0).Round(time.Second))
	return &e
}

// errRemembered marks an answer given from an outage window.
var errRemembered = errors.New("answered from pullsafe's memory of a recent outage")

// settle records what ep said: an outage opens (or reopens) its window, any
// other answer, good or bad, shows the registry is there and closes it.
// spent is how long the attempt took: a timeout counts against a host only
// when that host had most of the lookup's time, not when a mirror before it
// used the time up.
func (r *Resolver) settle(ep endpoint, err error, spent time.Duration) {
	if r.o.outageWindow <= 0 {
		return
	}
	host := canonicalHost(ep.host)
	if err == nil {
		r.outages.close(host)
		return
	}
	e := classify(err, "", ep.host)
	switch {
	case !isOutage(e):
		r.outages.close(host)
	case e.Flavour == FlavourTimeout && spent < r.o.lookupTimeout/2:
		// Not this host's fault: leave its window as it was.
	default:
		r.outages.open(host, spent, r.o.outageWindow, e)
	}
}

// isOutage reports whether e means the registry is down rather than
// answering: no answer in time, connection refused, or a 5xx.
func isOutage(e *Error) bool {
	if e.Reason != Unreachable {
		return false
	}
	switch e.Flavour {
	case FlavourTimeout, FlavourRefused:
		return true
	case FlavourServerError:
		return e.Status >= 500
	}
	return false
}

// rateLimited opens the back-off window of a 429 for ep and credential c.
// resp nil: its headers were not seen; the default back-off applies.
func (r *Resolver) rateLimited(ep endpoint, c Credential, resp *http.Response, e *Error) *Error {
	var h http.Header
	if resp != nil {
		h = resp.Header
	}
	d := retryAfter(h, r.o.now(), r.o.defaultBackoff)
	r.backoff.open(canonicalHost(ep.host)+"|"+c.Fingerprint(), 0, d, nil)
	e.RetryAfter = d
	return e
}

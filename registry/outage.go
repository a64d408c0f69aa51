package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Remembered failures. A registry that is down answers every lookup the
// same way after a full lookup timeout; a Helm release creating pods during
// an outage would wait that long for each. So an outage (timeout, refused
// connection, 5xx) opens a window during which lookups it covers answer
// "cannot verify" at once; when it ends, one probe asks the registry again
// and its answer closes or reopens the window. A 429 opens a window for its
// Retry-After. What each window covers, and its bounds: windows.go.

// remembered answers for (ep, c) from a window in force, or nil to ask.
func (r *Resolver) remembered(ep endpoint, c Credential) *Error {
	w, kind := r.windows.check(canonicalHost(ep.host), ep.repo, c.Fingerprint(), r.o.outageWindow > 0)
	now := r.o.now()
	switch kind {
	case heldLimit:
		d := w.until.Sub(now)
		return &Error{Reason: RateLimited, Registry: ep.host, RetryAfter: d, Status: http.StatusTooManyRequests,
			Message: fmt.Sprintf("rate limited; pullsafe waits %s before asking again for this repository", d.Round(time.Second))}
	case heldHost, heldRepo:
		scope := "this repository only"
		if kind == heldHost {
			scope = "the registry host itself failed"
		}
		e := *w.err
		e.Registry, e.Err = ep.host, errRemembered
		e.Message = fmt.Sprintf("%s; remembered: unreachable for the last %s, asked again in %s (%s)",
			w.err.Message, now.Sub(w.since).Round(time.Second), max(w.until.Sub(now), 0).Round(time.Second), scope)
		return &e
	}
	return nil
}

// errRemembered marks an answer given from an outage window.
var errRemembered = errors.New("answered from pullsafe's memory of a recent outage")

// kept is what a window keeps of the failure that opened it: the classified
// fields, not the underlying error (a response body, a request and its
// Authorization header) nor the credentials tried.
func kept(e *Error) *Error {
	return &Error{Reason: e.Reason, Flavour: e.Flavour, Status: e.Status, Message: e.Message}
}

// settle records what ep said to a lookup with credential c. Host-level
// evidence (hostLevel) opens the host's window; any other outage opens the
// window of that repository and credential only; any other answer, good or
// bad, shows the registry is there and closes what it answers for. spent is
// how long the attempt took: a timeout counts only when this host had most
// of the lookup's time, not when a mirror before it used the time up.
func (r *Resolver) settle(ctx context.Context, ep endpoint, c Credential, err error, spent time.Duration) {
	if r.o.outageWindow <= 0 {
		return
	}
	host, fp := canonicalHost(ep.host), c.Fingerprint()
	if err == nil {
		r.windows.answered(host, ep.repo, fp)
		return
	}
	e := classify(err, "", ep.host)
	switch {
	case !isOutage(e):
		r.windows.answered(host, ep.repo, fp)
	case e.Flavour == FlavourTimeout && spent < r.o.lookupTimeout/2:
		// Not this host's fault: leave its windows as they were.
	case hostLevel(err, ep.host):
		r.windows.openHost(host, ep.repo, spent, r.o.outageWindow, kept(e))
	case r.windows.openRepo(host, ep.repo, fp, spent, r.o.outageWindow, kept(e)):
		r.askPing(ctx, ep)
	}
}

// askPing asks ep's /v2/ ping, past the cache, whether the host itself is
// down, once hostFailThreshold distinct repositories failed there: only its
// failure, not the repositories', opens the host's window, so a tenant
// with many broken repositories on a shared registry cannot. It has a
// lookup timeout of its own: the lookup that got here may have spent its.
func (r *Resolver) askPing(ctx context.Context, ep endpoint) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.lookupTimeout)
	defer cancel()
	start := time.Now()
	_, err, _ := r.flights.Do("askPing|"+ep.reg.Scheme()+"://"+ep.host, func() (any, error) {
		return transport.Ping(pctx, ep.reg, r.base)
	})
	if err == nil {
		return
	}
	if e := classify(err, "", ep.host); isOutage(e) && (e.Flavour != FlavourTimeout || time.Since(start) >= r.o.lookupTimeout/2) {
		r.windows.openHost(canonicalHost(ep.host), ep.repo, 0, r.o.outageWindow, kept(e))
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

// rateLimited opens the back-off window of a 429 for ep's repository and
// credential c (windows.go: a 429 is never widened to the host).
// resp nil: its headers were not seen; the default back-off applies.
func (r *Resolver) rateLimited(ep endpoint, c Credential, resp *http.Response, e *Error) *Error {
	var h http.Header
	if resp != nil {
		h = resp.Header
	}
	d := retryAfter(h, r.o.now(), r.o.defaultBackoff)
	r.windows.limit(canonicalHost(ep.host), ep.repo, c.Fingerprint(), d, kept(e))
	e.RetryAfter = d
	return e
}

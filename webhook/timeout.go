package webhook

import (
	"context"
	"net/http"
	"time"
)

// webhookTimeout is the timeoutSeconds both webhook configurations
// register (Registration, and the manifests and chart say the same): the
// API server never waits longer. It is also the deadline of a call without
// ?timeout= (the API server always sends one; other callers may not).
const webhookTimeout = 10 * time.Second

// WithRequestDeadline gives each review the deadline the API server will
// wait for, from the ?timeout= it puts on the webhook URL, minus a margin
// to write the answer: pullsafe always answers, in time.
//
// ?timeout= is the caller's word, and anyone who reaches the port can
// call: it is capped at webhookTimeout, so no caller holds lookup slots
// longer than the API server itself would wait.
//
// The deadline is the only end a review has. controller-runtime's server
// hands every request the manager's context, which is cancelled the moment
// shutdown begins: reviews in flight then would answer "cannot verify" and
// let unchecked Pods in during every rolling restart. The graceful shutdown
// waits for them instead, and the deadline bounds how long.
func WithRequestDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := webhookTimeout
		if v, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && v > 0 {
			d = min(v, webhookTimeout)
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), d-margin(d))
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// margin is a fifth of the budget, at most one second.
func margin(d time.Duration) time.Duration { return min(d/5, time.Second) }

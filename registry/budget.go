package registry

import (
	"context"
	"net/http"
)

// Budget is charged for every HTTP request a lookup made on behalf of a
// background caller (the audit of running workloads) sends to a registry.
// Spend must not block: a lookup may be shared with an admission that
// joined it (Resolve coalesces identical lookups), and admissions never
// wait on a background budget. The background caller waits instead, before
// its next lookup, until its budget has recovered.
type Budget interface {
	Spend(host string)
}

type budgetKey struct{}

// WithBudget returns a context whose lookups charge b for each request sent
// to a registry (requests refused by a rate-limit or outage window cost
// nothing). Its lookups are background lookups: they skip the answer caches
// and ask the registry again, as their caller checks whether an answer
// cached at admission (a digest's for a day) still holds; a lookup already
// in flight is joined, and the fresh answer is cached for admission.
func WithBudget(ctx context.Context, b Budget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

// background reports whether ctx is a background lookup's (WithBudget).
func background(ctx context.Context) bool {
	b, ok := ctx.Value(budgetKey{}).(Budget)
	return ok && b != nil
}

// budgeted charges the request's budget, if it has one, for the request.
// It sits under the rate-limit and outage guard: only requests that leave
// pullsafe are charged.
type budgeted struct{ next http.RoundTripper }

func (t budgeted) RoundTrip(req *http.Request) (*http.Response, error) {
	if b, ok := req.Context().Value(budgetKey{}).(Budget); ok && b != nil {
		b.Spend(RegistryHost(req.URL.Host))
	}
	return t.next.RoundTrip(req)
}

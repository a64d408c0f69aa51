package registry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestRateLimitedPingOpensAWindow: a 429 on the /v2/ ping (or a token
// endpoint) reaches pullsafe through go-containerregistry without its
// headers. It must still be a rate limit with the default back-off ("retry
// after 0s" before), and the next lookup must not ask the registry again.
func TestRateLimitedPingOpensAWindow(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	tr.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/" {
			return false
		}
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	r := newTestResolver(t, WithDefaultBackoff(time.Minute))
	_, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
	var e *Error
	if !errors.As(err, &e) || e.Reason != RateLimited {
		t.Fatalf("err = %v, want rate limited", err)
	}
	if e.RetryAfter < 59*time.Second {
		t.Errorf("RetryAfter = %s, want the default back-off (the ping's headers are not seen)", e.RetryAfter)
	}
	before := tr.Count("", "")
	if _, err := r.Resolve(context.Background(), tr.Host+"/team/api:v1", nil); !errors.As(err, &e) || e.Reason != RateLimited {
		t.Fatalf("second lookup: %v, want rate limited from the window", err)
	}
	if n := tr.Count("", "") - before; n != 0 {
		t.Errorf("second lookup sent %d requests to a registry that said 429", n)
	}
}

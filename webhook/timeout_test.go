package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestShutdownDoesNotCancelReviewsInFlight: controller-runtime gives every
// request the manager's context, cancelled when shutdown begins. A review in
// flight must keep its own deadline (from ?timeout=) and nothing else, or a
// rolling restart answers "cannot verify" and admits Pods unchecked.
func TestShutdownDoesNotCancelReviewsInFlight(t *testing.T) {
	manager, stop := context.WithCancel(context.Background())
	var (
		deadline time.Time
		errAfter error
	)
	h := WithRequestDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stop() // shutdown begins while this review is in flight
		deadline, _ = r.Context().Deadline()
		errAfter = r.Context().Err()
	}))
	req := httptest.NewRequest(http.MethodPost, "/validate?timeout=10s", nil).WithContext(manager)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if errAfter != nil {
		t.Errorf("review context ended with the manager's: %v", errAfter)
	}
	if left := time.Until(deadline); left <= 0 || left > 10*time.Second {
		t.Errorf("review deadline in %s, want within the API server's 10s", left)
	}
}

// TestCallerTimeoutIsCappedAtTheWebhookTimeout: ?timeout= comes from
// whoever calls; a review never gets longer than the API server waits.
func TestCallerTimeoutIsCappedAtTheWebhookTimeout(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  time.Duration // before the margin
	}{
		{"?timeout=3s", 3 * time.Second},
		{"?timeout=10s", webhookTimeout},
		{"?timeout=30s", webhookTimeout},
		{"?timeout=1000h", webhookTimeout},
		{"", webhookTimeout},
	} {
		var deadline time.Time
		h := WithRequestDeadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			deadline, _ = r.Context().Deadline()
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/validate"+tc.query, nil))
		// The deadline was set before now: what is left of it is an upper bound.
		if got := time.Until(deadline); got > tc.want-margin(tc.want) {
			t.Errorf("%q: review deadline %s after the call, want at most %s", tc.query, got, tc.want-margin(tc.want))
		}
	}
}

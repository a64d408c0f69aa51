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

package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// trickle is a body that sends a few bytes of what its Content-Length
// promised, then breaks off.
type trickle struct{ sent bool }

func (t *trickle) Read(p []byte) (int, error) {
	if t.sent {
		return 0, io.ErrUnexpectedEOF
	}
	t.sent = true
	return copy(p, `{"request":`), nil
}

func (*trickle) Close() error { return nil }

// TestReviewBodyMemoryFollowsTheBytesSent: what a request costs in memory
// follows the bytes it sent, not the Content-Length it claims. A client
// that opens connections claiming 7 MiB each and sends a few bytes must
// not make the webhook hold 7 MiB per connection while it waits.
func TestReviewBodyMemoryFollowsTheBytesSent(t *testing.T) {
	h := NewReviews(admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		t.Error("the handler ran for a broken body")
		return admission.Allowed("")
	}), logr.Discard())
	var before, after runtime.MemStats
	const requests = 4
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range requests {
		r := httptest.NewRequest(http.MethodPost, "/validate", nil)
		r.Header.Set("Content-Type", "application/json")
		r.Body, r.ContentLength = &trickle{}, maxReviewBytes
		h.ServeHTTP(discardWriter{http.Header{}}, r)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / requests; per > 256<<10 {
		t.Errorf("%d bytes allocated per request that sent 11 bytes and claimed %d, want at most %d", per, maxReviewBytes, 256<<10)
	}
}

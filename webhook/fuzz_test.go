package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// offline fails every registry request at once: the fuzz target is about
// decoding, and must not wait on DNS for the names it invents.
type offline struct{}

func (offline) RoundTrip(*http.Request) (*http.Response, error) { return nil, errors.New("offline") }

// FuzzAdmissionReview sends arbitrary bodies through controller-runtime's
// decoding into pullsafe's handlers: the answer is always a well-formed
// AdmissionReview, and a request pullsafe could read is never refused for
// pullsafe's own trouble (only for a rule that fired).
func FuzzAdmissionReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod"},"namespace":"a","operation":"CREATE","object":{"spec":{"containers":[{"name":"c","image":"Bad/Ref"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"2","kind":{"kind":"CronJob"},"namespace":"a","operation":"UPDATE","object":{"spec":{"jobTemplate":{}}},"oldObject":[]}}`))
	f.Add([]byte(`{"request":{"kind":{"kind":"Deployment"},"object":"x"}}`))
	f.Add([]byte(`not json`))
	res, err := registry.NewResolver(registry.WithTransport(offline{}))
	if err != nil {
		f.Fatal(err)
	}
	cfg := policy.DefaultConfig()
	cfg.Mode = policy.ModeEnforce
	c := fake.NewClientBuilder().Build()
	checker := policy.NewChecker(cfg, res)
	hooks := []http.Handler{
		&admission.Webhook{Handler: NewHandler(checker, NewClientCluster(c, c), false, "", nil)},
		&admission.Webhook{Handler: NewHandler(checker, NewClientCluster(c, c), true, "", nil)},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, h := range hooks {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			h.ServeHTTP(rec, req)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("malformed answer %q: %v", rec.Body.String(), err)
			}
			if r := out.Response; !r.Allowed && r.Result != nil && r.Result.Code >= 500 {
				t.Fatalf("internal failure became a denial: %+v", r.Result)
			}
		}
	})
}

package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
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

// FuzzAdmissionReview sends arbitrary bodies through Reviews into
// pullsafe's handlers: the answer is always a well-formed AdmissionReview;
// a body that is not an AdmissionReview is a 400; and
// what pullsafe answers is exactly valid: the mutating webhook never
// refuses, and the validating one refuses only with a 403 that names a rule
// which can fire without a registry (invalid-reference, dockerhub-anonymous),
// never for pullsafe's own trouble.
func FuzzAdmissionReview(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod"},"namespace":"a","operation":"CREATE","object":{"spec":{"containers":[{"name":"c","image":"Bad/Ref"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"2","kind":{"group":"batch","kind":"CronJob"},"namespace":"a","operation":"UPDATE","object":{"spec":{"jobTemplate":{}}},"oldObject":[]}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"3","kind":{"kind":"Pod"},"namespace":"a","operation":"CREATE","object":{"spec":{"containers":[{"name":"c","image":"nginx:1.27"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"4","kind":{"kind":"Pod"},"namespace":"a","operation":"CREATE","object":{"spec":{"containers":[{"name":"c","image":"registry.corp.io/a:v1"}]}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"5","kind":{"kind":"Pod"},"namespace":"a","operation":"CREATE","object":{"spec":7}}}`))
	f.Add([]byte(`{"request":{"kind":{"group":"apps","kind":"Deployment"},"object":"x"}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"6","kind":{"group":"argoproj.io","kind":"Rollout"},"namespace":"a","operation":"CREATE","object":{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"Bad/Ref"}]}}}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"7","kind":{"group":"argoproj.io","kind":"Rollout"},"namespace":"a","operation":"UPDATE","object":{"spec":{"template":[]}},"oldObject":{"spec":"x"}}}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"6","kind":{"kind":"Pod"},"namespace":"a","operation":"CREATE","object":{"spec":{"initContainers":[{"name":"s","image":"Bad/Ref","restartPolicy":"Always"}],"volumes":[{"name":"m","image":{"reference":"Bad//Ref","pullPolicy":"Never"}}]}}}}`))
	res, err := registry.NewResolver(registry.WithTransport(offline{}))
	if err != nil {
		f.Fatal(err)
	}
	cfg := policy.DefaultConfig()
	cfg.Mode = policy.ModeEnforce
	cfg.Workloads = []policy.WorkloadKind{{APIGroup: "argoproj.io", Kind: "Rollout", Resource: "rollouts", PodTemplatePath: "spec.template"}}
	c := fake.NewClientBuilder().Build()
	checker := policy.NewChecker(cfg, res)
	// Rules that can deny with every registry offline and no nodes known.
	offlineDenials := map[string]bool{string(policy.RuleInvalidReference): true, string(policy.RuleDockerHubAnonymous): true}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mutating := range []bool{false, true} {
			reached := false // whether Reviews handed the request to pullsafe
			h := NewHandler(checker, NewClientCluster(c, c), mutating, "", nil)
			hook := NewReviews(admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
				reached = true
				return h.Handle(ctx, req)
			}), logr.Discard())
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			hook.ServeHTTP(rec, req)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("malformed answer %q: %v", rec.Body.String(), err)
			}
			r := out.Response
			switch {
			case !reached:
				if r.Allowed || r.Result == nil || r.Result.Code != http.StatusBadRequest {
					t.Fatalf("undecodable body: %+v, want a 400", r)
				}
			case mutating:
				if !r.Allowed {
					t.Fatalf("the mutating webhook refused: %+v", r.Result)
				}
			default:
				checkValidating(t, r, offlineDenials)
			}
		}
	})
}

// checkValidating: a refusal is a 403 naming only rules in can, and the
// audit annotations agree with the answer.
func checkValidating(t *testing.T, r *admissionv1.AdmissionResponse, can map[string]bool) {
	t.Helper()
	var denied []string
	for _, f := range strings.Split(r.AuditAnnotations["findings"], ",") {
		if rule, action, _ := strings.Cut(f, ":"); strings.HasPrefix(action, string(policy.ActionDeny)+":") {
			denied = append(denied, rule)
		}
	}
	if r.Allowed {
		if len(denied) > 0 || r.AuditAnnotations["decision"] == string(policy.DecisionDeny) {
			t.Fatalf("allowed with deny findings: %v", r.AuditAnnotations)
		}
		return
	}
	if r.Result == nil || r.Result.Code != http.StatusForbidden || !strings.HasPrefix(r.Result.Message, "pullsafe: ") {
		t.Fatalf("refusal is not pullsafe's 403: %+v", r.Result)
	}
	if r.AuditAnnotations["decision"] != string(policy.DecisionDeny) || len(denied) == 0 {
		t.Fatalf("refused without a deny finding: %v", r.AuditAnnotations)
	}
	for _, rule := range denied {
		if !can[rule] || !strings.Contains(r.Result.Message, "["+rule+"]") {
			t.Fatalf("refused for rule %q, which cannot fire offline, or the message does not name it: %q", rule, r.Result.Message)
		}
	}
}

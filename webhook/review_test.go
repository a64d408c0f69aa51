package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
)

// seen is what a handler read of the request: the fields pullsafe's
// handlers and logs use.
type seen struct {
	UID, Kind, Group, Version, SubResource, Name, Namespace, Operation, User, Resource string
	Object, OldObject                                                                  string
	DryRun                                                                             *bool
}

func seenOf(req admission.Request) seen {
	return seen{UID: string(req.UID), Kind: req.Kind.Kind, Group: req.Kind.Group, Version: req.Kind.Version,
		SubResource: req.SubResource, Name: req.Name, Namespace: req.Namespace, Operation: string(req.Operation),
		User: req.UserInfo.Username, Resource: req.Resource.Resource,
		Object: string(req.Object.Raw), OldObject: string(req.OldObject.Raw), DryRun: req.DryRun}
}

// answering is a handler that records the request and answers with
// everything a response can carry, chosen by the request's name.
func answering(got *[]seen) admission.Handler {
	return admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		*got = append(*got, seenOf(req))
		switch req.Name {
		case "deny":
			r := admission.Denied(`pullsafe: no "<tag>" & more`)
			r.Result.Code = http.StatusForbidden
			r.AuditAnnotations = map[string]string{"decision": "deny", "findings": "not-found:deny:c"}
			return r.WithWarnings("pullsafe: first", "pullsafe: second \u2028")
		case "pin":
			r := admission.Allowed("")
			r.Patches = []jsonpatch.Operation{{Operation: "replace", Path: "/spec/containers/0/image", Value: "a:1@sha256:" + strings.Repeat("0", 64)}}
			r.AuditAnnotations = map[string]string{"pinned": "c=a:1"}
			return r
		}
		return admission.Allowed("")
	})
}

// serve sends body to h and returns the status, the decoded answer and its
// raw bytes.
func serve(t testing.TB, h http.Handler, body []byte, contentType string) (int, *admissionv1.AdmissionReview, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	var r *http.Request
	if body == nil {
		r = httptest.NewRequest(http.MethodPost, "/validate", nil)
	} else {
		r = httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	h.ServeHTTP(rec, r)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %q is not JSON: %v", rec.Body.String(), err)
	}
	return rec.Code, &out, rec.Body.String()
}

// sameAsControllerRuntime requires Reviews to hand the handler what
// controller-runtime's admission.Webhook hands it and to answer what it
// answers. The one difference allowed: controller-runtime's codecs also
// read a YAML body; Reviews answers that (no API server sends one) with
// the same 400 as any other body that is not a JSON AdmissionReview.
func sameAsControllerRuntime(t *testing.T, body []byte, contentType string) {
	t.Helper()
	var crSeen, ourSeen []seen
	crBody := body
	if envelopeCaseDiffers(body) {
		// controller-runtime reads the envelope's apiVersion and kind
		// case-insensitively (apimachinery's SimpleMetaFactory uses
		// encoding/json: "ApiVersion" counts) and everything else
		// case-sensitively; Reviews reads all of it case-sensitively. No
		// API server writes "ApiVersion": held to controller-runtime on
		// the keys spelled as the API writes them.
		crBody = readFields(t, body)
	}
	crCode, crOut, crRaw := serve(t, &admission.Webhook{Handler: answering(&crSeen)}, crBody, contentType)
	ourCode, ourOut, raw := serve(t, NewReviews(answering(&ourSeen), logr.Discard()), body, contentType)
	if trimmed := bytes.TrimSpace(body); len(crSeen) == 1 && len(ourSeen) == 0 && (len(trimmed) == 0 || trimmed[0] != '{') {
		if ourOut.Response == nil || ourOut.Response.Allowed || ourOut.Response.Result.Code != http.StatusBadRequest {
			t.Fatalf("a YAML body: %s, want a 400", raw)
		}
		return
	}
	if len(crSeen) == 0 && len(ourSeen) == 1 {
		// Reviews decodes only the fields pullsafe reads, so a field it
		// does not read holding the wrong type (userInfo.groups: 5) is no
		// reason to refuse: a refusal is a denial. Held to
		// controller-runtime on the body cut down to those fields.
		cut := readFields(t, body)
		crCode, crOut, crRaw = serve(t, &admission.Webhook{Handler: answering(&crSeen)}, cut, contentType)
		if len(crSeen) == 0 {
			t.Fatalf("controller-runtime refuses %s even cut down to %s: %s", body, cut, crRaw)
		}
	}
	if diff := cmp.Diff(crSeen, ourSeen); diff != "" {
		t.Fatalf("the handler saw (-controller-runtime +Reviews):\n%s", diff)
	}
	if crCode != ourCode {
		t.Errorf("HTTP status %d, controller-runtime's %d", ourCode, crCode)
	}
	if len(crSeen) == 0 {
		// Refused before the handler: the same code; the wording may differ.
		if ourOut.Response == nil || ourOut.Response.Allowed || ourOut.Response.Result.Code != crOut.Response.Result.Code {
			t.Fatalf("refusal %s, controller-runtime's %+v", raw, crOut.Response.Result)
		}
		return
	}
	if diff := cmp.Diff(crOut, ourOut); diff != "" {
		t.Errorf("answer (-controller-runtime +Reviews):\n%s", diff)
	}
	if crRaw != raw {
		t.Errorf("answer bytes %q, controller-runtime's (encoding/json's) %q", raw, crRaw)
	}
}

// envelopeCaseDiffers reports whether the envelope's apiVersion or kind
// read case-insensitively (encoding/json) differs from the keys spelled
// exactly.
func envelopeCaseDiffers(body []byte) bool {
	type envelope struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	var folded, exact envelope
	if json.Unmarshal(body, &folded) != nil || kjson.UnmarshalCaseSensitivePreserveInts(body, &exact) != nil {
		return false
	}
	return folded != exact
}

// readFields is body with only the fields Reviews reads (the envelope's
// apiVersion, kind and request; the request's fields review names), each
// value's bytes as written.
func readFields(t *testing.T, body []byte) []byte {
	t.Helper()
	var pick func(raw []byte, keys ...string) []byte
	pick = func(raw []byte, keys ...string) []byte {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return raw // null, or what neither decoder reads as an object
		}
		out := []byte{'{'}
		for _, k := range keys {
			v, ok := m[k]
			if !ok {
				continue
			}
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(append(append(out, '"'), k...), `":`...)
			switch k {
			case "request":
				v = pick(v, "uid", "kind", "resource", "subResource", "name", "namespace", "operation", "userInfo", "object", "oldObject", "dryRun")
			case "userInfo":
				v = pick(v, "username")
			}
			out = append(out, v...)
		}
		return append(out, '}')
	}
	return pick(body, "apiVersion", "kind", "request")
}

// FuzzAppendReviewMatchesEncodingJSON: the hand-written encoder writes
// exactly what encoding/json writes, whatever a warning, message, UID or
// annotation quotes (a user's object, a registry's words).
func FuzzAppendReviewMatchesEncodingJSON(f *testing.F) {
	f.Add("pullsafe: image \"a:1\" <not found> & more\u2028\x00\xff", []byte("[]"))
	f.Add("", []byte(nil))
	f.Fuzz(func(t *testing.T, s string, patch []byte) {
		pt := admissionv1.PatchTypeJSONPatch
		for _, r := range []admissionv1.AdmissionResponse{
			{UID: "u", Allowed: true},
			{UID: types.UID(s), Allowed: false, Result: &metav1.Status{Message: s, Reason: metav1.StatusReason(s), Code: 403, Status: s},
				Warnings: []string{s, s + "x"}, AuditAnnotations: map[string]string{s: s, "findings": s, "a" + s: ""}, Patch: patch, PatchType: &pt},
			{UID: "u", Result: &metav1.Status{Details: &metav1.StatusDetails{Name: s}}},
		} {
			for _, tm := range []metav1.TypeMeta{{}, typeMetaReview, {APIVersion: s, Kind: s}} {
				want, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: tm, Response: &r})
				if err != nil {
					t.Fatal(err)
				}
				if got := appendReview(nil, tm.APIVersion, tm.Kind, &r); string(got) != string(want)+"\n" {
					t.Fatalf("appendReview:\n%s\nencoding/json:\n%s", got, want)
				}
			}
		}
	})
}

func TestReviewsAnswerAsControllerRuntime(t *testing.T) {
	obj := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"a:1"}]}}`
	review := func(apiVersion, name, extra string) []byte {
		return []byte(`{"apiVersion":"` + apiVersion + `","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},` +
			`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"team-a","name":"` + name + `","operation":"CREATE",` +
			`"userInfo":{"username":"alice","groups":["system:authenticated"],"extra":{"k":["v"]}},"object":` + obj +
			`,"oldObject":null,"dryRun":true,"options":{"kind":"CreateOptions"}` + extra + `}}`)
	}
	tests := []struct {
		name        string
		body        []byte
		contentType string
	}{
		{"v1 allowed", review("admission.k8s.io/v1", "ok", ""), "application/json"},
		{"v1 denied with warnings and annotations", review("admission.k8s.io/v1", "deny", ""), "application/json"},
		{"v1 patched", review("admission.k8s.io/v1", "pin", ""), "application/json"},
		{"v1beta1 echoed", review("admission.k8s.io/v1beta1", "ok", ""), "application/json"},
		{"an UPDATE with its old object", review("admission.k8s.io/v1", "ok", `,"oldObject":{"spec":{}},"subResource":"ephemeralcontainers"`), "application/json"},
		{"no apiVersion nor kind", []byte(`{"request":{"uid":"u-2","name":"ok"}}`), "application/json"},
		{"no request", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), "application/json"},
		{"request null", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`), "application/json"},
		{"case matters", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"UID":"x","Object":{"a":1},"uid":"y"}}`), "application/json"},
		{"duplicate keys: the last wins", []byte(`{"request":{"uid":"a","uid":"b","object":{"x":1},"object":{"y":2}}}`), "application/json"},
		{"empty body", nil, "application/json"},
		{"wrong content type", review("admission.k8s.io/v1", "ok", ""), "application/yaml"},
		{"no content type", review("admission.k8s.io/v1", "ok", ""), ""},
		{"not JSON", []byte(`{not json`), "application/json"},
		{"a field of the wrong type", []byte(`{"request":{"uid":5}}`), "application/json"},
		{"an array", []byte(`[]`), "application/json"},
		{"apiVersion / names no version", []byte(`{"apiVersion":"/","request":{"uid":"u-3","name":"ok"}}`), "application/json"},
		{"apiVersion without a group", []byte(`{"apiVersion":"/v1","kind":"AdmissionReview","request":{"uid":"u-4","name":"ok"}}`), "application/json"},
		{"apiVersion spelled ApiVersion", []byte(`{"ApiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u-6","name":"ok"}}`), "application/json"},
		{"apiVersion with two slashes", []byte(`{"apiVersion":"admission.k8s.io/v1/x","kind":"AdmissionReview","request":{"uid":"u-5","name":"deny"}}`), "application/json"},
		{"a field pullsafe does not read of the wrong type", review("admission.k8s.io/v1", "deny", `,"requestKind":5,"userInfo":{"username":"bob","groups":5}`), "application/json"},
		{"too large", append(append([]byte(`{"request":{"name":"`), bytes.Repeat([]byte("x"), maxReviewBytes)...), `"}}`...), "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { sameAsControllerRuntime(t, tt.body, tt.contentType) })
	}
}

// FuzzReviewsMatchControllerRuntime: whatever the body, Reviews hands the
// handler what controller-runtime would and answers what it would.
func FuzzReviewsMatchControllerRuntime(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"kind":"Pod"},"namespace":"a","name":"deny","operation":"CREATE","object":{"spec":{}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"1","name":"pin","dryRun":false,"oldObject":[1]}}`))
	f.Add([]byte(`{"request":{"object":"x","oldObject":null,"userInfo":{"username":7}}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","request":{"Object":{},"uid":"\u00e9\ud800"}}`))
	f.Add([]byte(`  {"apiVersion":"x/y"}  `))
	f.Add([]byte(`request: {uid: a}`))
	f.Add([]byte(`{"request":{"uid":"u","name":"deny","userInfo":{"username":"a","groups":5},"requestKind":5,"options":[]}}`))
	f.Fuzz(func(t *testing.T, body []byte) { sameAsControllerRuntime(t, body, "application/json") })
}

// TestReviewEnvelopeAllocs bounds what serving a review costs around the
// handler: reading the body, decoding the envelope, encoding the answer
// (controller-runtime's admission.Webhook took 70 allocations for this
// review and this handler, Reviews 29).
func TestReviewEnvelopeAllocs(t *testing.T) {
	var got []seen
	h := NewReviews(answering(&got), logr.Discard())
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},` +
		`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"team-a","name":"ok","operation":"CREATE",` +
		`"userInfo":{"username":"alice","groups":["system:authenticated","system:serviceaccounts"]},` +
		`"object":{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"a:1"}]}},"oldObject":null,"options":{"kind":"CreateOptions"}}}`)
	r := httptest.NewRequest(http.MethodPost, "/validate", nil)
	r.Header.Set("Content-Type", "application/json")
	w := discardWriter{http.Header{}}
	allocs := testing.AllocsPerRun(200, func() {
		got = got[:0]
		r.Body, r.ContentLength = readCloser{bytes.NewReader(body)}, int64(len(body))
		h.ServeHTTP(w, r)
	})
	if allocs > 32 {
		t.Errorf("%v allocations per review and handler, want at most 32", allocs)
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header       { return d.h }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

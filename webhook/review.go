package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
)

// maxReviewBytes is controller-runtime's limit, kept: a review holds at most
// two objects of at most 3 MiB each (etcd's request size, doubled for JSON)
// and less than 1 MiB of the rest.
const maxReviewBytes = 7 << 20

// Reviews serves AdmissionReviews to a handler. It replaces
// controller-runtime's admission.Webhook on pullsafe's two paths, with its
// behaviour kept (body limit, content type, apiVersion and kind echoed, UID
// echoed, patches, a 400 for what is not an AdmissionReview) at a fraction
// of the cost: admission.Webhook decodes the whole review with the
// apimachinery codecs, user info, options and both objects copied; Reviews
// decodes the envelope fields pullsafe reads and leaves each object as a
// slice of the body, for policy.ExtractWorkload to decode what it reads.
type Reviews struct {
	handler admission.Handler
	log     logr.Logger
}

// NewReviews serves h; log gets one line per request that is not a review
// and, at V(1), carries the request's UID into h's context.
func NewReviews(h admission.Handler, log logr.Logger) *Reviews {
	return &Reviews{handler: h, log: log}
}

// review is the part of an AdmissionReview (v1, or v1beta1 which has the
// same fields) pullsafe reads.
type review struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Request    *reviewRequest `json:"request"`
}

type reviewRequest struct {
	UID         types.UID                   `json:"uid"`
	Kind        metav1.GroupVersionKind     `json:"kind"`
	Resource    metav1.GroupVersionResource `json:"resource"`
	SubResource string                      `json:"subResource"`
	Name        string                      `json:"name"`
	Namespace   string                      `json:"namespace"`
	Operation   admissionv1.Operation       `json:"operation"`
	UserInfo    struct {
		Username string `json:"username"`
	} `json:"userInfo"`
	Object    bodySlice `json:"object"`
	OldObject bodySlice `json:"oldObject"`
	DryRun    *bool     `json:"dryRun"`
}

// bodySlice is an object's JSON as a slice of the request body, not a copy:
// the body is read into a buffer of its own per request and never reused,
// so the slice stays valid as long as anything holds it. null is no object,
// as runtime.RawExtension has it.
type bodySlice []byte

func (s *bodySlice) UnmarshalJSON(b []byte) error {
	if string(b) != "null" {
		*s = b
	}
	return nil
}

func (rv *Reviews) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, code, err := readReview(r)
	if err == nil {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			code, err = http.StatusBadRequest, fmt.Errorf("contentType=%s, expected application/json", ct)
		}
	}
	var in review
	if err == nil {
		// Case-sensitive, as the apimachinery decoder controller-runtime
		// used: "Object" is not "object".
		if err = kjson.UnmarshalCaseSensitivePreserveInts(body, &in); err != nil {
			code, err = http.StatusBadRequest, fmt.Errorf("decoding the AdmissionReview: %w", err)
		}
	}
	var apiVersion, kind string
	if err == nil {
		if apiVersion, kind, err = echoed(in.APIVersion, in.Kind); err != nil {
			code, err = http.StatusBadRequest, fmt.Errorf("decoding the AdmissionReview: %w", err)
		}
	}
	if err != nil {
		rv.log.Error(err, "not an AdmissionReview", "path", r.URL.Path, "remote", r.RemoteAddr)
		writeReview(w, "", "", admission.Errored(int32(code), err))
		return
	}
	req := in.request()
	ctx := r.Context()
	if log := rv.log.V(1); log.Enabled() {
		ctx = logr.NewContext(ctx, rv.log.WithValues("path", r.URL.Path, "requestID", req.UID, "user", req.UserInfo.Username))
	} else {
		ctx = logr.NewContext(ctx, rv.log)
	}
	resp := rv.handler.Handle(ctx, req)
	if err := resp.Complete(req); err != nil {
		rv.log.Error(err, "encoding the patch", "requestID", req.UID)
		resp = admission.Errored(http.StatusInternalServerError, errors.New("unable to encode the response"))
		resp.UID = req.UID
	}
	writeReview(w, apiVersion, kind, resp)
}

// echoed are the apiVersion and kind of the answer, as controller-runtime
// wrote them: the request's apiVersion read as a group/version (an error
// for more than one "/", "/v1" written "v1"), and admission.k8s.io/v1
// AdmissionReview when the request names neither.
func echoed(apiVersion, kind string) (string, string, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	switch {
	case err != nil:
		return "", "", err
	case gv.Empty() && kind == "":
		return admissionv1.SchemeGroupVersion.String(), "AdmissionReview", nil
	case gv.Group == "":
		return gv.Version, kind, nil // no copy: a suffix of apiVersion
	}
	return apiVersion, kind, nil // group/version as written
}

// readReview reads the body, refusing one past maxReviewBytes. The API
// server sends Content-Length: the body is then read into one buffer of
// exactly its size, not grown from 512 bytes by doubling.
func readReview(r *http.Request) ([]byte, int, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, http.StatusBadRequest, errors.New("request body is empty")
	}
	defer func() { _ = r.Body.Close() }()
	if r.ContentLength > maxReviewBytes {
		return nil, http.StatusRequestEntityTooLarge, errTooLarge
	}
	var body []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= exactReviewBytes {
		// net/http's body ends at Content-Length: nothing more to read.
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		// A larger claim is not believed before the bytes arrive: a
		// client claiming 7 MiB and sending little must not hold 7 MiB.
		b := bytes.NewBuffer(make([]byte, 0, exactReviewBytes))
		_, err = b.ReadFrom(&io.LimitedReader{R: r.Body, N: maxReviewBytes + 1})
		body = b.Bytes()
	}
	switch {
	case err != nil:
		return nil, http.StatusBadRequest, fmt.Errorf("reading the request body: %w", err)
	case len(body) > maxReviewBytes:
		return nil, http.StatusRequestEntityTooLarge, errTooLarge
	}
	return body, 0, nil
}

// exactReviewBytes is the largest Content-Length read into a buffer of
// exactly its size (a review of a Pod with dozens of containers).
const exactReviewBytes = 64 << 10

var errTooLarge = fmt.Errorf("request entity is too large; limit is %d bytes", maxReviewBytes)

// request is the admission.Request the handlers read.
func (in *review) request() admission.Request {
	var req admission.Request
	if r := in.Request; r != nil {
		req.UID, req.Kind, req.Resource, req.SubResource = r.UID, r.Kind, r.Resource, r.SubResource
		req.Name, req.Namespace, req.Operation, req.DryRun = r.Name, r.Namespace, r.Operation, r.DryRun
		req.UserInfo.Username = r.UserInfo.Username
		req.Object.Raw, req.OldObject.Raw = r.Object, r.OldObject
	}
	return req
}

// responseBuffers hold encoded responses between the encoder and the
// connection's own buffer: one per review in flight, not one per review.
var responseBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledResponse keeps a rare huge response (thousands of warnings)
// from pinning its buffer in the pool.
const maxPooledResponse = 64 << 10

// writeReview writes resp as an AdmissionReview of apiVersion and kind
// (none for a request that was not a review, as controller-runtime wrote
// its errors).
func writeReview(w http.ResponseWriter, apiVersion, kind string, resp admission.Response) {
	p := responseBuffers.Get().(*[]byte)
	b := appendReview((*p)[:0], apiVersion, kind, &resp.AdmissionResponse)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	if cap(b) <= maxPooledResponse {
		*p = b
		responseBuffers.Put(p)
	}
}

// appendReview encodes what encoding/json makes of an AdmissionReview of
// r, field by field without reflection; a status with details or list
// metadata (pullsafe sets neither) goes through encoding/json.
func appendReview(b []byte, apiVersion, kind string, r *admissionv1.AdmissionResponse) []byte {
	b = append(b, '{')
	if kind != "" {
		b = appendJSONString(append(b, `"kind":`...), kind)
		b = append(b, ',')
	}
	if apiVersion != "" {
		b = appendJSONString(append(b, `"apiVersion":`...), apiVersion)
		b = append(b, ',')
	}
	b = appendJSONString(append(b, `"response":{"uid":`...), string(r.UID))
	b = strconv.AppendBool(append(b, `,"allowed":`...), r.Allowed)
	if st := r.Result; st != nil {
		b = appendStatus(append(b, `,"status":`...), st)
	}
	if len(r.Patch) > 0 { // omitempty
		b = append(b, `,"patch":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.Patch)
		b = append(b, '"')
	}
	if r.PatchType != nil {
		b = appendJSONString(append(b, `,"patchType":`...), string(*r.PatchType))
	}
	if len(r.AuditAnnotations) > 0 {
		keys := make([]string, 0, len(r.AuditAnnotations))
		for k := range r.AuditAnnotations {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"auditAnnotations":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = appendJSONString(append(b, ':'), r.AuditAnnotations[k])
		}
		b = append(b, '}')
	}
	if len(r.Warnings) > 0 {
		b = append(b, `,"warnings":[`...)
		for i, w := range r.Warnings {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, w)
		}
		b = append(b, ']')
	}
	return append(b, "}}\n"...)
}

func appendStatus(b []byte, st *metav1.Status) []byte {
	if st.Details != nil || st.ListMeta != (metav1.ListMeta{}) || st.TypeMeta != (metav1.TypeMeta{}) {
		enc, err := json.Marshal(st)
		if err != nil {
			return append(b, "{}"...)
		}
		return append(b, enc...)
	}
	b = append(b, `{"metadata":{}`...)
	if st.Status != "" {
		b = appendJSONString(append(b, `,"status":`...), st.Status)
	}
	if st.Message != "" {
		b = appendJSONString(append(b, `,"message":`...), st.Message)
	}
	if st.Reason != "" {
		b = appendJSONString(append(b, `,"reason":`...), string(st.Reason))
	}
	if st.Code != 0 {
		b = strconv.AppendInt(append(b, `,"code":`...), int64(st.Code), 10)
	}
	return append(b, '}')
}

// appendJSONString quotes s as encoding/json does (HTML characters, U+2028
// and U+2029 escaped, invalid UTF-8 as U+FFFD): a warning or message quotes
// a user's object and a registry's words.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
}

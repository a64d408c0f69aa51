package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// TestConcurrentReviewsKeepTheirAnswers: reviews in flight at once over
// HTTP/1.1 and HTTP/2 each get their own answer, whole, while the
// response buffers go back to the pool and out again (an answer written
// from a buffer another review already took would carry that review's UID
// or warnings). Sizes vary across the pool's cap so buffers are reused at
// every length.
func TestConcurrentReviewsKeepTheirAnswers(t *testing.T) {
	h := NewReviews(admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		// The name says how long the warning is: some answers outgrow the
		// pool's cap (maxPooledResponse) and are not pooled.
		var n int
		_, _ = fmt.Sscan(req.Name, &n)
		return admission.Allowed("").WithWarnings(strings.Repeat(string(req.UID[len(req.UID)-1]), n))
	}), logr.Discard())
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
			tr.Protocols = new(http.Protocols)
			tr.Protocols.SetHTTP1(!h2)
			tr.Protocols.SetHTTP2(h2)
			client := &http.Client{Transport: tr}
			sizes := []int{1, 100, 4 << 10, 40 << 10, maxPooledResponse + 1}
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 40 {
						uid := fmt.Sprintf("u-%d-%d-%c", g, i, 'a'+rune((g*40+i)%26))
						size := sizes[(g+i)%len(sizes)]
						body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid + `","name":"` + fmt.Sprint(size) + `"}}`
						resp, err := client.Post(srv.URL+"/validate", "application/json", bytes.NewReader([]byte(body)))
						if err != nil {
							errs <- err
							return
						}
						if (resp.ProtoMajor == 2) != h2 {
							errs <- fmt.Errorf("%s: answered over %s", uid, resp.Proto)
						}
						raw, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						var out admissionv1.AdmissionReview
						if err := json.Unmarshal(raw, &out); err != nil || out.Response == nil {
							errs <- fmt.Errorf("%s: answer %.200q: %v", uid, raw, err)
							return
						}
						want := strings.Repeat(uid[len(uid)-1:], size)
						if out.Response.UID != types.UID(uid) || len(out.Response.Warnings) != 1 || out.Response.Warnings[0] != want {
							errs <- fmt.Errorf("%s: answered uid %q, %d warnings (first %.40q), want its own", uid, out.Response.UID, len(out.Response.Warnings), out.Response.Warnings)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

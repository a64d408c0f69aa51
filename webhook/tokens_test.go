package webhook

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// TestServiceAccountTokensRequestedOncePerAccountAndAudience: the
// TokenRequest names the account's UID and the audience, binds no object
// (the Pod does not exist at admission), and its token serves the next
// reviews until 80% of its lifetime.
func TestServiceAccountTokensRequestedOncePerAccountAndAudience(t *testing.T) {
	var got []authenticationv1.TokenRequest
	now := time.Unix(1e9, 0)
	c := fake.NewClientBuilder().WithInterceptorFuncs(interceptor.Funcs{
		SubResourceCreate: func(_ context.Context, _ client.Client, sub string, obj, sr client.Object, _ ...client.SubResourceCreateOption) error {
			tr := sr.(*authenticationv1.TokenRequest)
			got = append(got, *tr.DeepCopy())
			tr.Status.Token = fmt.Sprintf("%s-%s-%d", sub, obj.GetName(), len(got))
			tr.Status.ExpirationTimestamp = metav1.NewTime(now.Add(time.Hour))
			return nil
		},
	}).Build()
	tokens := NewServiceAccountTokens(c)
	tokens.now = func() time.Time { return now }
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api", UID: "uid-1"}}
	ask := func(sa *corev1.ServiceAccount, aud string) string {
		t.Helper()
		tok, err := tokens.Token(context.Background(), sa, aud)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := ask(sa, "sts.amazonaws.com")
	if again := ask(sa, "sts.amazonaws.com"); again != first || len(got) != 1 {
		t.Errorf("second review: token %q (first %q), %d requests, want the cached one", again, first, len(got))
	}
	ask(sa, "other-audience")
	recreated := sa.DeepCopy()
	recreated.UID = "uid-2"
	ask(recreated, "sts.amazonaws.com")
	now = now.Add(48 * time.Minute)
	ask(sa, "sts.amazonaws.com")
	want := []authenticationv1.TokenRequest{
		{ObjectMeta: metav1.ObjectMeta{UID: "uid-1"}, Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sts.amazonaws.com"}}},
		{ObjectMeta: metav1.ObjectMeta{UID: "uid-1"}, Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"other-audience"}}},
		{ObjectMeta: metav1.ObjectMeta{UID: "uid-2"}, Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sts.amazonaws.com"}}},
		{ObjectMeta: metav1.ObjectMeta{UID: "uid-1"}, Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sts.amazonaws.com"}}},
	}
	for i := range got {
		got[i].Status = authenticationv1.TokenRequestStatus{}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TokenRequests (-want +got):\n%s", diff)
	}
}

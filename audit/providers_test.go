package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/pullsafe/pullsafe/audit"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/webhook"
)

// TestPassAsEachPodsServiceAccount: a credential provider takes the pod's
// service-account token and gives the registry's credentials only to
// service account "puller". Pods without pull secrets in two namespaces,
// one running as puller, run the same image: the audit must check each as
// its own service account, as the kubelet pulls it, never one namespace's
// Pods with the identity of another's.
func TestPassAsEachPodsServiceAccount(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	reg.SetAuth("basic")
	image := reg.Host + "/team/app:v1"

	config, dir := reg.TokenProviderFiles(t)
	cp, err := registry.LoadCredentialProviders(config, dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := registry.NewResolver(registry.WithAllowLoopback(true), registry.WithLookupTimeout(10*time.Second), registry.WithCredentialProviders(cp))
	if err != nil {
		t.Fatal(err)
	}
	checker := policy.NewChecker(policy.DefaultConfig(), res)

	var objs []client.Object
	for _, x := range []struct{ ns, sa string }{{"alpha", "nobody"}, {"beta", "puller"}, {"gamma", "nobody"}} {
		objs = append(objs, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: x.ns, Name: x.sa, UID: types.UID("uid-" + x.ns + "-" + x.sa)}})
		for _, o := range deployment(x.ns, "web", image, 2) {
			if p, ok := o.(*corev1.Pod); ok {
				p.Spec.ServiceAccountName = x.sa
			}
			objs = append(objs, o)
		}
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		SubResourceCreate: func(_ context.Context, _ client.Client, _ string, obj, sr client.Object, _ ...client.SubResourceCreateOption) error {
			tr := sr.(*authenticationv1.TokenRequest)
			tr.Status.Token = "token-" + obj.GetName()
			tr.Status.ExpirationTimestamp = metav1.NewTime(time.Now().Add(time.Hour))
			return nil
		},
	}).Build()
	cluster := webhook.NewClientCluster(c, c)
	cluster.SetTokens(webhook.NewServiceAccountTokens(c))
	a := audit.New(c, cluster, func() *policy.Checker { return checker }, "pullsafe-system", newFakeClock().option())
	r, err := a.Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, res := range r.Results {
		for _, f := range res.Findings {
			got = append(got, res.Owner.Namespace+" "+string(f.Rule))
		}
	}
	if diff := cmp.Diff([]string{"alpha unauthorized", "gamma unauthorized"}, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
}

package policy

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// tokenProviders is a credential provider with tokenAttributes for host
// whose plugin answers the registry's credentials only for the token of
// service account "puller", and no credentials for any other.
func tokenProviders(t *testing.T, reg *registrytest.Registry) *registry.CredentialProviders {
	t.Helper()
	config, dir := reg.TokenProviderFiles(t)
	cp, err := registry.LoadCredentialProviders(config, dir)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// podAs is a Pod in ns running image as service account sa, with no pull
// secrets: its credentials are the provider's for sa's token.
func podAs(ns, sa, image string) Input {
	in := podIn(ns, image)
	in.Workload.Spec.ServiceAccountName = sa
	kc := registry.NewKeychain(nil)
	kc.SetIdentity(registry.PodIdentity{Namespace: ns, ServiceAccount: sa,
		GetServiceAccount: func(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
			return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)}}, nil
		},
		Token: func(_ context.Context, sa *corev1.ServiceAccount, _ string) (string, error) {
			return "token-" + sa.Name, nil
		},
	})
	in.Credentials.Keychain = kc
	return in
}

// TestProviderLookupsNotSharedAcrossServiceAccounts: with a credential
// provider that takes the pod's service-account token, what a lookup is
// answered depends on the service account, not only on the image and the
// pull secrets. Namespace "a"'s lookup, as an account the provider gives
// nothing, is in flight (its anonymous request held at the registry) when
// namespace "b" asks for the same image as "puller", which the provider
// gives the registry's credentials: b must get its own answer (the image
// resolves), never join a's (unauthorized: a false denial, and one
// tenant's identity deciding another's verdict).
func TestProviderLookupsNotSharedAcrossServiceAccounts(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("shop/api", "v1", "linux", "amd64")
	reg.SetAuth("basic")
	var held atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	unhold := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unhold)
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/") && r.Header.Get("Authorization") == "" {
			held.Add(1)
			<-release
		}
		return false
	})
	res, err := registry.NewResolver(registry.WithAllowLoopback(true), registry.WithLookupTimeout(30*time.Second),
		registry.WithCredentialProviders(tokenProviders(t, reg)))
	if err != nil {
		t.Fatal(err)
	}
	c := NewChecker(DefaultConfig(), res)
	image := reg.Host + "/shop/api:v1"

	var va *Verdict
	aDone := make(chan struct{})
	go func() { defer close(aDone); va = c.Check(context.Background(), podAs("a", "nobody", image)) }()
	until(t, "namespace a's anonymous lookup is at the registry", func() bool { return held.Load() == 1 })

	var vb *Verdict
	var bDone atomic.Bool
	go func() { vb = c.Check(context.Background(), podAs("b", "puller", image)); bDone.Store(true) }()
	until(t, "namespace b's lookup is answered or joined a's", func() bool { return bDone.Load() || c.lookups.joinedAny() })
	unhold()
	<-aDone
	until(t, "namespace b's review returns", bDone.Load)

	if vb.Decision() == DecisionDeny {
		t.Errorf("namespace b (service account puller, which the provider gives credentials) denied:\n%s", vb.DenialMessage())
	}
	if va.Decision() != DecisionDeny || !strings.Contains(va.DenialMessage(), "service account a/nobody") {
		t.Errorf("namespace a (service account nobody, which the provider gives nothing) not denied naming its account: %s\n%s", va.Decision(), va.DenialMessage())
	}
}

// joinedAny reports whether a lookup in flight was joined.
func (l *Lookups) joinedAny() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.flights {
		if f.joined > 0 {
			return true
		}
	}
	return false
}

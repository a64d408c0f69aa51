package registry

import (
	"context"
	"fmt"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// BenchmarkResolveCached is the admission hot path: the answer is in the cache.
func BenchmarkResolveCached(b *testing.B) {
	tr := registrytest.New(b)
	tr.Image("team/api", "v1", "linux", "amd64")
	r := newTestResolver(b)
	ref := tr.Host + "/team/api:v1"
	ctx := context.Background()
	if _, err := r.Resolve(ctx, ref, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Resolve(ctx, ref, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeychainLookup50 matches an image against 50 pull secrets.
func BenchmarkKeychainLookup50(b *testing.B) {
	var secrets []*corev1.Secret
	for i := range 50 {
		secrets = append(secrets, dockerSecret(fmt.Sprintf("s%d", i), map[string]string{
			fmt.Sprintf("registry%d.corp.io", i): "u", fmt.Sprintf("*.team%d.corp.io:5000/app", i): "v"}))
	}
	kc := NewKeychain(secrets)
	b.ReportAllocs()
	for b.Loop() {
		if len(kc.Lookup("registry49.corp.io/team/api")) != 1 {
			b.Fatal("no match")
		}
	}
}

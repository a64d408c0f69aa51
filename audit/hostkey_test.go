package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// The audit waits for a registry's budget under the host its requests are
// charged to, however an image spells that host: host names are
// case-insensitive, so "LOCALHOST:5000/app" is sent to localhost:5000. A
// wait keyed by the spelling finds a bucket no request ever charged and
// never holds the audit back.
func TestTurnWaitsWhereRequestsAreCharged(t *testing.T) {
	reg := registrytest.New(t)
	reg.Image("team/app", "v1", "linux", "amd64")
	reg.Image("team/app", "v2", "linux", "amd64")
	_, port, _ := strings.Cut(reg.Host, ":")
	res, err := registry.NewResolver(registry.WithAllowLoopback(true), registry.WithLookupTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	admission := policy.NewChecker(policy.DefaultConfig(), res)
	for _, spelled := range []string{"localhost:" + port, "LOCALHOST:" + port, "LocalHost:" + port} {
		now := time.Unix(1_700_000_000, 0)
		waits := 0
		b := &background{next: res, admission: admission, current: func() *policy.Checker { return admission },
			budget: newBudget(1, func() time.Time { return now }), poll: time.Second,
			sleep:  func(_ context.Context, d time.Duration) error { waits++; now = now.Add(d); return nil },
			images: map[imageKey]resolved{}, platforms: map[string]platforms{}, paths: map[string]error{}}
		// The first lookup goes at once and spends the bucket (1 a minute).
		if _, err := b.Resolve(context.Background(), "localhost:"+port+"/team/app:v1", registry.NewKeychain(nil)); err != nil {
			t.Fatal(err)
		}
		image := spelled + "/team/app:v2"
		if _, err := b.Resolve(context.Background(), image, registry.NewKeychain(nil)); err != nil {
			t.Fatal(err)
		}
		if waits == 0 {
			t.Errorf("%s: looked up at once after a lookup of localhost:%s spent its budget, want a wait", image, port)
		}
	}
}

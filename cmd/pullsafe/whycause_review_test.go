package main

import (
	"context"
	"testing"
	"time"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// TestExplainSkippedRegistryIsLookedUp: an image of a registry in
// registries.skip was never looked up; why must not say "the registry
// answered now" for it.
func TestExplainSkippedRegistryIsLookedUp(t *testing.T) {
	cfg, err := policy.LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Registries.Skip = []string{"127.0.0.1:1/*"}
	whyConfig(cfg)
	res, err := registry.NewResolver(registry.WithAllowLoopback(true), registry.WithLookupTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	checker := policy.NewChecker(cfg, res)
	pod := whyPodOf("127.0.0.1:1/team/api:v1", "ImagePullBackOff", "Back-off", "")
	w := workloadOf(t, pod)
	stuck, _ := stuckImages(pod, w, nil)
	v := checker.Check(context.Background(), policy.Input{Workload: w, Containers: w.Containers, Mode: policy.ModeEnforce,
		Credentials: policy.Credentials{Keychain: registry.NewKeychain(nil)}})
	ex := explain(stuck[0], findingsFor(v, stuck[0].Container), "node-a", false)
	if ex.Status == statusFineNow {
		t.Errorf("a registry never asked is reported fine: %+v", ex)
	}
}

package diagnose

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// explainNow explains pod's one stuck image as why does, with why's
// config made from cfg (after edit) and a short lookup timeout.
func explainNow(t *testing.T, edit func(*policy.Config), pod *corev1.Pod) Explanation {
	t.Helper()
	cfg, err := policy.LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	Configure(cfg)
	res, err := registry.NewResolver(registry.WithAllowLoopback(true), registry.WithLookupTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	w := workloadOf(t, pod)
	stuck, _ := stuckImages(pod, w, nil)
	if len(stuck) != 1 {
		t.Fatalf("stuck %d images, want 1", len(stuck))
	}
	v := policy.NewChecker(cfg, res).Check(context.Background(), policy.Input{Workload: w, Containers: w.Containers, Mode: policy.ModeEnforce,
		Credentials: policy.Credentials{Keychain: registry.NewKeychain(nil)}})
	return explain(stuck[0], findingsFor(v, stuck[0].Container), pod.Spec.NodeName, false)
}

// TestExplainSkippedRegistryIsLookedUp: an image of a registry in
// registries.skip was never looked up; why must not say "the registry
// answered now" for it.
func TestExplainSkippedRegistryIsLookedUp(t *testing.T) {
	ex := explainNow(t, func(cfg *policy.Config) { cfg.Registries.Skip = []string{"127.0.0.1:1/*"} },
		podOf("127.0.0.1:1/team/api:v1", "ImagePullBackOff", "Back-off", ""))
	if ex.Status == StatusFineNow {
		t.Errorf("a registry never asked is reported fine: %+v", ex)
	}
}

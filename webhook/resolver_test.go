package webhook

import (
	"context"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// In a pod, loopback is pullsafe itself: the server refuses it unless
// registries.allowLoopback says otherwise (out of cluster, the test bed).
func TestNewResolverRefusesLoopbackUnlessAllowed(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("team/api", "v1", "linux", "amd64")
	tests := []struct {
		name  string
		allow *bool
		want  registry.Reason
	}{
		{"unset", nil, registry.Unreachable},
		{"false", ptr.To(false), registry.Unreachable},
		{"true", ptr.To(true), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := policy.DefaultConfig()
			cfg.Registries.AllowLoopback = tt.allow
			res, err := NewResolver(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = res.Resolve(context.Background(), tr.Host+"/team/api:v1", nil)
			if got := registry.ReasonOf(err); got != tt.want {
				t.Fatalf("reason = %q (%v), want %q", got, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "registries.allowLoopback") {
				t.Errorf("the refusal does not say how to allow it: %v", err)
			}
		})
	}
}

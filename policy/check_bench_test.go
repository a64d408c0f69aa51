package policy

import (
	"context"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// BenchmarkCheckCached is the policy's share of a review whose answers are
// all in the resolver's memory, the shape of the webhook's
// ReviewCachedPod3 (an amd64-only image, a multi-arch index, Docker Hub
// through a mirror; nodes amd64, amd64, arm64; pinned): Check, then the
// verdict's warnings and annotations as the validating webhook sends them.
// Pod30 is the same with 30 containers of one image.
func BenchmarkCheckCached(b *testing.B) {
	reg := registrytest.New(b)
	reg.Image("team/api", "v1.4.1", "linux", "amd64")
	reg.Index("multi/app", "v1", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"})
	reg.Image("library/nginx", "1.27", "linux", "amd64")
	cfg := DefaultConfig()
	cfg.Registries.Mirrors = map[string][]string{"docker.io": {reg.Host}}
	res, err := registry.NewResolver(registry.WithMirrors(cfg.Registries.Mirrors), registry.WithAllowLoopback(true),
		registry.WithLookupTimeout(5*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	c := NewChecker(cfg, res)
	nodes := []Node{node("node-0", "amd64"), node("node-1", "amd64"), node("node-2", "arm64")}
	api := reg.Host + "/team/api:v1.4.1"
	pod30 := make([]string, 30)
	for i := range pod30 {
		pod30[i] = api
	}
	for _, bc := range []struct {
		name   string
		images []string
	}{
		{"Pod3", []string{api, reg.Host + "/multi/app:v1", "nginx:1.27"}},
		{"Pod30", pod30},
	} {
		in := podWith(bc.images)
		in.Nodes, in.Pin = nodes, Pinning{On: true}
		ctx := context.Background()
		if v := c.Check(ctx, in); v.Decision() != DecisionWarn || len(v.Pins) != len(bc.images) {
			b.Fatalf("warm-up: decision %s, %d pins, findings %+v", v.Decision(), len(v.Pins), v.Findings)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v := c.Check(ctx, in)
				if len(v.Warnings()) == 0 || len(v.Annotations()) == 0 {
					b.Fatalf("no warnings: %+v", v)
				}
			}
		})
	}
}

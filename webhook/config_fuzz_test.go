package webhook

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// FuzzConfigReload feeds arbitrary bytes to a running config reload: load,
// validate, build the snapshot and its resolver (apply), then one review
// with what is in effect. Nothing may panic; a file that is refused leaves
// the config in effect as it was, with the warning every review carries;
// one that is applied validates. A config value that crashed `serve` on
// reload crash-looped every replica at once (they read one ConfigMap).
func FuzzConfigReload(f *testing.F) {
	head := "apiVersion: pullsafe.io/v1alpha1\nkind: Config\n"
	for _, s := range []string{
		head + "mode: enforce\n",
		head + "cache: {tagTTL: 50ns}\n",
		head + "cache: {size: 1, tagTTL: 1s, notFoundTTL: 1s}\n",
		head + "cache: {size: 100000, tagTTL: 24h, notFoundTTL: 1h}\n",
		head + "lookupTimeout: 100ms\noutageWindow: 0s\n",
		head + "outageWindow: 1ns\n",
		head + "registries: {mirrors: {docker.io: [harbor.corp/dockerhub]}}\n",
		head + "registries: {mirrors: {\"*\": [mirror.corp]}, insecure: [\"*\"]}\n",
		head + "registries: {mirrors: {docker.io: [\"http://mirror.local:5000\"]}, caBundles: {r.io: /dev/zero}}\n",
		head + "registries: {deniedNetworks: [0.0.0.0/0, \"::/0\"], skip: [\"*\"], nodeCredentials: [\"[\"]}\n",
		head + "workloads: [{apiGroup: argoproj.io, kind: Rollout, resource: rollouts, apiVersions: [v1alpha1], podTemplatePath: spec.template}]\n",
		head + "audit: {enabled: true, interval: 1m, requestsPerMinute: 600}\n",
		"", "\x00", "{}", "- a\n- b\n", "mode: [",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	file := filepath.Join(dir, "config.yaml")
	build := SnapshotBuilder{OwnNamespace: "pullsafe-system", NewResolver: func(cfg *policy.Config, prev *registry.Resolver) (*registry.Resolver, error) {
		return NewResolver(cfg, nil, registry.WithTransport(offline{}))
	}}.Build
	first, err := build(policy.DefaultConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	c := fake.NewClientBuilder().Build()
	f.Fuzz(func(t *testing.T, data []byte) {
		live := NewLiveConfig(first)
		if err := os.WriteFile(file, []byte(head+"mode: warn\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := NewReloader(file, live, build, nil)
		r.Reload(context.Background())
		before, _ := live.Load()
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r.Reload(context.Background())
		after, warning := live.Load()
		_, perr := policy.ParseConfig(data)
		switch {
		case after != before && perr != nil:
			t.Fatalf("a config that does not validate (%v) was applied", perr)
		case after == before && warning == "" && perr != nil:
			t.Fatalf("a refused config (%v) left no warning", perr)
		}
		h := NewLiveHandler(live, NewClientCluster(c, c), false, nil)
		resp := h.Handle(context.Background(), request(t, admissionv1.Create, pod("team-a", "registry.corp.io/team/api:v1"), nil, ""))
		if !resp.Allowed && resp.Result != nil && resp.Result.Code != 403 {
			t.Fatalf("review under the reloaded config errored: %+v", resp.Result)
		}
	})
}

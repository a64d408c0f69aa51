package registry

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/pullsafe/pullsafe/registry/registrytest"
)

// TestPlatformsByConfigMediaType: a runnable image's config, Docker's or
// OCI's (the two containerd's images.IsConfigType accepts), still gives
// its platform; a config of another type (an artifact: Helm chart, wasm)
// is not fetched and states none.
func TestPlatformsByConfigMediaType(t *testing.T) {
	tr := registrytest.New(t)
	s390x := []v1.Platform{{OS: "linux", Architecture: "s390x"}}
	for _, tc := range []struct {
		tag      string
		manifest types.MediaType
		config   types.MediaType
		want     []v1.Platform
	}{
		{"docker", types.DockerManifestSchema2, types.DockerConfigJSON, s390x},
		{"oci", types.OCIManifestSchema1, types.OCIConfigJSON, s390x},
		{"helm", types.OCIManifestSchema1, "application/vnd.cncf.helm.config.v1+json", nil},
		{"wasm", types.OCIManifestSchema1, "application/vnd.wasm.config.v0+json", nil},
	} {
		img := mutate.ConfigMediaType(mutate.MediaType(registrytest.PlatformImage(t, "linux", "s390x"), tc.manifest), tc.config)
		ref, err := name.NewTag(tr.Host+"/cfg/app:"+tc.tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		r := newTestResolver(t)
		ctx := context.Background()
		got, err := r.Resolve(ctx, ref.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.Platforms(ctx, got)
		if err != nil {
			t.Fatalf("%s: %v", tc.tag, err)
		}
		if diff := cmp.Diff(tc.want, p); diff != "" {
			t.Errorf("%s: platforms (-want +got):\n%s", tc.tag, diff)
		}
	}
}

package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pullsafe/pullsafe/policy"
)

// TestExplainNodePulledElsewhere: containerd names the host it asked in
// its errors (Head "https://HOST/v2/..."). When that is a mirror pullsafe
// was not told of, "the registry answered now" is about another registry
// than the node's: pullsafe cannot tell.
func TestExplainNodePulledElsewhere(t *testing.T) {
	const img = "docker.io/library/nginx:1.27"
	msg := func(host string) string {
		return `rpc error: code = NotFound desc = failed to pull and unpack image "` + img + `": failed to resolve reference "` + img +
			`": ` + host + `/library/nginx/manifests/1.27 not found; Head "https://` + host + `/v2/library/nginx/manifests/1.27": 404`
	}
	for _, tc := range []struct {
		name, host string
		mirrors    map[string][]string
		want       string
	}{
		{"the registry itself", "registry-1.docker.io", nil, statusFineNow},
		{"a mirror pullsafe was not told of", "mirror.corp.example", nil, statusCannotTell},
		{"a mirror from --config", "mirror.corp.example", map[string][]string{"docker.io": {"https://mirror.corp.example"}}, statusFineNow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			si := stuckImage{Container: policy.Container{Name: "app", Image: img, Source: policy.SourceContainer},
				Reason: "ErrImagePull", Message: msg(tc.host)}
			si.OtherHost = nodeAskedElsewhere(si, tc.mirrors)
			ex := explain(si, nil, "node-a", false)
			if d := cmp.Diff(tc.want, ex.Status); d != "" {
				t.Errorf("%+v\n(-want +got)\n%s", ex, d)
			}
		})
	}
}

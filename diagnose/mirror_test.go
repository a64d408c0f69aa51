package diagnose

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
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
		{"the registry itself", "registry-1.docker.io", nil, StatusFineNow},
		{"a mirror pullsafe was not told of", "mirror.corp.example", nil, StatusCannotTell},
		{"a mirror from --config", "mirror.corp.example", map[string][]string{"docker.io": {"https://mirror.corp.example"}}, StatusFineNow},
		// One host however written (registry.RegistryHost): HTTPS's port
		// and a mirror's path name the same host.
		{"the registry itself, HTTPS port written", "registry-1.docker.io:443", nil, StatusFineNow},
		{"a mirror from --config, port and path written", "mirror.corp.example", map[string][]string{"docker.io": {"https://Mirror.corp.example:443/v2"}}, StatusFineNow},
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

// TestWhyMirrorPodPullsWithNodeCredentials: the kubelet pulls a static
// Pod's images with the node's own credentials (policy.Pulled), which
// pullsafe cannot see. why on its mirror Pod must not blame the Pod's (or
// its absent service account's) secrets, nor say the kubelet pulls
// anonymously: an answer to an anonymous lookup cannot tell.
func TestWhyMirrorPodPullsWithNodeCredentials(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("infra/agent", "v1", "linux", "amd64")
	tr.SetAuth("basic")
	p := podOf(tr.Host+"/infra/agent:v1", "ImagePullBackOff", "", "")
	p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "3f1c"}
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-a", UID: "node-a-uid", Controller: ptr.To(true)}}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	e := &Explainer{cs: fake.NewClientset(), checker: testChecker(t), ns: "shop"}
	out, err := e.explainPod(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Images) != 1 {
		t.Fatalf("images %+v", out.Images)
	}
	ex := out.Images[0]
	if ex.Status != StatusCannotTell || strings.Contains(ex.Cause, "anonymously") || strings.Contains(ex.Cause, "imagePullSecrets") {
		t.Errorf("status %s, cause %q; want %s, naming the node's credentials", ex.Status, ex.Cause, StatusCannotTell)
	}
	if !strings.Contains(ex.Cause, "node's own credentials") {
		t.Errorf("cause %q does not say whose credentials the pull uses", ex.Cause)
	}
}

// TestWhyForgedMirrorPodUsesPodCredentials: a Pod whose Node owner names
// another UID than the cluster's node is no kubelet's mirror
// (policy.ConfirmMirror; NodeRestriction refuses it from a kubelet) and
// admission checks it with its own secrets. why must explain it the same
// way, not send its reader to the node's credentials.
func TestWhyForgedMirrorPodUsesPodCredentials(t *testing.T) {
	tr := registrytest.New(t)
	tr.Image("infra/agent", "v1", "linux", "amd64")
	tr.SetAuth("basic")
	p := podOf(tr.Host+"/infra/agent:v1", "ImagePullBackOff", "", "")
	p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "3f1c"}
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-a", UID: "forged", Controller: ptr.To(true)}}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	e := &Explainer{cs: fake.NewClientset(), checker: testChecker(t), ns: "shop",
		nodes: []policy.Node{{Name: "node-a", UID: "node-a-uid"}}}
	out, err := e.explainPod(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Images) != 1 {
		t.Fatalf("images %+v", out.Images)
	}
	if ex := out.Images[0]; ex.Status != StatusFails || strings.Contains(ex.Cause, "node's own credentials") {
		t.Errorf("status %s, cause %q; want %s with the Pod's (absent) pull secrets, as admission checks it", ex.Status, ex.Cause, StatusFails)
	}
}

// TestNodeAskedElsewhereMirrorKeyAsTheResolver: a registries.mirrors key
// is a registry as written, matched as pullsafe's resolver matches it
// (case and Docker Hub's names folded, a port kept): "myreg:443" and
// "myreg" are two registries there and in containerd's hosts dir
// (myreg_443_ or myreg:443, never myreg). A mirror of the other spelling was never asked for
// this image, so the node asking it is "elsewhere". An endpoint the node
// asked still drops :443 (the URL's default port).
func TestNodeAskedElsewhereMirrorKeyAsTheResolver(t *testing.T) {
	const mirror = "mirror.corp.example"
	msg := `failed to resolve reference: Head "https://` + mirror + `/v2/team/app/manifests/v1": 404`
	for _, tc := range []struct {
		name, image string
		mirrors     map[string][]string
		want        string
	}{
		{"key without the image's port", "myreg.example:443/team/app:v1", map[string][]string{"myreg.example": {"https://" + mirror}}, mirror},
		{"key with a port the image lacks", "myreg.example/team/app:v1", map[string][]string{"myreg.example:443": {"https://" + mirror}}, mirror},
		{"Docker Hub's key for registry-1.docker.io", "registry-1.docker.io/library/nginx:1", map[string][]string{"docker.io": {"https://" + mirror}}, ""},
		{"key in another case", "MyReg.example/team/app:v1", map[string][]string{"myreg.example": {"https://" + mirror}}, ""},
		{"key as written, mirror with port and path", "myreg.example:443/team/app:v1", map[string][]string{"myreg.example:443": {"https://Mirror.corp.example:443/v2"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			si := stuckImage{Container: policy.Container{Name: "app", Image: tc.image, Source: policy.SourceContainer},
				Reason: "ErrImagePull", Message: msg}
			if got := nodeAskedElsewhere(si, tc.mirrors); got != tc.want {
				t.Errorf("nodeAskedElsewhere = %q, want %q", got, tc.want)
			}
			// The reference: whether pullsafe's resolver asks the mirror
			// for this image (ggcr lowercases the registry it is given).
			res, err := registry.NewResolver(registry.WithMirrors(tc.mirrors))
			if err != nil {
				t.Fatal(err)
			}
			ref, err := registry.ParseReference(tc.image)
			if err != nil {
				t.Fatal(err)
			}
			if uses := res.HasMirror(strings.ToLower(ref.Domain)); uses != (tc.want == "") {
				t.Errorf("the resolver asks the mirror: %v; the test expects %v", uses, tc.want == "")
			}
		})
	}
}

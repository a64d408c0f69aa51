package policy

import (
	"context"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// podWithEverySource pulls from every place the kubelet pulls from: an init
// container, a sidecar, a container, an ephemeral container, and two image
// volumes (plus a volume that pulls nothing and one left empty).
const podWithEverySource = `{
	"initContainers": [{"name": "migrate", "image": "reg.example/a:1"}, {"name": "log", "image": "reg.example/b:1", "restartPolicy": "Always"}],
	"containers": [{"name": "app", "image": "reg.example/c:1"}],
	"ephemeralContainers": [{"name": "dbg", "image": "reg.example/d:1"}],
	"volumes": [
		{"name": "scratch", "emptyDir": {}},
		{"name": "models", "image": {"reference": "reg.example/models:v2", "pullPolicy": "Always"}},
		{"name": "filled-in-later", "image": {}},
		{"name": "data", "image": {"reference": "reg.example/data:latest"}}
	]}`

func TestExtractWorkloadEverySource(t *testing.T) {
	for _, tt := range []struct{ kind, json, base string }{
		{"Pod", `{"spec":` + podWithEverySource + `}`, "/spec"},
		{"Deployment", `{"spec":{"template":{"spec":` + podWithEverySource + `}}}`, "/spec/template/spec"},
		{"CronJob", `{"spec":{"jobTemplate":{"spec":{"template":{"spec":` + podWithEverySource + `}}}}}`, "/spec/jobTemplate/spec/template/spec"},
	} {
		w, err := ExtractWorkload(builtinGroupKind(tt.kind), []byte(tt.json))
		if err != nil {
			t.Fatal(err)
		}
		b := tt.base
		want := []Container{
			{Name: "migrate", Image: "reg.example/a:1", List: "initContainers", Source: SourceInit, Path: b + "/initContainers/0/image"},
			{Name: "log", Image: "reg.example/b:1", List: "initContainers", Source: SourceSidecar, Path: b + "/initContainers/1/image"},
			{Name: "app", Image: "reg.example/c:1", List: "containers", Source: SourceContainer, Path: b + "/containers/0/image"},
			{Name: "dbg", Image: "reg.example/d:1", List: "ephemeralContainers", Source: SourceEphemeral, Path: b + "/ephemeralContainers/0/image"},
			{Name: "models", Image: "reg.example/models:v2", List: "volumes", Source: SourceVolume, PullPolicy: "Always",
				Path: b + "/volumes/1/image/reference"},
			{Name: "data", Image: "reg.example/data:latest", List: "volumes", Source: SourceVolume,
				Path: b + "/volumes/3/image/reference"},
		}
		if d := cmp.Diff(want, w.Containers); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.kind, d)
		}
	}
}

// TestImageVolumePullPolicyDefaults: the API server defaults an image
// volume's pullPolicy as a container's (SetDefaults_Volume in
// pkg/apis/core/v1/defaults.go: Always for the tag latest, else
// IfNotPresent), and Never means no registry is contacted.
func TestImageVolumePullPolicyDefaults(t *testing.T) {
	w, err := ExtractWorkload(schema.GroupKind{Kind: "Pod"}, []byte(`{"spec":{"volumes":[
		{"name":"l","image":{"reference":"reg.example/m"}},
		{"name":"t","image":{"reference":"reg.example/m:v1"}},
		{"name":"d","image":{"reference":"reg.example/m@sha256:`+strings.Repeat("1", 64)+`"}},
		{"name":"n","image":{"reference":"reg.example/m:latest","pullPolicy":"Never"}}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range w.Containers {
		got = append(got, c.Name+"="+string(PullPolicy(c)))
	}
	if d := cmp.Diff([]string{"l=Always", "t=IfNotPresent", "d=IfNotPresent", "n=Never"}, got); d != "" {
		t.Errorf("pull policies (-want +got):\n%s", d)
	}
	if Contacts(w.Containers[3]) {
		t.Error("a volume with pullPolicy Never contacts the registry")
	}
}

func TestChangedImageVolumes(t *testing.T) {
	old, _ := ExtractWorkload(schema.GroupKind{Kind: "Pod"}, []byte(`{"spec":{"containers":[{"name":"models","image":"x:1"}],
		"volumes":[{"name":"models","image":{"reference":"m:1"}},{"name":"data","image":{"reference":"reg.example/d:1"}}]}}`))
	// Reordered volumes, one reference changed; a container of the same
	// name as a volume is another thing.
	cur, _ := ExtractWorkload(schema.GroupKind{Kind: "Pod"}, []byte(`{"spec":{"containers":[{"name":"models","image":"x:1"}],
		"volumes":[{"name":"data","image":{"reference":"reg.example/d:1"}},{"name":"models","image":{"reference":"m:2"}}]}}`))
	got := ChangedImages(cur, old)
	if len(got) != 1 || got[0].Name != "models" || got[0].Source != SourceVolume || got[0].Path != "/spec/volumes/1/image/reference" {
		t.Errorf("changed = %+v", got)
	}
}

// TestVolumeFindingsNameTheVolume: every rule that applies to a container
// applies to an image volume, and its messages say "volume", not
// "container"; the pin targets the volume's reference.
func TestVolumeFindingsNameTheVolume(t *testing.T) {
	const index = "application/vnd.oci.image.index.v1+json"
	res := &fakeResolver{
		images:    map[string]*registry.Image{"reg.example/models:v2": {Digest: digest1, Tag: "v2", MediaType: index}},
		platforms: map[v1.Hash][]v1.Platform{digest1: {linux("arm64")}},
		asked:     &asked{},
	}
	w, err := ExtractWorkload(schema.GroupKind{Kind: "Pod"}, []byte(`{"metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"reg.example/app:v1","imagePullPolicy":"Never"}],
		"volumes":[{"name":"models","image":{"reference":"reg.example/models:v2"}},
		{"name":"gone","image":{"reference":"reg.example/models:v3"}},
		{"name":"local","image":{"reference":"reg.example/models:v4","pullPolicy":"Never"}}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	v := NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: w.Containers,
		Mode: ModeEnforce, Pin: PinAll(), Nodes: []Node{node("n1", "amd64")}})
	// Looked up concurrently: in any order.
	if d := cmp.Diff([]string{"reg.example/models:v2", "reg.example/models:v3"}, res.asked.images, cmpopts.SortSlices(func(a, b string) bool { return a < b })); d != "" {
		t.Errorf("looked up (-want +got; pullPolicy Never is never looked up):\n%s", d)
	}
	msg := v.DenialMessage()
	for _, want := range []string{
		"would fail to pull 2 image(s)",
		`[platform] volume "models" image "reg.example/models:v2": offers linux/arm64 only`,
		`[not-found] volume "gone" image "reg.example/models:v3": manifest unknown`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("denial lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "container") {
		t.Errorf("denial calls a volume a container:\n%s", msg)
	}
	if got := v.Annotations()["findings"]; got != "not-found:deny:volume/gone,platform:deny:volume/models" {
		t.Errorf("findings annotation = %q", got)
	}
	want := []Pin{{Path: "/spec/volumes/0/image/reference", From: "reg.example/models:v2", To: "reg.example/models:v2@" + digest1.String()}}
	if d := cmp.Diff(want, v.Pins); d != "" {
		t.Errorf("pins (-want +got):\n%s", d)
	}
}

// TestSourcesInMessages: each kind of container is named as what it is;
// plain containers read as they always have.
func TestSourcesInMessages(t *testing.T) {
	w, err := ExtractWorkload(schema.GroupKind{Kind: "Pod"}, []byte(`{"spec":`+podWithEverySource+`}`))
	if err != nil {
		t.Fatal(err)
	}
	res := &fakeResolver{}
	v := NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce})
	var lines []string
	for _, f := range v.Findings {
		lines = append(lines, f.Line()[:strings.Index(f.Line(), ": ")])
	}
	want := []string{`init container "migrate" image "reg.example/a:1"`, `sidecar container "log" image "reg.example/b:1"`, `container "app" image "reg.example/c:1"`,
		`ephemeral container "dbg" image "reg.example/d:1"`, `volume "models" image "reg.example/models:v2"`, `volume "data" image "reg.example/data:latest"`}
	if d := cmp.Diff(want, lines); d != "" {
		t.Errorf("finding lines (-want +got):\n%s", d)
	}
	if got := v.Annotations()["findings"]; got != "not-found:deny:app,not-found:deny:ephemeral/dbg,not-found:deny:init/migrate,"+
		"not-found:deny:sidecar/log,not-found:deny:volume/data,not-found:deny:volume/models" {
		t.Errorf("findings annotation = %q", got)
	}
}

// TestVolumeMutableTagNamesItsField: a volume's pull policy is the field
// pullPolicy, not imagePullPolicy: the warning says which to change.
func TestVolumeMutableTagNamesItsField(t *testing.T) {
	res := &fakeResolver{images: map[string]*registry.Image{"reg.example/models:v2": {Digest: digest1, Tag: "v2"}}}
	w, err := ExtractWorkload(schema.GroupKind{Kind: "Pod"}, []byte(`{"spec":{"volumes":[{"name":"models","image":{"reference":"reg.example/models:v2"}}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	v := NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: w.Containers, Mode: ModeEnforce})
	want := []string{`pullsafe [mutable-tag] volume "models" image "reg.example/models:v2": mutable tag "v2" with pullPolicy IfNotPresent: ` +
		`nodes may run different bits (now sha256:111111111111…) — pin the digest`}
	if d := cmp.Diff(want, v.Warnings()); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
}

// TestVolumePlatformOnlyFromAnIndex: an index with no entry for the nodes
// refuses a volume as it refuses a container (every runtime fails to pick
// a manifest); a single manifest, whose content a volume mounts and never
// executes, is not checked for platform, while a container's is.
func TestVolumePlatformOnlyFromAnIndex(t *testing.T) {
	for _, tt := range []struct {
		name, mediaType string
		volumeDenied    bool
	}{
		{"OCI index", "application/vnd.oci.image.index.v1+json", true},
		{"Docker manifest list", "application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8", true},
		{"OCI manifest", "application/vnd.oci.image.manifest.v1+json", false},
		{"Docker manifest", "application/vnd.docker.distribution.manifest.v2+json", false},
		{"no Content-Type", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := &fakeResolver{
				images:    map[string]*registry.Image{"reg.example/arm:v1@sha256:" + digest1.Hex: {Digest: digest1, MediaType: tt.mediaType}},
				platforms: map[v1.Hash][]v1.Platform{digest1: {linux("arm64")}},
			}
			w, err := ExtractWorkload(schema.GroupKind{Kind: "Pod"}, []byte(`{"spec":{"containers":[{"name":"app","image":"reg.example/arm:v1@sha256:`+digest1.Hex+`"}],
				"volumes":[{"name":"models","image":{"reference":"reg.example/arm:v1@sha256:`+digest1.Hex+`"}}]}}`))
			if err != nil {
				t.Fatal(err)
			}
			v := NewChecker(DefaultConfig(), res).Check(context.Background(), Input{Workload: w, Containers: w.Containers,
				Mode: ModeEnforce, Nodes: []Node{node("n1", "amd64")}})
			var denied []string
			for _, f := range v.Findings {
				denied = append(denied, string(f.Rule)+" "+f.Source.String())
			}
			want := []string{"platform container"}
			if tt.volumeDenied {
				want = append(want, "platform volume")
			}
			if d := cmp.Diff(want, denied); d != "" {
				t.Errorf("findings (-want +got):\n%s", d)
			}
		})
	}
}

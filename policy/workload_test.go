package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	pod        = schema.GroupKind{Kind: "Pod"}
	deployment = schema.GroupKind{Group: "apps", Kind: "Deployment"}
)

func TestExtractWorkloadPathsForEveryKind(t *testing.T) {
	spec := `{"initContainers":[{"name":"i","image":"a:1"}],"containers":[{"name":"c","image":"b:1","imagePullPolicy":"Always"}]}`
	tests := []struct {
		kind       schema.GroupKind
		json, base string
	}{
		{pod, `{"metadata":{"name":"p"},"spec":` + spec + `}`, "/spec"},
		{deployment, `{"metadata":{"name":"d"},"spec":{"template":{"spec":` + spec + `}}}`, "/spec/template/spec"},
		{schema.GroupKind{Group: "batch", Kind: "CronJob"}, `{"metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"template":{"spec":` + spec + `}}}}}`, "/spec/jobTemplate/spec/template/spec"},
	}
	for _, tt := range tests {
		w, err := ExtractWorkload(tt.kind, []byte(tt.json))
		if err != nil {
			t.Fatal(err)
		}
		if len(w.Containers) != 2 || w.Containers[0].Path != tt.base+"/initContainers/0/image" ||
			w.Containers[1].Path != tt.base+"/containers/0/image" || w.Containers[1].PullPolicy != "Always" {
			t.Errorf("%s: %+v", tt.kind, w.Containers)
		}
		if w.Template != (tt.kind != pod) {
			t.Errorf("%s: Template = %v", tt.kind, w.Template)
		}
	}
	if w, err := ExtractWorkload(schema.GroupKind{Kind: "ConfigMap"}, []byte(`{}`)); w != nil || err != nil {
		t.Errorf("unchecked kind: %v %v", w, err)
	}
	if w, err := ExtractWorkload(deployment, []byte(`{"spec":{}}`)); err != nil || len(w.Containers) != 0 {
		t.Errorf("no template yet: %v %v", w, err)
	}
	if _, err := ExtractWorkload(deployment, []byte(`{"spec":{"template":{"spec":{"containers":"nope"}}}}`)); err == nil ||
		!strings.Contains(err.Error(), "spec.template.spec.containers") {
		t.Errorf("bad spec error = %v (must name where)", err)
	}
}

func TestChangedImages(t *testing.T) {
	old, _ := ExtractWorkload(pod, []byte(`{"spec":{"containers":[{"name":"a","image":"x:1"},{"name":"b","image":"y:1"}]}}`))
	cur, _ := ExtractWorkload(pod, []byte(`{"spec":{"containers":[{"name":"a","image":"x:1"},{"name":"b","image":"y:2"}],
		"ephemeralContainers":[{"name":"dbg","image":"z:1"}]}}`))
	got := ChangedImages(cur, old)
	if len(got) != 2 || got[0].Name != "b" || got[1].Name != "dbg" {
		t.Errorf("changed = %+v", got)
	}
	// A template moving off imagePullPolicy Never will now pull: look it up.
	old, _ = ExtractWorkload(deployment, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"x:1","imagePullPolicy":"Never"}]}}}}`))
	cur, _ = ExtractWorkload(deployment, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"x:1","imagePullPolicy":"Always"}]}}}}`))
	if got := ChangedImages(cur, old); len(got) != 1 {
		t.Errorf("Never -> Always: changed = %+v", got)
	}
	if got := ChangedImages(old, cur); len(got) != 0 {
		t.Errorf("Always -> Never: changed = %+v", got)
	}
}

// FuzzExtractWorkload: arbitrary object bytes never panic, and every
// container found has a JSON pointer under the kind's pod spec.
func FuzzExtractWorkload(f *testing.F) {
	f.Add("", "Pod", []byte(`{"spec":{"containers":[{"name":"c","image":"nginx"}]}}`))
	f.Add("batch", "CronJob", []byte(`{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[{"image":"a"}]}}}}}}`))
	f.Add("apps", "Deployment", []byte(`{"spec":{"template":null}}`))
	f.Add("batch", "Job", []byte(`[1,2]`))
	f.Add("argoproj.io", "Rollout", []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}`))
	f.Add("example.com", "Runner", []byte(`{"spec":{"runner":{"pod":{"containers":[{"image":"a"}]}}}}`))
	f.Add("example.com", "Runner", []byte(`{"spec":{"runner":[{"pod":1}]}}`))
	f.Add("", "Pod", []byte(`{"spec":{"initContainers":[{"image":"a","restartPolicy":"Always"}],"volumes":[{"name":"m","image":{"reference":"r:1"}},{"image":null}]}}`))
	f.Add("apps", "ReplicaSet", []byte(`{"metadata":{"ownerReferences":[{"kind":"Deployment","name":"d","controller":true},{"controller":null}],"annotations":{"kubernetes.io/config.mirror":""}},"spec":{"template":{"spec":{}}}}`))
	f.Add("argoproj.io", "Rollout", []byte(`{"metadata":{"ownerReferences":[{"controller":"yes"}]},"spec":{}}`))
	f.Fuzz(func(t *testing.T, group, kind string, raw []byte) {
		gk := schema.GroupKind{Group: group, Kind: kind}
		w, err := ExtractWorkload(gk, raw, fuzzWorkloads...)
		if err != nil || w == nil {
			return
		}
		var base string
		if path, ok := podSpecPaths[gk]; ok {
			base = pointer(path) + "/"
		} else if k, ok := customKind(gk, fuzzWorkloads); ok {
			path, tmpl := k.path()
			if tmpl {
				path = append(path, "spec")
			}
			base = pointer(path) + "/"
		} else {
			t.Fatalf("%v is not checked, yet extracted: %+v", gk, w)
		}
		for _, c := range w.Containers {
			suffix := "/image"
			if c.Source == SourceVolume {
				suffix = "/image/reference"
			}
			if !strings.HasPrefix(c.Path, base) || !strings.HasSuffix(c.Path, suffix) {
				t.Fatalf("container path %q outside %q", c.Path, base)
			}
		}
	})
}

// fuzzWorkloads are custom kinds for the fuzz targets: a template and a
// pod spec path.
var fuzzWorkloads = []WorkloadKind{
	{APIGroup: "argoproj.io", Kind: "Rollout", Resource: "rollouts", PodTemplatePath: "spec.template"},
	{APIGroup: "example.com", Kind: "Runner", Resource: "runners", PodSpecPath: "spec.runner.pod"},
}

// TestChangedImagesDuplicateNames: a configured kind has no API validation,
// so its template may repeat a volume's (or container's) name. An update
// that changes no image must look nothing up: an image already there is
// never a reason to refuse an unrelated change.
func TestChangedImagesDuplicateNames(t *testing.T) {
	gk := schema.GroupKind{Group: "argoproj.io", Kind: "Rollout"}
	obj := func(labels, vols, ctrs string) []byte {
		return []byte(`{"metadata":{"labels":{` + labels + `}},"spec":{"template":{"spec":{"containers":[` + ctrs + `],"volumes":[` + vols + `]}}}}`)
	}
	a := `{"name":"v","image":{"reference":"a:1"}}`
	b := `{"name":"v","image":{"reference":"b:1"}}`
	ca, cb := `{"name":"c","image":"a:1"}`, `{"name":"c","image":"b:1"}`
	for _, tc := range []struct {
		name     string
		old, cur []byte
		want     []string
	}{
		{"unchanged", obj(``, a+","+b, ca+","+cb), obj(`"x":"y"`, a+","+b, ca+","+cb), nil},
		{"swapped", obj(``, a+","+b, ca+","+cb), obj(``, b+","+a, cb+","+ca), nil},
		{"one new", obj(``, a+","+a, ``), obj(``, a+","+b, ``), []string{"b:1"}},
	} {
		old, err := ExtractWorkload(gk, tc.old, fuzzWorkloads...)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := ExtractWorkload(gk, tc.cur, fuzzWorkloads...)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range ChangedImages(cur, old) {
			got = append(got, c.Image)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: changed (-want +got):\n%s", tc.name, diff)
		}
	}
}

package policy

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// inputs are what the rules read of a workload: a decoder that loses any of
// it gives a false verdict without an error.
type inputs struct {
	Name, Namespace    string
	Template, Mirror   bool
	Controller         *OwnerRef
	Containers         []Container
	PullSecrets        []string
	ServiceAccount     string
	NodeName           string
	NodeSelector       map[string]string
	RequiredAffinity   *corev1.NodeSelector
	DeprecatedAccount  string
	EligibleArchsOfPod string // what the scheduler's matcher makes of the selection
	BuildUncertain     string // the platform rule's runtime class (buildUncertain)
}

func inputsOf(w *Workload) inputs {
	in := inputs{Name: w.Name, Namespace: w.Namespace, Template: w.Template, Mirror: w.Mirror, Controller: w.Controller,
		Containers: w.Containers, ServiceAccount: w.Spec.ServiceAccountName, DeprecatedAccount: w.Spec.DeprecatedServiceAccount,
		NodeName: w.Spec.NodeName, NodeSelector: w.Spec.NodeSelector, RequiredAffinity: requiredAffinity(w.Spec.Affinity)}
	for _, s := range w.Spec.ImagePullSecrets {
		in.PullSecrets = append(in.PullSecrets, s.Name)
	}
	in.EligibleArchsOfPod = eligibleArchs(&w.Spec)
	in.BuildUncertain = buildUncertain(&w.Spec)
	return in
}

// eligibleArchs runs the node selection through Eligible on a fixed set of
// nodes, so the comparison covers what the matcher reads, not only what
// the struct holds.
func eligibleArchs(spec *corev1.PodSpec) string {
	nodes := []Node{{Name: "a", Labels: map[string]string{"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "zone": "x"}},
		{Name: "b", Labels: map[string]string{"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64", "zone": "y"}}}
	out := ""
	for _, n := range Eligible(nodes, spec) {
		out += n.Name
	}
	return out
}

// typedInputs decodes raw the full way, into the API's own types, and
// derives the rules' inputs from them independently of the lean decoder:
// the oracle FuzzExtractWorkloadMatchesTyped holds ExtractWorkload to.
func typedInputs(gk schema.GroupKind, raw []byte) (inputs, bool) {
	var meta *metav1.ObjectMeta
	var spec *corev1.PodSpec
	var base string
	var pod *corev1.Pod
	decode := func(obj any) bool { return json.Unmarshal(raw, obj) == nil }
	switch gk {
	case schema.GroupKind{Kind: "Pod"}:
		pod = &corev1.Pod{}
		if !decode(pod) {
			return inputs{}, false
		}
		meta, spec, base = &pod.ObjectMeta, &pod.Spec, "/spec"
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		var o appsv1.Deployment
		if !decode(&o) {
			return inputs{}, false
		}
		meta, spec, base = &o.ObjectMeta, &o.Spec.Template.Spec, "/spec/template/spec"
	case schema.GroupKind{Group: "batch", Kind: "CronJob"}:
		var o batchv1.CronJob
		if !decode(&o) {
			return inputs{}, false
		}
		meta, spec, base = &o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec, "/spec/jobTemplate/spec/template/spec"
	default:
		return inputs{}, false
	}
	in := inputs{Name: meta.Name, Namespace: meta.Namespace, Template: pod == nil, NodeName: spec.NodeName,
		NodeSelector: spec.NodeSelector, ServiceAccount: spec.ServiceAccountName, DeprecatedAccount: spec.DeprecatedServiceAccount}
	if in.ServiceAccount == "" {
		in.ServiceAccount = spec.DeprecatedServiceAccount
	}
	if pod != nil {
		in.Mirror = MirrorPod(pod, nil) // before ConfirmMirror: no nodes refute it
	}
	if ctl := metav1.GetControllerOf(meta); ctl != nil {
		in.Controller = &OwnerRef{APIVersion: ctl.APIVersion, Kind: ctl.Kind, Name: ctl.Name, UID: string(ctl.UID), Controller: ctl.Controller}
	}
	for _, s := range spec.ImagePullSecrets {
		in.PullSecrets = append(in.PullSecrets, s.Name)
	}
	if spec.Affinity != nil && spec.Affinity.NodeAffinity != nil {
		in.RequiredAffinity = spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	lists := []struct {
		name string
		cs   []corev1.Container
		src  Source
	}{{"initContainers", spec.InitContainers, SourceInit}, {"containers", spec.Containers, SourceContainer}}
	for _, l := range lists {
		for i, c := range l.cs {
			src := l.src
			if src == SourceInit && ptr.Deref(c.RestartPolicy, "") == corev1.ContainerRestartPolicyAlways {
				src = SourceSidecar
			}
			in.Containers = append(in.Containers, Container{Name: c.Name, Image: c.Image, List: l.name, PullPolicy: c.ImagePullPolicy,
				Path: base + "/" + l.name + "/" + strconv.Itoa(i) + "/image", Source: src})
		}
	}
	for i, c := range spec.EphemeralContainers {
		in.Containers = append(in.Containers, Container{Name: c.Name, Image: c.Image, List: "ephemeralContainers", PullPolicy: c.ImagePullPolicy,
			Path: base + "/ephemeralContainers/" + strconv.Itoa(i) + "/image", Source: SourceEphemeral})
	}
	for i, v := range spec.Volumes {
		if v.Image != nil && v.Image.Reference != "" {
			in.Containers = append(in.Containers, Container{Name: v.Name, Image: v.Image.Reference, List: "volumes", PullPolicy: v.Image.PullPolicy,
				Path: base + "/volumes/" + strconv.Itoa(i) + "/image/reference", Source: SourceVolume})
		}
	}
	in.EligibleArchsOfPod = eligibleArchs(&corev1.PodSpec{NodeName: spec.NodeName, NodeSelector: spec.NodeSelector, Affinity: spec.Affinity})
	in.BuildUncertain = buildUncertain(&corev1.PodSpec{RuntimeClassName: spec.RuntimeClassName})
	return in, true
}

// realisticPod is a Pod as the API server sends it, with every field a
// rule reads and many it does not (preferred affinity, pod affinity,
// tolerations, probes, env).
func realisticPod() *corev1.Pod {
	always := corev1.ContainerRestartPolicyAlways
	term := corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"arm64"}}}}
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Annotations: map[string]string{"kubernetes.io/config.mirror": "x"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "a", UID: "n-1", Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{
			NodeName: "a", NodeSelector: map[string]string{"zone": "y"}, ServiceAccountName: "builder", DeprecatedServiceAccount: "builder",
			RuntimeClassName: ptr.To("runhcs-wcow-hypervisor"),
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}, {Name: ""}, {Name: "other"}},
			Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{term}},
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 1, Preference: term}}},
				PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "zone"}}}},
			Tolerations:    []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}},
			InitContainers: []corev1.Container{{Name: "init", Image: "reg.example/init:1"}, {Name: "log", Image: "reg.example/log:2", RestartPolicy: &always, ImagePullPolicy: corev1.PullAlways}},
			Containers: []corev1.Container{{Name: "app", Image: "reg.example/app:3", ImagePullPolicy: corev1.PullIfNotPresent,
				Env: []corev1.EnvVar{{Name: "A", Value: "b"}}, Ports: []corev1.ContainerPort{{ContainerPort: 80}}}},
			EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}},
			Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}},
				{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "reg.example/models:1", PullPolicy: corev1.PullNever}}},
				{Name: "empty-ref", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{}}}},
		}}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzExtractWorkloadMatchesTyped decodes objects both the lean way
// (ExtractWorkload) and the full way (the API's types) and requires the
// same rule inputs whenever the full way decodes: a field the lean decoder
// drops, misnames or reads from the wrong place fails here.
func FuzzExtractWorkloadMatchesTyped(f *testing.F) {
	p := realisticPod()
	f.Add("", "Pod", mustJSON(f, p))
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: p.Spec}
	tmpl.Spec.NodeName, tmpl.Spec.EphemeralContainers, tmpl.Spec.ServiceAccountName = "", nil, ""
	tmpl.Spec.DeprecatedServiceAccount = "legacy" // a manifest's alias: folded as the API server does
	f.Add("apps", "Deployment", mustJSON(f, &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", OwnerReferences: []metav1.OwnerReference{{Kind: "App", Name: "x", Controller: ptr.To(true)}}},
		Spec:       appsv1.DeploymentSpec{Template: tmpl}}))
	f.Add("batch", "CronJob", mustJSON(f, &batchv1.CronJob{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Name: "nightly"}, Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}))
	f.Add("", "Pod", []byte(`{"spec":{"Containers":[{"Image":"a","NAME":"c"}],"affinity":{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[]}},"imagePullSecrets":[{"name":"s"},{"name":"s"}]}}`))
	f.Add("", "Pod", []byte(`{"spec":{"containers":[{"image":"a"}],"containers":[{"image":"b"}],"serviceAccount":"x","serviceAccountName":""}}`))
	f.Add("apps", "Deployment", []byte(`{"spec":{"template":null}}`))
	f.Add("batch", "CronJob", []byte(`{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"nodeSelector":{"kubernetes.io/arch":"arm64"},"initContainers":[{"image":"a","restartPolicy":"Always"}]}}}}}}`))
	f.Fuzz(func(t *testing.T, group, kind string, raw []byte) {
		gk := schema.GroupKind{Group: group, Kind: kind}
		want, ok := typedInputs(gk, raw)
		if !ok {
			return // not a kind the oracle knows, or the API's types refuse it
		}
		w, err := ExtractWorkload(gk, raw)
		if err != nil {
			t.Fatalf("the API's types decode it, ExtractWorkload does not: %v", err)
		}
		if diff := cmp.Diff(want, inputsOf(w), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("rule inputs (-full decode +ExtractWorkload):\n%s", diff)
		}
	})
}

// TestExtractWorkloadKeepsRuntimeClassName: the platform rule reads the
// Pod's runtimeClassName (buildUncertain: a Hyper-V handler may pull
// another Windows build, so a build mismatch is "cannot verify", not a
// denial); a decoder that drops it turns that warning into a false denial.
func TestExtractWorkloadKeepsRuntimeClassName(t *testing.T) {
	const want = "runtimeClassName runhcs-wcow-hypervisor"
	for _, tc := range []struct {
		gk  schema.GroupKind
		raw string
	}{
		{schema.GroupKind{Kind: "Pod"}, `{"spec":{"runtimeClassName":"runhcs-wcow-hypervisor","containers":[{"name":"a","image":"mcr.microsoft.com/windows/nanoserver:ltsc2022"}]}}`},
		{schema.GroupKind{Group: "apps", Kind: "Deployment"}, `{"spec":{"template":{"spec":{"runtimeClassName":"runhcs-wcow-hypervisor","containers":[{"name":"a","image":"x"}]}}}}`},
	} {
		t.Run(tc.gk.Kind, func(t *testing.T) {
			w, err := ExtractWorkload(tc.gk, []byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := buildUncertain(&w.Spec); got != want {
				t.Errorf("buildUncertain of the decoded spec = %q, want %q", got, want)
			}
		})
	}
}

package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestPulled: which images the kubelet pulls for an object, the answer
// admission and the audit share.
func TestPulled(t *testing.T) {
	const spec = `"spec":{"containers":[{"name":"app","image":"a:1","imagePullPolicy":"IfNotPresent"},{"name":"always","image":"b:1","imagePullPolicy":"Always"}],` +
		`"ephemeralContainers":[{"name":"dbg","image":"d:1"}],"volumes":[{"name":"m","image":{"reference":"m:1","pullPolicy":"IfNotPresent"}}]}`
	const mirror = `"annotations":{"kubernetes.io/config.mirror":"x"},"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n1","uid":"u","controller":true}]`
	const owned = `"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-1","controller":true}]`
	started := &corev1.PodStatus{
		ContainerStatuses:          []corev1.ContainerStatus{{Name: "app", ImageID: "sha256:1"}, {Name: "always", ImageID: "sha256:2"}},
		EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "dbg", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}}},
	}
	waiting := &corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}}}}
	// The kubelet keeps the last container's status (its ImageID) and sets
	// the reason it waits (convertToAPIContainerStatuses): a bare Pod whose
	// image was changed in place, or removed from the node, waits on a pull
	// with the old image's ID.
	repulling := &corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ImageID: "sha256:1",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}}
	crashing := &corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ImageID: "sha256:1",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}}
	tests := []struct {
		name   string
		gk     schema.GroupKind
		meta   string
		status *corev1.PodStatus
		want   []string
	}{
		{"admission: everything", pod, `"name":"p"`, nil, []string{"app", "always", "dbg", "m"}},
		{"mirror pod: nothing", pod, mirror, nil, nil},
		{"mirror pod running: nothing", pod, mirror, started, nil},
		{"mirror annotation on a pod its node does not control: everything", pod, `"annotations":{"kubernetes.io/config.mirror":"x"}`, nil, []string{"app", "always", "dbg", "m"}},
		{"controller's pod, started: all but the ephemeral container", pod, owned, started, []string{"app", "always", "m"}},
		{"bare pod, started: Always, and the volume", pod, `"name":"p"`, started, []string{"always", "m"}},
		{"bare pod, pull failing: still pulled", pod, `"name":"p"`, waiting, []string{"app", "always", "dbg", "m"}},
		{"bare pod, pulling again after a start: pulled", pod, `"name":"p"`, repulling, []string{"app", "always", "dbg", "m"}},
		{"bare pod, crash-looping: holds its image", pod, `"name":"p"`, crashing, []string{"always", "dbg", "m"}},
		{"template: everything", deployment, `"name":"d"`, started, []string{"app", "always", "dbg", "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := spec
			if tt.meta == mirror {
				body = strings.Replace(spec, `"spec":{`, `"spec":{"nodeName":"n1",`, 1)
			}
			if tt.gk == deployment {
				body = `"spec":{"template":{` + spec + `}}`
			}
			w, err := ExtractWorkload(tt.gk, []byte(`{"metadata":{`+tt.meta+`},`+body+`}`))
			if err != nil {
				t.Fatal(err)
			}
			before := len(w.Containers)
			var got []string
			for _, c := range Pulled(w, tt.status) {
				got = append(got, c.Name)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("pulled (-want +got):\n%s", d)
			}
			if len(w.Containers) != before {
				t.Errorf("Pulled changed the workload's containers")
			}
		})
	}
}

package diagnose

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pullsafe/pullsafe/policy"
)

// FuzzWhyKubeletText: what the kubelet writes into a pod's statuses and
// events quotes registry answers, so it is hostile. Whatever it says, why
// never panics, and its text and JSON output stay printable and bounded.
func FuzzWhyKubeletText(f *testing.F) {
	f.Add("ErrImagePull", `failed to pull and unpack image "reg.example/app:v1": failed to resolve reference: not found`,
		"Failed", `Failed to pull image "reg.example/app:v1": rpc error: code = NotFound`, "reg.example/app:v1")
	f.Add("ImagePullBackOff", `Back-off pulling image "nginx"`, "BackOff", "Back-off pulling image \"nginx:latest\"\x1b[2J", "nginx")
	f.Add("ErrImageNeverPull", "Container image \"x\" is not present with pull policy of Never", "ErrImageNeverPull", "\u202e", "x")
	f.Add("InvalidImageName", "Failed to apply default image tag \"A//b\": couldn't parse image name", "InspectFailed", "no space left on device", "A//b")
	f.Fuzz(func(t *testing.T, reason, message, eventReason, eventMessage, image string) {
		raw := []byte(`{"metadata":{"name":"p"},"spec":{"containers":[{"name":"app","image":` + quoteJSON(image) + `}],` +
			`"volumes":[{"name":"models","image":{"reference":` + quoteJSON(image) + `}}]}}`)
		w, err := policy.ExtractWorkload(schema.GroupKind{Kind: "Pod"}, raw)
		if err != nil || w == nil {
			return
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"}, Status: corev1.PodStatus{
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}}}}}
		// Any date, the future included: kubeletEvents drops what it must.
		at := metav1.NewTime(time.Unix(int64(binary.BigEndian.Uint32(append([]byte(eventReason), 0, 0, 0, 0)[:4])), 0))
		events := []corev1.Event{{Reason: eventReason, Message: eventMessage, Count: 3, Type: corev1.EventTypeWarning,
			Source: corev1.EventSource{Component: "kubelet", Host: "n"}, LastTimestamp: at}}
		events, _ = kubeletEvents(events, "n", time.Unix(1<<31, 0))
		stuck, waiting := stuckImages(pod, w, events)
		r := &Result{Namespace: "shop", Object: "pod/p", Pods: []Pod{{Name: "p", Node: "n", Waiting: waiting, Stuck: len(stuck) > 0}}}
		for _, si := range stuck {
			r.Pods[0].Images = append(r.Pods[0].Images, explain(si, nil, "n", true))
		}
		var text, js bytes.Buffer
		if err := WriteText(r, &text, false); err != nil {
			t.Fatal(err)
		}
		if err := WriteJSON(r, &js); err != nil {
			t.Fatal(err)
		}
		for name, out := range map[string]string{"text": text.String(), "json": js.String()} {
			for _, line := range strings.Split(out, "\n") {
				if len(line) > 4096 {
					t.Fatalf("%s: a line of %d bytes", name, len(line))
				}
				for _, c := range line {
					if !unicode.IsPrint(c) {
						t.Fatalf("%s: unprintable %U in %q", name, c, line)
					}
				}
			}
		}
	})
}

func quoteJSON(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// volumeSpec is a pod spec whose container mounts the image volume
// "models" (KEP-4639, GA in Kubernetes 1.36: no feature gate on the test
// bed's API server), each line indented by indent.
func volumeSpec(indent, reference string) string {
	spec := fmt.Sprintf(`containers:
- name: app
  image: %s/team/api:v1.4.1@%s
  volumeMounts: [{name: models, mountPath: /models}]
volumes:
- name: models
  image: {reference: %s}
`, b.Open.Addr, apiDigest, reference)
	return indent + strings.ReplaceAll(strings.TrimSuffix(spec, "\n"), "\n", "\n"+indent) + "\n"
}

func volumePod(ns, name, reference string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: %s}\nspec:\n", name, ns) + volumeSpec("  ", reference)
}

func volumeDeployment(ns, name, reference string) string {
	return deploymentWithPodSpec(ns, name, volumeSpec("      ", reference))
}

// TestImageVolumes: the real API server keeps spec.volumes[].image, and
// pullsafe refuses a volume whose tag does not exist (Pod and Deployment),
// naming the volume, pins a good one in the Pod, and `pullsafe check` gives
// the same answers on the same files.
func TestImageVolumes(t *testing.T) {
	missing := b.Open.Addr + "/team/api:v1.4.2"
	good := b.Open.Addr + "/team/api:v1.4.1"
	badPod, badDeploy := volumePod("team-a", "models-typo", missing), volumeDeployment("team-a", "models-typo", missing)

	var denials []string // the webhook's words, as kubectl prints them
	denial := func(out string) string {
		_, msg, _ := strings.Cut(out, "denied the request: ")
		return strings.TrimSpace(msg)
	}
	out, ok := apply(t, badPod)
	denials = append(denials, denial(out))
	if ok {
		t.Fatal("a Pod whose image volume's tag does not exist was admitted")
	}
	mustContain(t, out, "pod/models-typo would fail to pull 1 image(s)", `[not-found] volume "models" image "`+missing+`"`,
		"manifest unknown", "nearest tags: v1.4.1, v1.4.0")
	out, ok = apply(t, badDeploy)
	denials = append(denials, denial(out))
	if ok {
		t.Fatal("a Deployment whose image volume's tag does not exist was admitted")
	}
	mustContain(t, out, "deployment/models-typo would fail to pull 1 image(s)", `[not-found] volume "models" image "`+missing+`"`)

	out, ok = apply(t, volumePod("team-a", "models-good", good))
	if !ok {
		t.Fatalf("a good image volume was refused:\n%s", out)
	}
	pod, err := b.Client.CoreV1().Pods("team-a").Get(context.Background(), "models-good", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.Volumes) == 0 || pod.Spec.Volumes[0].Image == nil {
		t.Fatalf("the API server dropped the image volume: %+v", pod.Spec.Volumes)
	}
	if got, want := pod.Spec.Volumes[0].Image.Reference, good+"@"+apiDigest.String(); got != want {
		t.Errorf("spec.volumes[0].image.reference = %q, want pinned %q", got, want)
	}

	// `pullsafe check` on the same files: the same refusals, in the same words.
	cmd := exec.Command(b.PullsafeBin, "check", "-f", "-", "--kubeconfig", b.Kubeconfig)
	cmd.Stdin = strings.NewReader(badPod + "---\n" + badDeploy + "---\n" + volumePod("team-a", "models-good", good))
	checkOut, err := cmd.CombinedOutput()
	t.Logf("pullsafe check --kubeconfig\n%s", checkOut)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	s := string(checkOut)
	mustContain(t, s, "team-a/pod/models-typo: DENY", "team-a/deployment/models-typo: DENY",
		`[not-found] volume "models" image "`+missing+`"`, "3 workloads checked: 2 would be denied, 0 warned, 1 allowed")
	for _, d := range denials {
		if indented := "  " + strings.ReplaceAll(d, "\n", "\n  "); !strings.Contains(s, indented) {
			t.Errorf("check does not say what the webhook said:\n%s", indented)
		}
	}
	if strings.Contains(s, "pod/models-good") {
		t.Errorf("check reports the good Pod:\n%s", s)
	}
}

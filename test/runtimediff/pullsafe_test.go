package runtimediff

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/webhook"
)

// runtimeVersion is what the case's node reports in
// status.nodeInfo.containerRuntimeVersion: the containerd the tools build.
const runtimeVersion = "containerd://2.4.2"

// configFor is pullsafe's config for a case: enforce, loopback registries
// allowed (the test's are on 127.0.0.1), a lookup timeout "slow" registries
// exceed, no outage memory (each case has a resolver of its own anyway).
func configFor(s *setup) string {
	var b strings.Builder
	b.WriteString("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: enforce\nlookupTimeout: 1s\nregistries:\n  allowLoopback: true\n")
	for _, l := range s.registries {
		b.WriteString("  " + l + "\n")
	}
	if s.hostsDirNeeded {
		b.WriteString("  hostsDir: " + s.hostsDir + "\n")
	}
	return b.String()
}

// secretOf is the case's pull secret, a kubernetes.io/dockerconfigjson with
// one auths entry per cred.
func secretOf(t *testing.T, creds []cred) *corev1.Secret {
	auths := map[string]map[string]string{}
	for _, c := range creds {
		auths[c.key] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(c.user + ":" + c.pass))}
	}
	data, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "pull"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: data}}
}

// secrets is the namespace's secrets as admission reads them.
type namespaceSecrets map[string]*corev1.Secret

func (s namespaceSecrets) Secret(_ context.Context, _, name string) (*corev1.Secret, error) {
	return s[name], nil
}
func (s namespaceSecrets) ServiceAccount(context.Context, string, string) (*corev1.ServiceAccount, error) {
	return nil, nil
}

// pullsafeVerdict checks a Pod naming s.image as the webhook does: the
// resolver its config describes, the Pod's pull secret read as admission
// reads it, one node of platform p running containerd 2.4.2.
func pullsafeVerdict(ctx context.Context, t *testing.T, s *setup, p v1.Platform) (verdict, string) {
	cfg, err := policy.ParseConfig([]byte(configFor(s)))
	if err != nil {
		// Only the key's absence skips: once pullsafe has it, any other
		// error about it is a failure to read what containerd reads.
		if s.hostsDirNeeded && strings.Contains(err.Error(), `unknown field "hostsDir"`) {
			return skipped, err.Error()
		}
		t.Fatalf("config: %v\n%s", err, configFor(s))
	}
	res, err := webhook.NewResolver(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: s.image, ImagePullPolicy: corev1.PullAlways}}}}
	ns := namespaceSecrets{}
	if len(s.creds) > 0 {
		pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
		ns["pull"] = secretOf(t, s.creds)
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	w, err := policy.ExtractWorkload(schema.GroupKind{Kind: "Pod"}, raw)
	if err != nil || w == nil {
		t.Fatalf("extracting the Pod: %v", err)
	}
	cr, err := policy.ReadCredentials(ctx, ns, w, policy.Admitted)
	if err != nil {
		t.Fatal(err)
	}
	node := policy.Node{Name: "node", Runtime: runtimeVersion,
		Labels: map[string]string{"kubernetes.io/os": p.OS, "kubernetes.io/arch": p.Architecture}}
	v := policy.NewChecker(cfg, res).Check(ctx, policy.Input{Workload: w, Containers: w.Containers, Mode: policy.ModeEnforce,
		Credentials: cr, Nodes: []policy.Node{node}})
	switch {
	case v.Decision() == policy.DecisionDeny:
		return deny, v.DenialMessage()
	case v.Decision() == policy.DecisionWarn || len(v.Warnings()) > 0:
		return warn, strings.Join(v.Warnings(), " | ")
	}
	return allow, ""
}

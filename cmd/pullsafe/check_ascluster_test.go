package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// decisions runs check -o json and returns "ns/object" -> decision, with
// " skipped: why" appended for skipped objects.
func decisions(t *testing.T, stdin string, args ...string) (map[string]string, int) {
	t.Helper()
	out, errOut, code := runCheck(t, stdin, append([]string{"-f", "-", "-o", "json"}, args...)...)
	var results []jsonResult
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("exit %d, not JSON: %v\n%s%s", code, err, out, errOut)
	}
	got := map[string]string{}
	for _, r := range results {
		d := string(r.Decision)
		if r.Skipped != "" {
			d += " skipped: " + r.Skipped
		}
		for _, f := range r.Findings {
			d += " [" + string(f.Rule) + "]"
		}
		got[r.Namespace+"/"+r.Object] = d
	}
	return got, code
}

func podDoc(ns, name, sa, image string, secrets ...string) string {
	s := "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + ", namespace: " + ns + "}\nspec:\n"
	if sa != "" {
		s += "  serviceAccountName: " + sa + "\n"
	}
	if len(secrets) > 0 {
		s += "  imagePullSecrets: [{name: " + strings.Join(secrets, "}, {name: ") + "}]\n"
	}
	return s + "  containers: [{name: c, image: \"" + image + "\", imagePullPolicy: Always}]\n---\n"
}

// TestCheckPodGetsItsServiceAccountPullSecrets: a Pod listing no
// imagePullSecrets gets its service account's (named, or "default") in
// the cluster; check emulates the ServiceAccount admission plugin with the
// input's ServiceAccounts, so such a Pod is not falsely denied.
func TestCheckPodGetsItsServiceAccountPullSecrets(t *testing.T) {
	b := newCheckBed(t)
	private := b.private.Host + "/team/payments:v2"
	stdin := "apiVersion: v1\nkind: Secret\nmetadata: {name: regcred, namespace: shop}\ntype: kubernetes.io/dockerconfigjson\n" +
		"stringData: {.dockerconfigjson: '{\"auths\":{\"" + b.private.Host + "\":{\"username\":\"alice\",\"password\":\"s3cret\"}}}'}\n---\n" +
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: shop}\nimagePullSecrets: [{name: regcred}]\n---\n" +
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: shop}\nimagePullSecrets: [{name: regcred}]\n---\n" +
		podDoc("shop", "named", "builder", private) +
		podDoc("shop", "defaulted", "", private) +
		podDoc("shop", "own-list", "builder", private, "other") + // its own list: nothing copied
		podDoc("shop", "no-such-account", "ghost", private)
	got, code := decisions(t, stdin)
	// Offline, what the input lacks (own-list's "other", the account
	// "ghost") is unknown: "cannot verify", a warning.
	want := map[string]string{
		"shop/pod/named":           "allow",
		"shop/pod/defaulted":       "allow",
		"shop/pod/own-list":        "warn [unauthorized]",
		"shop/pod/no-such-account": "warn [unauthorized]",
	}
	if d := cmp.Diff(want, got); d != "" || code != 0 {
		t.Errorf("exit %d, decisions (-want +got):\n%s", code, d)
	}
	out, _, _ := runCheck(t, stdin, "-f", "-")
	if !strings.Contains(out, `service account "ghost" of namespace "shop", whose imagePullSecrets the pods get, is not in the input`) {
		t.Errorf("a service account not in the input is not named:\n%s", out)
	}
}

// TestCheckDeprecatedServiceAccount: a manifest may still name its account
// with the deprecated serviceAccount; the API server takes it as the
// account when serviceAccountName is empty, so the Pod gets builder's pull
// secrets, not default's (which has none here).
func TestCheckDeprecatedServiceAccount(t *testing.T) {
	b := newCheckBed(t)
	stdin := "apiVersion: v1\nkind: Secret\nmetadata: {name: regcred, namespace: shop}\ntype: kubernetes.io/dockerconfigjson\n" +
		"stringData: {.dockerconfigjson: '{\"auths\":{\"" + b.private.Host + "\":{\"username\":\"alice\",\"password\":\"s3cret\"}}}'}\n---\n" +
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: shop}\nimagePullSecrets: [{name: regcred}]\n---\n" +
		"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: default, namespace: shop}\n---\n" +
		"apiVersion: v1\nkind: Pod\nmetadata: {name: legacy, namespace: shop}\nspec:\n  serviceAccount: builder\n" +
		"  containers: [{name: c, image: \"" + b.private.Host + "/team/payments:v2\", imagePullPolicy: Always}]\n"
	got, code := decisions(t, stdin)
	if d := cmp.Diff(map[string]string{"shop/pod/legacy": "allow"}, got); d != "" || code != 0 {
		t.Errorf("exit %d, decisions (-want +got):\n%s", code, d)
	}
}

// TestCheckPinPinsEveryKind: --pin is an explicit request to write digests
// into the files: a Deployment is pinned too, whatever pin.templates says
// (that governs the webhook). Without --pin, the mutable-tag advice for a
// template names what really pins it, not the namespace label.
func TestCheckPinPinsEveryKind(t *testing.T) {
	b := newCheckBed(t)
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: shop}\nspec:\n  selector: {matchLabels: {app: api}}\n" +
		"  template:\n    metadata: {labels: {app: api}}\n    spec:\n      containers:\n      - name: api\n        image: " + b.open.Host + "/team/api:v1.4.1\n"
	out, errOut, code := runCheck(t, deploy, "-f", "-", "--pin")
	if code != 0 || !regexp.MustCompile(`image: 127\.0\.0\.1:\d+/team/api:v1\.4\.1@sha256:[0-9a-f]{64}`).MatchString(out) {
		t.Errorf("--pin on a Deployment: exit %d, not pinned:\n%s%s", code, out, errOut)
	}
	out, _, _ = runCheck(t, deploy, "-f", "-")
	if !strings.Contains(out, "[mutable-tag]") || !strings.Contains(out, "pin.templates: true") || strings.Contains(out, "label the namespace") {
		t.Errorf("mutable-tag advice for a template:\n%s", out)
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pullsafe.yaml")
	if err := os.WriteFile(f, []byte("apiVersion: pullsafe.io/v1alpha1\nkind: Config\n"+yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCheckModeIsTheConfigs: without --mode, check answers in the config
// file's mode (enforce without a file); --mode replaces it; off checks
// nothing and says so.
func TestCheckModeIsTheConfigs(t *testing.T) {
	b := newCheckBed(t)
	typo := podDoc("shop", "typo", "", b.open.Host+"/team/api:v1.4.2")
	warn, off := writeConfig(t, "mode: warn\n"), writeConfig(t, "mode: \"off\"\n") // YAML 1.1 reads a bare off as false
	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"no config: enforce", nil, "deny [not-found]", 1},
		{"config mode warn", []string{"--config", warn}, "warn [not-found]", 0},
		{"--mode over the config", []string{"--config", warn, "--mode", "enforce"}, "deny [not-found]", 1},
		{"config mode off", []string{"--config", off}, "allow skipped: mode off (the config's mode)", 0},
		{"--mode off", []string{"--mode", "off"}, "allow skipped: mode off (--mode off)", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, code := decisions(t, typo, tt.args...)
			if got["shop/pod/typo"] != tt.want || code != tt.code {
				t.Errorf("exit %d, %q; want exit %d, %q", code, got["shop/pod/typo"], tt.code, tt.want)
			}
		})
	}
}

// TestCheckSkipsWhatTheWebhookNeverSees: objects in kube-system,
// kube-node-lease, pullsafe's namespace and namespaces.exclude, and in
// namespaces labelled pullsafe.io/mode=off, are skipped as the webhook
// skips them, and named as skipped in text and JSON. Namespace labels in
// the input apply as the cluster's would.
func TestCheckSkipsWhatTheWebhookNeverSees(t *testing.T) {
	b := newCheckBed(t)
	typo := b.open.Host + "/team/api:v1.4.2"
	stdin := "apiVersion: v1\nkind: Namespace\nmetadata: {name: quiet, labels: {pullsafe.io/mode: \"off\"}}\n---\n" +
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: relaxed, labels: {pullsafe.io/mode: warn, pullsafe.io/pin: maybe}}\n---\n" +
		podDoc("kube-system", "a", "", typo) + podDoc("kube-node-lease", "b", "", typo) + podDoc("pullsafe-system", "c", "", typo) +
		podDoc("ops", "d", "", typo) + podDoc("quiet", "e", "", typo) + podDoc("relaxed", "f", "", typo) + podDoc("shop", "g", "", typo)
	cfg := writeConfig(t, "mode: enforce\nnamespaces: {exclude: [ops]}\n")
	got, code := decisions(t, stdin, "--config", cfg)
	want := map[string]string{
		"kube-system/pod/a":     "allow skipped: namespace kube-system is never checked",
		"kube-node-lease/pod/b": "allow skipped: namespace kube-node-lease is never checked",
		"pullsafe-system/pod/c": "allow skipped: namespace pullsafe-system is pullsafe's own (--pullsafe-namespace)",
		"ops/pod/d":             "allow skipped: namespace ops is in the config's namespaces.exclude",
		"quiet/pod/e":           "allow skipped: mode off (namespace label pullsafe.io/mode=off)",
		"relaxed/pod/f":         "warn [not-found]",
		"shop/pod/g":            "deny [not-found]",
	}
	if d := cmp.Diff(want, got); d != "" || code != 1 {
		t.Errorf("exit %d, (-want +got):\n%s", code, d)
	}
	out, _, _ := runCheck(t, stdin, "-f", "-", "--config", cfg, "--pullsafe-namespace", "ops")
	for _, s := range []string{
		"-: document 3: kube-system/pod/a: skipped: namespace kube-system is never checked",
		"-: document 6: ops/pod/d: skipped: namespace ops is pullsafe's own (--pullsafe-namespace)",
		"namespace label pullsafe.io/pin=maybe is not true or false; using the config's pin.pods: true",
		"3 workloads checked: 2 would be denied, 1 warned, 0 allowed; 4 skipped",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("text output lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "pullsafe-system/pod/c: skipped") {
		t.Errorf("--pullsafe-namespace ops still skips pullsafe-system:\n%s", out)
	}
}

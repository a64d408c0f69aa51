package policy

import "testing"

// TestPullContextChanged: an UPDATE re-checks unchanged images exactly when
// what the kubelet pulls them with, or where, changes; an edit the API
// server and the kubelet treat as no change re-checks nothing.
func TestPullContextChanged(t *testing.T) {
	mk := func(t *testing.T, spec string) *Workload {
		t.Helper()
		w, err := ExtractWorkload(deployment, []byte(`{"metadata":{"name":"d"},"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a:1"}]`+spec+`}}}}`))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	tests := []struct {
		name     string
		old, new string
		want     bool
	}{
		{"deprecated serviceAccount set", ``, `,"serviceAccount":"builder"`, true},
		{"serviceAccountName default made explicit", `,"serviceAccountName":"default"`, ``, false},
		{"pull secrets reordered and repeated", `,"imagePullSecrets":[{"name":"a"},{"name":"b"}]`, `,"imagePullSecrets":[{"name":"b"},{"name":"a"},{"name":"a"}]`, false},
		{"pull secret removed", `,"imagePullSecrets":[{"name":"a"},{"name":"b"}]`, `,"imagePullSecrets":[{"name":"a"}]`, true},
		// The kubelet skips a reference without a name (and so does
		// ReadCredentials): adding one changes no credential.
		{"pull secret reference without a name added", `,"imagePullSecrets":[{"name":"a"}]`, `,"imagePullSecrets":[{"name":"a"},{"name":""}]`, false},
		{"empty nodeSelector", ``, `,"nodeSelector":{}`, false},
		{"nodeSelector to arm64", ``, `,"nodeSelector":{"kubernetes.io/arch":"arm64"}`, true},
		{"preferred affinity only", ``, `,"affinity":{"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,"preference":{"matchExpressions":[{"key":"a","operator":"Exists"}]}}]}}`, false},
		{"required affinity", ``, `,"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/arch","operator":"In","values":["arm64"]}]}]}}}`, true},
		{"tolerations", ``, `,"tolerations":[{"key":"x","operator":"Exists"}]`, false},
		{"nodeName", ``, `,"nodeName":"n1"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PullContextChanged(mk(t, tt.new), mk(t, tt.old)); got != tt.want {
				t.Errorf("PullContextChanged = %v, want %v", got, tt.want)
			}
		})
	}
}

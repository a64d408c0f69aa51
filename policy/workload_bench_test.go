package policy

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// BenchmarkExtractWorkloadTypicalPod is a Pod as the API server sends it:
// 3 containers and 5 volumes (projected service account token, configMap,
// secret, emptyDir, PVC), none of them an image volume — the volumes
// pullsafe now decodes cost what the listing loop must pay on every review.
func BenchmarkExtractWorkloadTypicalPod(b *testing.B) {
	raw := []byte(`{"metadata":{"name":"web","namespace":"shop"},"spec":{
		"containers":[{"name":"a","image":"reg.example/a:1","volumeMounts":[{"name":"token","mountPath":"/var/run/secrets"}]},
			{"name":"b","image":"reg.example/b:1"},{"name":"c","image":"reg.example/c:1"}],
		"volumes":[
			{"name":"token","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},
				{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
				{"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]}},
			{"name":"config","configMap":{"name":"web-config"}},
			{"name":"creds","secret":{"secretName":"web-creds"}},
			{"name":"scratch","emptyDir":{}},
			{"name":"data","persistentVolumeClaim":{"claimName":"web-data"}}]}}`)
	b.ReportAllocs()
	for b.Loop() {
		if w, err := ExtractWorkload(schema.GroupKind{Kind: "Pod"}, raw); err != nil || len(w.Containers) != 3 {
			b.Fatal(w, err)
		}
	}
}

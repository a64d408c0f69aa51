package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullsafe/pullsafe/registry"
)

// emptyCluster is a cluster holding no secret and no service account.
type emptyCluster struct{}

func (emptyCluster) Secret(context.Context, string, string) (*corev1.Secret, error) { return nil, nil }

func (emptyCluster) ServiceAccount(context.Context, string, string) (*corev1.ServiceAccount, error) {
	return nil, nil
}

// credentialsInput are the Secrets and ServiceAccounts of namespace shop as
// a manifest directory holds them; the service accounts of the API server's
// own (default) are written out as one is.
const credentialsInput = `apiVersion: v1
kind: ServiceAccount
metadata: {name: default}
imagePullSecrets: [{name: regcred}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: shop}
imagePullSecrets: [{name: regcred}, {name: gone}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: other}
imagePullSecrets: [{name: elsewhere}]
---
apiVersion: v1
kind: Secret
metadata: {name: regcred}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths":{"registry.corp.io":{"username":"u","password":"p"}}}'
---
apiVersion: v1
kind: Secret
metadata: {name: own, namespace: shop}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths":{"registry.corp.io":{"username":"u","password":"p"}}}'
`

// readWorkload reads one workload through the manifest reader and
// ExtractWorkload, as admission and pullsafe check do.
func readWorkload(t *testing.T, doc string) *Workload {
	t.Helper()
	ms, err := ReadManifests(strings.NewReader(doc), "workload.yaml")
	if err != nil || len(ms) != 1 {
		t.Fatalf("%d manifests, %v", len(ms), err)
	}
	w, err := ExtractWorkload(ms[0].GroupKind(), ms[0].JSON)
	if err != nil || w == nil {
		t.Fatalf("workload %v, %v", w, err)
	}
	w.Namespace = "shop"
	return w
}

// counting is a SecretReader that counts the service accounts read.
type counting struct {
	SecretReader
	read []string
}

func (c *counting) ServiceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	c.read = append(c.read, ns+"/"+name)
	return c.SecretReader.ServiceAccount(ctx, ns, name)
}

// TestReadCredentials: whose pull secrets a Pod or template gets, as the
// API server decides from a manifest: the deprecated serviceAccount alias
// (its v1 conversion), "default" when none is named, the ServiceAccount
// admission plugin copying the account's pull secrets into a Pod that lists
// none (an admitted Pod already has them). Fed from YAML through the real
// manifest reader; online the input is laid over an empty cluster (what is
// in neither does not exist), offline what the input lacks is unknown.
func TestReadCredentials(t *testing.T) {
	input, err := ReadManifests(strings.NewReader(credentialsInput), "secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		Referenced, Missing, Unknown                  []string
		ServiceAccount                                string
		ServiceAccountNotFound, ServiceAccountUnknown bool
		Read                                          []string
	}
	pod := func(spec string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n" + spec + "  containers: [{name: web, image: registry.corp.io/team/web:v1}]\n"
	}
	tests := []struct {
		name     string
		manifest string
		stage    Stage
		offline  bool
		want     want
	}{
		{"manifest Pod listing none gets the default service account's", pod(""), AsWritten, false,
			want{Referenced: []string{"regcred"}, ServiceAccount: "default", Read: []string{"shop/default"}}},
		{"manifest Pod gets its named service account's, missing ones said", pod("  serviceAccountName: builder\n"), AsWritten, false,
			want{Referenced: []string{"regcred", "gone"}, Missing: []string{"gone"}, ServiceAccount: "builder", Read: []string{"shop/builder"}}},
		// pkg/apis/core/v1/conversion.go (Convert_v1_PodSpec_To_core_PodSpec):
		// serviceAccount is the account when serviceAccountName is empty.
		{"manifest Pod naming its account by the deprecated serviceAccount", pod("  serviceAccount: builder\n"), AsWritten, false,
			want{Referenced: []string{"regcred", "gone"}, Missing: []string{"gone"}, ServiceAccount: "builder", Read: []string{"shop/builder"}}},
		{"serviceAccountName wins over the deprecated serviceAccount", pod("  serviceAccountName: default\n  serviceAccount: builder\n"), AsWritten, false,
			want{Referenced: []string{"regcred"}, ServiceAccount: "default", Read: []string{"shop/default"}}},
		{"manifest Pod with its own list keeps it: nothing copied", pod("  imagePullSecrets: [{name: own}]\n  serviceAccountName: builder\n"), AsWritten, false,
			want{Referenced: []string{"own"}}},
		{"manifest Pod whose service account does not exist", pod("  serviceAccountName: ghost\n"), AsWritten, false,
			want{ServiceAccount: "ghost", ServiceAccountNotFound: true, Read: []string{"shop/ghost"}}},
		{"admitted Pod: the API server already copied them, nothing read", pod(""), Admitted, false, want{}},
		{"template listing none gets its service account's", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      serviceAccountName: builder
      containers: [{name: web, image: registry.corp.io/team/web:v1}]
`, Admitted, false,
			want{Referenced: []string{"regcred", "gone"}, Missing: []string{"gone"}, ServiceAccount: "builder", Read: []string{"shop/builder"}}},
		{"CronJob template naming its account by the deprecated serviceAccount", `apiVersion: batch/v1
kind: CronJob
metadata: {name: report}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccount: builder
          restartPolicy: Never
          containers: [{name: report, image: registry.corp.io/team/report:v1}]
`, Admitted, false,
			want{Referenced: []string{"regcred", "gone"}, Missing: []string{"gone"}, ServiceAccount: "builder", Read: []string{"shop/builder"}}},
		// Offline, what the input lacks is unknown, never absent.
		{"offline: a pull secret not in the input is unknown", pod("  imagePullSecrets: [{name: own}, {name: external}]\n"), AsWritten, true,
			want{Referenced: []string{"own", "external"}, Unknown: []string{"external"}}},
		{"offline: a service account not in the input is unknown", pod("  serviceAccountName: ci\n"), AsWritten, true,
			want{ServiceAccount: "ci", ServiceAccountUnknown: true, Read: []string{"shop/ci"}}},
		{"offline: the input's service account, its secret not in the input", pod("  serviceAccount: builder\n"), AsWritten, true,
			want{Referenced: []string{"regcred", "gone"}, Unknown: []string{"gone"}, ServiceAccount: "builder", Read: []string{"shop/builder"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cluster SecretReader = emptyCluster{}
			if tt.offline {
				cluster = nil
			}
			objs, err := NewManifestObjects(input, "shop", cluster)
			if err != nil {
				t.Fatal(err)
			}
			rd := &counting{SecretReader: objs}
			cr, err := ReadCredentials(context.Background(), rd, readWorkload(t, tt.manifest), tt.stage)
			if err != nil {
				t.Fatal(err)
			}
			got := want{Referenced: cr.Referenced, Missing: cr.Missing, Unknown: cr.Unknown, ServiceAccount: cr.ServiceAccount,
				ServiceAccountNotFound: cr.ServiceAccountNotFound, ServiceAccountUnknown: cr.ServiceAccountUnknown, Read: rd.read}
			if d := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestManifestObjectsAsStored: a Secret from a manifest is what the API
// server stores (stringData folded into data, the default namespace), so
// its credentials are the kubelet's.
func TestManifestObjectsAsStored(t *testing.T) {
	input, err := ReadManifests(strings.NewReader(credentialsInput), "secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := NewManifestObjects(input, "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := objs.Secret(context.Background(), "shop", "regcred")
	if err != nil || s == nil {
		t.Fatalf("regcred: %v, %v", s, err)
	}
	if kc := registry.NewKeychain([]*corev1.Secret{s}); len(kc.Lookup("registry.corp.io/team/web")) != 1 {
		t.Errorf("regcred's stringData gives no credential for registry.corp.io: %+v", s)
	}
	if _, err := objs.Secret(context.Background(), "other", "regcred"); !errors.Is(err, ErrUnknown) {
		t.Errorf("secret of another namespace offline: %v, want ErrUnknown", err)
	}
}

// TestPendingCredentialsNameTheNamespace: a template's pull secret or
// service account not created yet is named with the namespace it is
// awaited in, both alike (issue 26: "a warning naming it and the
// namespace"); a service account of the same name may exist elsewhere.
func TestPendingCredentialsNameTheNamespace(t *testing.T) {
	w := &Workload{Kind: "Deployment", Name: "api", Namespace: "team-a", Template: true}
	for _, cr := range []Credentials{
		{Referenced: []string{"late"}, Missing: []string{"late"}},
		{ServiceAccount: "ghost", ServiceAccountNotFound: true},
	} {
		if why := cr.unverifiable(w); !strings.Contains(why, `namespace "team-a"`) {
			t.Errorf("%+v: %q does not name namespace \"team-a\"", cr, why)
		}
	}
}

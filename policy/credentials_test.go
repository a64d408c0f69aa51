package policy

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// objects is a SecretReader over objects held in memory, as `pullsafe
// check` holds the input's.
type objects struct {
	secrets  map[string]*corev1.Secret
	accounts map[string]*corev1.ServiceAccount
	read     []string // service accounts read, "ns/name"
}

func (o *objects) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	return o.secrets[ns+"/"+name], nil
}

func (o *objects) ServiceAccount(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	o.read = append(o.read, ns+"/"+name)
	return o.accounts[ns+"/"+name], nil
}

func refs(names ...string) []corev1.LocalObjectReference {
	var out []corev1.LocalObjectReference
	for _, n := range names {
		out = append(out, corev1.LocalObjectReference{Name: n})
	}
	return out
}

// TestReadCredentials: whose pull secrets a Pod or template gets, as the
// ServiceAccount admission plugin decides (a Pod as written that lists none
// gets its service account's; an admitted Pod already has them).
func TestReadCredentials(t *testing.T) {
	sa := func(name string, secrets ...string) *corev1.ServiceAccount {
		return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}, ImagePullSecrets: refs(secrets...)}
	}
	r := func() *objects {
		return &objects{
			secrets: map[string]*corev1.Secret{"shop/regcred": pullSecret("regcred", "registry.corp.io"), "shop/own": pullSecret("own", "registry.corp.io")},
			accounts: map[string]*corev1.ServiceAccount{"shop/default": sa("default", "regcred"), "shop/builder": sa("builder", "regcred", "gone"),
				"other/default": {ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "default"}, ImagePullSecrets: refs("regcred")}},
		}
	}
	type want struct {
		Referenced, Missing    []string
		ServiceAccount         string
		ServiceAccountNotFound bool
		Read                   []string
	}
	tests := []struct {
		name  string
		w     Workload
		stage Stage
		want  want
	}{
		{"manifest Pod listing none gets the default service account's", Workload{Kind: "Pod"}, AsWritten,
			want{Referenced: []string{"regcred"}, ServiceAccount: "default", Read: []string{"shop/default"}}},
		{"manifest Pod gets its named service account's, missing ones said", Workload{Kind: "Pod", Spec: corev1.PodSpec{ServiceAccountName: "builder"}}, AsWritten,
			want{Referenced: []string{"regcred", "gone"}, Missing: []string{"gone"}, ServiceAccount: "builder", Read: []string{"shop/builder"}}},
		// pkg/apis/core/v1/conversion.go: serviceAccount (deprecated) is
		// the account when serviceAccountName is empty.
		{"manifest Pod naming its account by the deprecated serviceAccount", Workload{Kind: "Pod", Spec: corev1.PodSpec{DeprecatedServiceAccount: "builder"}}, AsWritten,
			want{Referenced: []string{"regcred", "gone"}, Missing: []string{"gone"}, ServiceAccount: "builder", Read: []string{"shop/builder"}}},
		{"manifest Pod with its own list keeps it: nothing copied", Workload{Kind: "Pod", Spec: corev1.PodSpec{ImagePullSecrets: refs("own"), ServiceAccountName: "builder"}}, AsWritten,
			want{Referenced: []string{"own"}}},
		{"manifest Pod whose service account does not exist", Workload{Kind: "Pod", Spec: corev1.PodSpec{ServiceAccountName: "ghost"}}, AsWritten,
			want{ServiceAccount: "ghost", ServiceAccountNotFound: true, Read: []string{"shop/ghost"}}},
		{"admitted Pod: the API server already copied them, nothing read", Workload{Kind: "Pod"}, Admitted, want{}},
		{"template listing none gets its service account's", Workload{Kind: "Deployment", Template: true, Spec: corev1.PodSpec{ServiceAccountName: "builder"}}, Admitted,
			want{Referenced: []string{"regcred", "gone"}, Missing: []string{"gone"}, ServiceAccount: "builder", Read: []string{"shop/builder"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := r()
			w := tt.w
			w.Namespace = "shop"
			cr, err := ReadCredentials(context.Background(), rd, &w, tt.stage)
			if err != nil {
				t.Fatal(err)
			}
			got := want{Referenced: cr.Referenced, Missing: cr.Missing, ServiceAccount: cr.ServiceAccount,
				ServiceAccountNotFound: cr.ServiceAccountNotFound, Read: rd.read}
			if d := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

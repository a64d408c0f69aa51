package bed

import (
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// User adds an API server user in groups (no permissions beyond the groups'
// until RBAC grants them) and returns a kubeconfig file for it.
func (b *Bed) User(name string, groups ...string) (string, error) {
	u, err := b.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, b.restConfig)
	if err != nil {
		return "", err
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	f := filepath.Join(b.Dir, "kubeconfig-"+name)
	return f, os.WriteFile(f, kc, 0o600)
}

package main

import (
	"context"
	"errors"
	"flag"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/webhook"
)

// providerFlags are the kubelet's own --image-credential-provider-config
// and --image-credential-provider-bin-dir, shared by serve, check, why and
// audit: give pullsafe the files the nodes use.
type providerFlags struct {
	config, binDir string
}

func (p *providerFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&p.config, "image-credential-provider-config", "", "the kubelet's CredentialProviderConfig (kubelet.config.k8s.io/v1): a file, or a directory of\n*.json/*.yaml/*.yml files; the images its plugins match are looked up with their credentials")
	fs.StringVar(&p.binDir, "image-credential-provider-bin-dir", "", "directory holding the credential provider plugins (the kubelet's flag of the same name)")
}

// load reads the config; nil without one.
func (p providerFlags) load() (*registry.CredentialProviders, error) {
	switch {
	case p.config == "" && p.binDir == "":
		return nil, nil
	case p.config == "" || p.binDir == "":
		return nil, errors.New("--image-credential-provider-config and --image-credential-provider-bin-dir go together, as on the kubelet")
	}
	return registry.LoadCredentialProviders(p.config, p.binDir)
}

// errNoTokenOffline is the token answer of a check without a cluster.
var errNoTokenOffline = errors.New("no API server was asked (checked offline)")

// ServiceAccountToken requests tokens through the cluster when there is
// one; offline there is no token, so the providers that need one cannot be
// verified.
func (c *inputCluster) ServiceAccountToken(ctx context.Context, sa *corev1.ServiceAccount, audience string) (string, error) {
	if t, ok := c.live.(interface {
		ServiceAccountToken(context.Context, *corev1.ServiceAccount, string) (string, error)
	}); ok {
		return t.ServiceAccountToken(ctx, sa, audience)
	}
	return "", errNoTokenOffline
}

// withTokens lets a cluster client request tokens when a provider needs
// them.
func withTokens(c webhook.Cluster, cp *registry.CredentialProviders, rc *rest.Config) error {
	cc, ok := c.(*webhook.ClientCluster)
	if !ok || rc == nil || !cp.NeedTokens() {
		return nil
	}
	kc, err := client.New(rc, client.Options{})
	if err != nil {
		return err
	}
	cc.SetTokens(webhook.NewServiceAccountTokens(kc))
	return nil
}

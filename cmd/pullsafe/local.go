package main

import (
	"k8s.io/utils/ptr"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/webhook"
)

// loadLocalConfig loads the policy config for a command that runs on the
// user's machine (check, why, audit), not in a pod: there loopback is the
// machine's own registry, so it is allowed unless the config says otherwise.
func loadLocalConfig(file string) (*policy.Config, error) {
	cfg, err := policy.LoadConfig(file)
	if err != nil {
		return nil, err
	}
	if cfg.Registries.AllowLoopback == nil {
		cfg.Registries.AllowLoopback = ptr.To(true)
	}
	return cfg, nil
}

// localResolver is the registry resolver cfg describes, without metrics,
// sending pullsafe's User-Agent.
func localResolver(cfg *policy.Config, extra ...registry.Option) (*registry.Resolver, error) {
	return webhook.NewResolver(cfg, nil, append([]registry.Option{registry.WithUserAgent(webhook.UserAgent(version))}, extra...)...)
}

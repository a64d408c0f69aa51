package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"k8s.io/utils/ptr"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/webhook"
)

// localFlags are the flags of the commands a person runs on their own
// machine (check, why, audit): the policy config, the cluster as kubectl
// finds it, the kubelet's credential providers, and -o.
type localFlags struct {
	configFile string
	output     string
	kube       kubeFlags
	providers  providerFlags
}

// flagSet is a command's flag set with the shared flags bound, printing
// usage then the flags on -h; configHelp and kubeDefault say what this
// command does with --config and without --kubeconfig.
func (l *localFlags) flagSet(name, usage, configHelp, kubeDefault string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&l.configFile, "config", "", configHelp)
	fs.StringVar(&l.output, "o", "text", "output: text or json")
	l.kube.bind(fs, kubeDefault)
	l.providers.bind(fs)
	return fs
}

// validate checks what the flag package cannot.
func (l *localFlags) validate() error {
	if l.output != "text" && l.output != "json" {
		return fmt.Errorf("-o %q: want text or json", l.output)
	}
	return nil
}

// flagsError is a command's answer to a flag error: none for -h (the usage
// is printed), else exit 2.
func flagsError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return usageError{err}
}

// localStart is what every local command starts from: the config and the
// kubelet's credential providers, loaded from the flags.
type localStart struct {
	cfg       *policy.Config
	providers *registry.CredentialProviders
}

// start loads --config (loopback allowed, loadLocalConfig) and the
// credential providers; an error is a usage error (exit 2).
func (l *localFlags) start() (*localStart, error) {
	cfg, err := loadLocalConfig(l.configFile)
	if err != nil {
		return nil, usageError{err}
	}
	providers, err := l.providers.load()
	if err != nil {
		return nil, usageError{err}
	}
	return &localStart{cfg: cfg, providers: providers}, nil
}

// checker is the checker of s.cfg as the command left it (its flags
// override the config's), with a resolver that uses the providers.
func (s *localStart) checker() (*policy.Checker, error) {
	res, err := localResolver(s.cfg, registry.WithCredentialProviders(s.providers))
	if err != nil {
		return nil, usageError{err}
	}
	return policy.NewChecker(s.cfg, res), nil
}

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

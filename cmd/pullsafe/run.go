package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/webhook"
)

const usage = `pullsafe refuses images the kubelet could not pull, at kubectl apply time.

Usage:
  pullsafe serve [flags]   run the admission webhook (pullsafe serve --help)
  pullsafe check -f PATH   the same rules on manifest files, for CI (pullsafe check --help)
  pullsafe why pod/NAME    explain a pod stuck pulling an image (pullsafe why --help);
                           also installed as kubectl-pullsafe: kubectl pullsafe why pod/NAME
  pullsafe audit           look up the running Pods' images now (pullsafe audit --help)
  pullsafe version         print the version
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageError makes the process exit with 2.
type usageError struct{ error }

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("a subcommand is required")}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "check":
		return check(ctx, args[1:], os.Stdin, stdout, stderr)
	case "why":
		return why(ctx, args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Errorf("unknown subcommand %q", args[0])}
}

// serve runs the webhook. It is long because it is the serve command's flag
// table, one line a flag, then the defaults that depend on other flags:
// split up, a reader would hunt for a flag's default across functions.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("pullsafe serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o          webhook.ServerOptions
		configFile = fs.String("config", "", "policy config file (YAML, pullsafe.io/v1alpha1 Config), reloaded when it changes; default: built-in defaults (mode warn)")
		kube       kubeFlags // default: in-cluster, else as kubectl
		providers  providerFlags
	)
	kube.bind(fs, "in-cluster when $KUBECONFIG is unset and pullsafe runs in a pod, else as kubectl: $KUBECONFIG's files, else ~/.kube/config")
	providers.bind(fs)
	fs.StringVar(&o.Host, "bind-address", "", "address the webhook server listens on (default all)")
	fs.IntVar(&o.Port, "port", 9443, "port the webhook server listens on (HTTPS); with --webhook-url and no --port, the URL's port")
	fs.StringVar(&o.CertDir, "cert-dir", "", "directory with tls.crt and tls.key, reloaded when they change\n(default: /tmp/k8s-webhook-server/serving-certs; with --webhook-url a fresh temporary directory)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Prometheus metrics address (\"0\" disables)")
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", ":8081", "/healthz and /readyz address (\"0\" disables)")
	fs.StringVar(&o.Namespace, "namespace", envOr("POD_NAMESPACE", "pullsafe-system"), "pullsafe's own namespace, never intercepted (env POD_NAMESPACE)")
	fs.StringVar(&o.WebhookURL, "webhook-url", "", "out-of-cluster mode: generate a self-signed certificate and register both webhook\nconfigurations with this URL (https://127.0.0.1:9443) so any API server can call it")
	fs.StringVar(&o.ConfigName, "webhook-config-name", "", "name of the Validating/MutatingWebhookConfiguration\n(default \"pullsafe\"; with --webhook-url \"pullsafe-dev\", so a dev instance never replaces an installed one)")
	fs.BoolVar(&o.Unregister, "unregister-on-exit", true, "with --webhook-url, delete the webhook configurations on exit")
	fs.StringVar(&o.CertSecret, "cert-secret", "", "in-cluster certificate management: keep a self-signed CA and serving certificate in\nthis Secret of --namespace (shared by replicas, rotated before expiry) and inject the CA\nas caBundle into both webhook configurations; leave empty with cert-manager")
	fs.StringVar(&o.ServiceName, "service-name", "pullsafe", "with --cert-secret, the Service the API server calls (certificate SANs)")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 5*time.Second, "on SIGTERM, keep serving this long with readiness failing before stopping")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", "", "PEM CA bundle: only callers presenting a client certificate it signs reach the webhooks\n(the API server, with an AdmissionConfiguration kubeconfig: README \"Security model\");\nre-read every 10s; default: any caller that reaches the port")
	fs.Func("client-cn", "with --client-ca-file, a subject common name allowed (repeat or comma-separate; default: any the CA signs)", func(v string) error {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.ClientCNs = append(o.ClientCNs, n)
			}
		}
		return nil
	})
	zo := zap.Options{Development: false}
	zo.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zo)))
	if err := listenOnURLPort(fs, &o); err != nil {
		return usageError{err}
	}
	if o.ConfigName == "" {
		o.ConfigName = "pullsafe"
		if o.WebhookURL != "" {
			o.ConfigName = "pullsafe-dev"
		}
	}
	cfg, err := policy.LoadConfig(*configFile)
	if err != nil {
		return err
	}
	o.Config, o.ConfigFile = cfg, *configFile
	if o.CredentialProviders, err = providers.load(); err != nil {
		return usageError{err}
	}
	o.Version = version
	if o.RestConfig, err = serveConfig(kube, clientcmd.NewDefaultClientConfigLoadingRules(), rest.InClusterConfig); err != nil {
		return err
	}
	if o.CertDir == "" {
		o.CertDir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
		if o.WebhookURL != "" {
			if o.CertDir, err = os.MkdirTemp("", "pullsafe-certs-"); err != nil {
				return err
			}
			defer os.RemoveAll(o.CertDir)
		}
	}
	return webhook.Serve(ctx, o)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

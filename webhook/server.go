package webhook

import (
	"context"
	"errors"
	"fmt"
	"k8s.io/utils/ptr"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/certs"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// ServerOptions configure `pullsafe serve`.
type ServerOptions struct {
	Config     *policy.Config
	RestConfig *rest.Config
	Host       string // bind address of the webhook server
	Port       int
	CertDir    string // tls.crt/tls.key, hot-reloaded on change
	// MetricsAddr and HealthAddr: "0" disables.
	MetricsAddr string
	HealthAddr  string
	Namespace   string // pullsafe's own namespace: never intercepted
	// WebhookURL switches on out-of-cluster mode: a self-signed certificate
	// for the URL's host is generated into CertDir and both webhook
	// configurations are registered with a URL client config.
	WebhookURL string
	// ConfigName names the two webhook configurations.
	ConfigName string
	// Unregister deletes the configurations on exit (out-of-cluster mode).
	Unregister    bool
	ShutdownDelay time.Duration
	// CertSecret switches on in-cluster certificate management: a CA and
	// serving certificate for ServiceName.Namespace.svc kept in this Secret,
	// shared by all replicas, rotated, and injected as caBundle.
	CertSecret  string
	ServiceName string
	// Version is pullsafe's, sent to registries as User-Agent pullsafe/Version.
	Version string
}

// Validate checks the options before anything starts.
func (o *ServerOptions) Validate() error {
	if o.Config == nil || o.RestConfig == nil {
		return errors.New("config and Kubernetes client config are required")
	}
	if o.Port <= 0 || o.Port > 65535 {
		return fmt.Errorf("--port %d out of range", o.Port)
	}
	if o.WebhookURL != "" {
		u, err := url.Parse(o.WebhookURL)
		if err != nil || u.Scheme != "https" || u.Hostname() == "" {
			return fmt.Errorf("--webhook-url %q must be https://HOST[:PORT]", o.WebhookURL)
		}
		if o.CertSecret != "" {
			return errors.New("--webhook-url and --cert-secret are exclusive: out-of-cluster mode makes its own certificate")
		}
	}
	if o.CertSecret != "" && o.ServiceName == "" {
		return errors.New("--cert-secret needs --service-name (the Service the API server calls)")
	}
	return nil
}

// certManager is the in-cluster certificate manager the options describe.
func (o *ServerOptions) certManager(c client.Client) *certs.Manager {
	svc := o.ServiceName + "." + o.Namespace
	return &certs.Manager{Client: c, Namespace: o.Namespace, Secret: o.CertSecret, CertDir: o.CertDir,
		Webhooks: o.ConfigName, Hosts: []string{svc + ".svc", svc + ".svc.cluster.local", svc, o.ServiceName}}
}

// NewResolver builds the registry resolver the config describes; extra
// options come last. Loopback is refused unless the config allows it.
func NewResolver(cfg *policy.Config, reg ctrlmetrics.RegistererGatherer, extra ...registry.Option) (*registry.Resolver, error) {
	opts := []registry.Option{
		registry.WithMirrors(cfg.Registries.Mirrors),
		registry.WithInsecure(cfg.Registries.Insecure...),
		registry.WithDeniedNetworks(cfg.DeniedPrefixes()...),
		registry.WithAllowLoopback(ptr.Deref(cfg.Registries.AllowLoopback, false)),
		registry.WithCache(cfg.Cache.Size, cfg.Cache.TagTTL.Duration, cfg.Cache.NotFoundTTL.Duration),
		registry.WithLookupTimeout(cfg.LookupTimeout.Duration),
		registry.WithOutageWindow(cfg.OutageWindow.Duration),
	}
	if reg != nil {
		opts = append(opts, registry.WithMetrics(reg))
	}
	for host, file := range cfg.Registries.CABundles {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("registries.caBundles.%s: %w", host, err)
		}
		opts = append(opts, registry.WithCABundle(host, pem))
	}
	return registry.NewResolver(append(opts, extra...)...)
}

// UserAgent is what registries see pullsafe as: "pullsafe/v1.2.0".
func UserAgent(version string) string {
	if version == "" {
		version = "dev"
	}
	return "pullsafe/" + version
}

// Serve runs the webhook until ctx ends, then drains: readiness fails at
// once, requests are still served for ShutdownDelay (the API server and
// Service endpoints take a moment to stop sending), then it stops.
func Serve(ctx context.Context, o ServerOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	log := ctrl.Log.WithName("serve")
	var caBundle []byte
	if o.WebhookURL != "" {
		var err error
		if caBundle, err = selfSign(o); err != nil {
			return err
		}
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	var cm *certs.Manager
	if o.CertSecret != "" {
		// The server cannot start without a certificate on disk, so the
		// first one is made (or adopted from another replica) before it.
		direct, err := client.New(o.RestConfig, client.Options{Scheme: scheme})
		if err != nil {
			return err
		}
		cm = o.certManager(direct)
		if _, err := cm.EnsureServing(ctx); err != nil {
			return err
		}
	}
	mgr, err := ctrl.NewManager(o.RestConfig, manager.Options{
		Scheme:                  scheme,
		Cache:                   CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.HealthAddr,
		WebhookServer:           crwebhook.NewServer(crwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir}),
		GracefulShutdownTimeout: ptr.To(o.ShutdownDelay + 10*time.Second),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	res, err := NewResolver(o.Config, ctrlmetrics.Registry, registry.WithUserAgent(UserAgent(o.Version)))
	if err != nil {
		return err
	}
	m, err := NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	checker := policy.NewChecker(o.Config, res)
	cluster := NewClientCluster(mgr.GetClient(), mgr.GetAPIReader())
	srv := mgr.GetWebhookServer()
	srv.Register(ValidatePath, WithRequestDeadline(&admission.Webhook{Handler: NewHandler(checker, cluster, false, o.Namespace, m)}))
	srv.Register(MutatePath, WithRequestDeadline(&admission.Webhook{Handler: NewHandler(checker, cluster, true, o.Namespace, m)}))

	// Node and namespace snapshots from informers; readiness waits on their sync.
	if err := cluster.TrackInformers(ctx, mgr.GetCache()); err != nil {
		return fmt.Errorf("node and namespace informers: %w", err)
	}
	var draining atomic.Bool
	started := srv.StartedChecker()
	if err := mgr.AddReadyzCheck("webhook", readiness(&draining, started, cluster)); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	reg := Registration{Name: o.ConfigName, URL: o.WebhookURL, CABundle: caBundle,
		Exclude: append([]string{o.Namespace}, o.Config.Namespaces.Exclude...), PinTemplates: o.Config.Pin.Templates,
		Workloads: o.Config.Workloads}
	if cm != nil {
		if err := mgr.Add(manager.RunnableFunc(cm.Run)); err != nil {
			return err
		}
	}
	if o.WebhookURL != "" {
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			return registerWhenReady(ctx, mgr.GetClient(), reg, started)
		})); err != nil {
			return err
		}
	}

	mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		<-ctx.Done()
		draining.Store(true)
		log.Info("draining before shutdown", "delay", o.ShutdownDelay)
		time.Sleep(o.ShutdownDelay)
		stop()
	}()
	log.Info("starting", "port", o.Port, "mode", o.Config.Mode, "webhookURL", o.WebhookURL)
	err = mgr.Start(mctx)
	if o.WebhookURL != "" && o.Unregister {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if derr := reg.Delete(dctx, mgr.GetClient()); derr != nil {
			log.Error(derr, "removing webhook configurations")
		}
	}
	return err
}

// readiness fails while draining, until the server serves TLS, and until
// the node and namespace snapshots hold the informers' whole initial lists
// (a review against some of the nodes would deny what another node runs).
func readiness(draining *atomic.Bool, started healthz.Checker, cluster interface{ Synced() error }) healthz.Checker {
	return func(req *http.Request) error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		if err := started(req); err != nil {
			return fmt.Errorf("webhook server not serving TLS yet: %w", err)
		}
		if err := cluster.Synced(); err != nil {
			return fmt.Errorf("not ready: %w", err)
		}
		return nil
	}
}

// registerWhenReady registers the configurations once the server serves TLS:
// registered earlier, the API server would call a closed port.
func registerWhenReady(ctx context.Context, c client.Client, reg Registration, started healthz.Checker) error {
	log := ctrl.Log.WithName("register")
	probe, _ := http.NewRequest(http.MethodGet, "/", nil)
	for started(probe) != nil {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := reg.Apply(ctx, c); err != nil {
		return err
	}
	log.Info("registered webhook configurations", "name", reg.Name, "url", reg.URL)
	<-ctx.Done()
	return nil
}

// selfSign writes a fresh CA-signed certificate for the webhook URL's host
// into CertDir and returns the CA bundle to register.
func selfSign(o ServerOptions) ([]byte, error) {
	u, _ := url.Parse(o.WebhookURL)
	hosts := []string{u.Hostname()}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		hosts = append(hosts, "localhost")
	}
	now := time.Now()
	ca, err := certs.NewCA("pullsafe-dev-ca", now, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.Issue(hosts, now, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := certs.WriteDir(o.CertDir, certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("writing certificates to %s: %w", o.CertDir, err)
	}
	if port := u.Port(); port != "" && port != strconv.Itoa(o.Port) {
		ctrl.Log.Info("warning: --webhook-url port differs from --port; the API server will call the URL's port", "url", o.WebhookURL, "port", o.Port)
	}
	return ca.CertPEM, nil
}

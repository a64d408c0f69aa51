package webhook

import (
	"cmp"
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

	"github.com/pullsafe/pullsafe/certs"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/registry"
)

// ServerOptions configure `pullsafe serve`.
type ServerOptions struct {
	Config *policy.Config
	// ConfigFile, when set, is where Config was read from: it is watched
	// and reloaded on change (a ConfigMap volume's symlink swap included).
	ConfigFile string
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
	// ClientCAFile, when set, is a PEM bundle: only callers presenting a
	// certificate it signs reach the webhooks (the API server, configured
	// with an AdmissionConfiguration kubeconfig). Re-read every
	// ClientCAPoll. ClientCNs, when any, narrow the allowed certificates
	// to these subject common names.
	ClientCAFile string
	ClientCNs    []string
	ClientCAPoll time.Duration
	// CredentialProviders are the kubelet's image credential provider
	// plugins (--image-credential-provider-config); nil: none.
	CredentialProviders *registry.CredentialProviders
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
	if len(o.ClientCNs) > 0 && o.ClientCAFile == "" {
		return errors.New("--client-cn needs --client-ca-file (the CA that signs the API server's client certificate)")
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
	if dir := cfg.Registries.HostsDir; dir != "" {
		hosts, err := registry.LoadHostsDir(dir)
		if err != nil {
			return nil, fmt.Errorf("registries.hostsDir: %w", err)
		}
		opts = append(opts, registry.WithHostsDir(hosts))
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
// Options → Validate → setup → start, as pod-security-admission's server.
func Serve(ctx context.Context, o ServerOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	s, err := setup(ctx, o)
	if err != nil {
		return err
	}
	return s.start(ctx)
}

// server is `pullsafe serve` wired up, before it starts.
type server struct {
	o        ServerOptions
	mgr      manager.Manager
	direct   client.Client // uncached: webhook configurations, the certificate Secret
	live     *LiveConfig
	caBundle []byte // out of cluster: the self-signed CA to register
	draining atomic.Bool
}

// setup builds everything Serve runs; nothing serves yet.
func setup(ctx context.Context, o ServerOptions) (*server, error) {
	s := &server{o: o}
	var err error
	if o.WebhookURL != "" {
		if s.caBundle, err = selfSign(o); err != nil {
			return nil, err
		}
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if s.direct, err = client.New(o.RestConfig, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	var cm *certs.Manager
	if o.CertSecret != "" {
		// The server cannot start without a certificate on disk, so the
		// first one is made (or adopted from another replica) before it.
		cm = o.certManager(s.direct)
		if _, err := cm.EnsureServing(ctx); err != nil {
			return nil, err
		}
	}
	var auth *ClientAuth
	if o.ClientCAFile != "" {
		if auth, err = NewClientAuth(o.ClientCAFile, o.ClientCNs); err != nil {
			return nil, err
		}
		auth.Log = ctrl.Log.WithName("client-auth")
	}
	if s.mgr, err = o.newManager(scheme, auth); err != nil {
		return nil, err
	}
	if auth != nil {
		poll := cmp.Or(o.ClientCAPoll, 10*time.Second)
		if err := s.mgr.Add(manager.RunnableFunc(func(ctx context.Context) error { return auth.Run(ctx, poll) })); err != nil {
			return nil, err
		}
	}
	m, err := NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return nil, err
	}
	if err := ctrlmetrics.Registry.Register(certs.NewExpiryCollector(o.CertDir)); err != nil {
		return nil, err
	}
	if err := s.setupPolicy(m); err != nil {
		return nil, err
	}
	if err := s.setupHandlers(ctx, m); err != nil {
		return nil, err
	}
	if cm != nil {
		if err := s.mgr.Add(manager.RunnableFunc(cm.Run)); err != nil {
			return nil, err
		}
	}
	return s, s.mgr.Add(manager.RunnableFunc(s.keepWebhookConfigurations))
}

// newManager is the controller-runtime manager: webhook, metrics and
// health servers, caches. auth, when set, guards the webhook port only:
// metrics and health have ports of their own, reached without a
// certificate (the kubelet's probes, Prometheus).
func (o ServerOptions) newManager(scheme *runtime.Scheme, auth *ClientAuth) (manager.Manager, error) {
	mgr, err := ctrl.NewManager(o.RestConfig, manager.Options{
		Scheme:                  scheme,
		Cache:                   CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.HealthAddr,
		WebhookServer:           NewWebhookServer(o.Host, o.Port, o.CertDir, auth),
		GracefulShutdownTimeout: ptr.To(o.ShutdownDelay + 10*time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	return mgr, nil
}

// snapshotBuilder builds resolvers that register their metrics with reg
// once: a rebuilt one records into its predecessor's series.
func (o ServerOptions) snapshotBuilder(reg ctrlmetrics.RegistererGatherer) SnapshotBuilder {
	return SnapshotBuilder{OwnNamespace: o.Namespace, NewResolver: func(cfg *policy.Config, prev *registry.Resolver) (*registry.Resolver, error) {
		ua := registry.WithUserAgent(UserAgent(o.Version))
		cp := registry.WithCredentialProviders(o.CredentialProviders)
		if prev != nil {
			return NewResolver(cfg, nil, ua, cp, registry.WithMetricsOf(prev))
		}
		return NewResolver(cfg, reg, ua, cp)
	}}
}

// setupPolicy loads the first snapshot and, with a config file, the
// reloader that follows it.
func (s *server) setupPolicy(m *Metrics) error {
	build := s.o.snapshotBuilder(ctrlmetrics.Registry).Build
	first, err := build(s.o.Config, nil)
	if err != nil {
		return err
	}
	s.live = NewLiveConfig(first)
	m.loaded(first.Loaded, false)
	if s.o.ConfigFile == "" {
		return nil
	}
	return s.mgr.Add(manager.RunnableFunc(NewReloader(s.o.ConfigFile, s.live, build, m).Run))
}

// setupHandlers registers both webhooks, the informers they read and the
// health checks.
func (s *server) setupHandlers(ctx context.Context, m *Metrics) error {
	cluster := NewClientCluster(s.mgr.GetClient(), s.mgr.GetAPIReader())
	if s.o.CredentialProviders.NeedTokens() {
		cluster.SetTokens(NewServiceAccountTokens(s.mgr.GetClient()))
	}
	srv := s.mgr.GetWebhookServer()
	log := ctrl.Log.WithName("admission")
	srv.Register(ValidatePath, WithRequestDeadline(NewReviews(NewLiveHandler(s.live, cluster, false, m), log)))
	srv.Register(MutatePath, WithRequestDeadline(NewReviews(NewLiveHandler(s.live, cluster, true, m), log)))
	// Node and namespace snapshots from informers; readiness waits on their sync.
	if err := cluster.TrackInformers(ctx, s.mgr.GetCache()); err != nil {
		return fmt.Errorf("node and namespace informers: %w", err)
	}
	if err := s.setupAudit(cluster); err != nil {
		return err
	}
	if err := s.mgr.AddReadyzCheck("webhook", readiness(&s.draining, srv.StartedChecker(), cluster)); err != nil {
		return err
	}
	return s.mgr.AddHealthzCheck("ping", healthz.Ping)
}

// start runs everything until ctx ends, then drains and stops.
func (s *server) start(ctx context.Context) error {
	log := ctrl.Log.WithName("serve")
	mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		<-ctx.Done()
		s.draining.Store(true)
		log.Info("draining before shutdown", "delay", s.o.ShutdownDelay)
		time.Sleep(s.o.ShutdownDelay)
		stop()
	}()
	snap, _ := s.live.Load()
	log.Info("starting", "port", s.o.Port, "mode", snap.Config().Mode, "webhookURL", s.o.WebhookURL, "config", s.o.ConfigFile)
	err := s.mgr.Start(mctx)
	if s.o.WebhookURL != "" && s.o.Unregister {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		snap, _ := s.live.Load()
		if derr := s.registration(snap.Config()).Delete(dctx, s.direct); derr != nil {
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

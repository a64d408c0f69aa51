package webhook

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/pullsafe/pullsafe/certs"
	"github.com/pullsafe/pullsafe/policy"
	"github.com/pullsafe/pullsafe/test/configmapvol"
)

// reloadBed is newBed's cluster and registries under a config that lives in
// a ConfigMap volume folder and is reloaded.
type reloadBed struct {
	*bed
	dir      string
	live     *LiveConfig
	reloader *Reloader
	metrics  *Metrics
	validate *Handler
}

func (rb *reloadBed) write(t testing.TB, mode string) {
	t.Helper()
	cfg := fmt.Sprintf("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: %s\nregistries:\n  mirrors: {docker.io: [%q]}\n  allowLoopback: true\n", mode, rb.open.Host)
	rb.writeRaw(t, cfg)
}

func (rb *reloadBed) writeRaw(t testing.TB, cfg string) {
	t.Helper()
	if err := configmapvol.Write(rb.dir, map[string][]byte{"config.yaml": []byte(cfg)}); err != nil {
		t.Fatal(err)
	}
}

func newReloadBed(t testing.TB, opts ...ReloaderOption) *reloadBed {
	t.Helper()
	rb := &reloadBed{bed: newBed(t), dir: t.TempDir()}
	rb.write(t, "warn")
	file := filepath.Join(rb.dir, "config.yaml")
	cfg, err := policy.LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if rb.metrics, err = NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	build := ServerOptions{Namespace: "pullsafe-system"}.snapshotBuilder(reg).Build
	first, err := build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rb.live = NewLiveConfig(first)
	rb.reloader = NewReloader(file, rb.live, build, rb.metrics, opts...)
	rb.validate = NewLiveHandler(rb.live, rb.cluster, false, rb.metrics)
	return rb
}

// wantReloads checks pullsafe_config_reloads_total{result}.
func (rb *reloadBed) wantReloads(t testing.TB, result string, want float64) {
	t.Helper()
	if got := testutil.ToFloat64(rb.metrics.reloads.WithLabelValues(result)); got != want {
		t.Errorf("pullsafe_config_reloads_total{result=%s} = %v, want %v", result, got, want)
	}
}

// reload writes a config of mode and reloads it at once.
func (rb *reloadBed) reload(t testing.TB, mode string) {
	t.Helper()
	rb.write(t, mode)
	rb.reloader.Reload(context.Background())
}

// missing is a Pod whose image does not exist: warned about in warn mode,
// denied in enforce mode.
func (rb *reloadBed) missing(t testing.TB) admission.Request {
	return request(t, admissionv1.Create, pod("team-a", rb.open.Host+"/team/api:v9"), nil, "")
}

// The kubelet's ConfigMap update (a new ..data symlink renamed over the
// old one; config.yaml itself never written) reaches the next review
// through the folder watch alone: the poll is an hour away.
func TestReloadFollowsConfigMapVolumeSwap(t *testing.T) {
	rb := newReloadBed(t, WithPollInterval(time.Hour), WithDebounce(20*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = rb.reloader.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if resp := rb.validate.Handle(ctx, rb.missing(t)); !resp.Allowed {
		t.Fatalf("warn mode denied: %v", resp.Result)
	}
	// Twice: a watch on the file itself sees the first swap (its old
	// target is deleted) and then nothing.
	for i, mode := range []string{"enforce", "warn", "enforce"} {
		rb.write(t, mode)
		for try := 0; rb.validate.Handle(ctx, rb.missing(t)).Allowed != (mode == "warn"); try++ {
			if try == 500 {
				t.Fatalf("mode %s never applied after ConfigMap volume update %d", mode, i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	rb.wantReloads(t, "success", 3)
}

// An invalid file keeps the config in effect and says so: an error log, the
// failure metric, and a warning on every review until a valid one arrives.
func TestReloadInvalidKeepsTheOldConfig(t *testing.T) {
	rb := newReloadBed(t)
	ctx := context.Background()
	rb.reload(t, "enforce")
	for _, tt := range []struct {
		name        string
		cfg         string
		wantWarning string
		wantOK      float64
		wantFails   float64
	}{
		{"broken YAML", "apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: [enforce\n", "config reload failed (config ", 0, 1},
		{"unknown key", "apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmdoe: warn\n", `unknown field \"mdoe\"`, 0, 2},
		{"bad value", "apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: strict\n", `mode: \"strict\" is not one of`, 0, 3},
		{"empty", "\n", "the file is empty", 0, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rb.writeRaw(t, tt.cfg)
			rb.reloader.Reload(ctx)
			rb.reloader.Reload(ctx) // the same failure is counted once
			resp := rb.validate.Handle(ctx, rb.missing(t))
			if resp.Allowed {
				t.Error("the enforce config in effect was dropped")
			}
			w := strings.Join(resp.Warnings, "\n")
			if !strings.Contains(w, "pullsafe: config reload failed") || !strings.Contains(w, "still using the config loaded at") ||
				!strings.Contains(fmt.Sprintf("%q", w), tt.wantWarning) {
				t.Errorf("warnings %q lack the reload failure %q", resp.Warnings, tt.wantWarning)
			}
			if got := testutil.ToFloat64(rb.metrics.reloadOK); got != tt.wantOK {
				t.Errorf("pullsafe_config_last_reload_successful = %v", got)
			}
			rb.wantReloads(t, "failure", tt.wantFails)
		})
	}
	rb.reload(t, "warn")
	resp := rb.validate.Handle(ctx, rb.missing(t))
	if !resp.Allowed || strings.Contains(strings.Join(resp.Warnings, "\n"), "reload failed") {
		t.Errorf("after a valid config: allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
	if got := testutil.ToFloat64(rb.metrics.reloadOK); got != 1 {
		t.Errorf("pullsafe_config_last_reload_successful = %v after a valid config", got)
	}
}

// The resolver, with its cached answers, survives reloads that change only
// the checker's settings; a reshaping change builds a new one that records
// into the same metrics (registered once).
func TestSnapshotBuilderKeepsTheResolver(t *testing.T) {
	reg := prometheus.NewRegistry()
	build := ServerOptions{}.snapshotBuilder(reg).Build
	base := policy.DefaultConfig()
	first, err := build(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		edit func(c *policy.Config)
		kept bool
	}{
		{"mode", func(c *policy.Config) { c.Mode = policy.ModeEnforce }, true},
		{"rules", func(c *policy.Config) { c.Rules[policy.RuleMutableTag] = policy.ActionDeny }, true},
		{"pin", func(c *policy.Config) { c.Pin.Templates = true }, true},
		{"namespaces", func(c *policy.Config) { c.Namespaces.Exclude = []string{"ci"} }, true},
		{"cache", func(c *policy.Config) { c.Cache.Size = 5 }, false},
		{"mirrors", func(c *policy.Config) { c.Registries.Mirrors = map[string][]string{"docker.io": {"m.example"}} }, false},
		{"lookupTimeout", func(c *policy.Config) { c.LookupTimeout.Duration = time.Second }, false},
		{"outageWindow", func(c *policy.Config) { c.OutageWindow.Duration = 0 }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := policy.DefaultConfig()
			tt.edit(cfg)
			next, err := build(cfg, first)
			if err != nil {
				t.Fatalf("rebuild (metrics registered twice?): %v", err)
			}
			if kept := next.resolver == first.resolver; kept != tt.kept {
				t.Errorf("resolver kept = %v, want %v", kept, tt.kept)
			}
			if next.Checker == first.Checker || next.Config() != cfg {
				t.Error("the checker was not rebuilt with the new config")
			}
		})
	}
}

// Reviews running while the config flips between warn and enforce each
// see one whole config: denied, or allowed with the not-found warning.
// Run with -race.
func TestReloadUnderConcurrentReviews(t *testing.T) {
	rb := newReloadBed(t)
	ctx := context.Background()
	req := rb.missing(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp := rb.validate.Handle(ctx, req)
				warned := strings.Contains(strings.Join(resp.Warnings, "\n"), "not-found")
				if resp.Allowed == !warned {
					select {
					case errs <- fmt.Sprintf("allowed %v with warnings %q", resp.Allowed, resp.Warnings):
					default:
					}
				}
			}
		}()
	}
	for i := range 20 {
		rb.reload(t, []string{"enforce", "warn"}[i%2])
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	rb.wantReloads(t, "success", 20)
}

// A review in flight when the config changes finishes with the config it
// started with; the next one gets the new config.
func TestReloadDuringAReview(t *testing.T) {
	rb := newReloadBed(t)
	ctx := context.Background()
	rb.reload(t, "enforce")
	hit, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	rb.open.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/manifests/v9") {
			once.Do(func() { close(hit) })
			<-release
		}
		return false
	})
	got := make(chan admission.Response)
	go func() { got <- rb.validate.Handle(ctx, rb.missing(t)) }()
	<-hit
	rb.reload(t, "warn")
	close(release)
	if resp := <-got; resp.Allowed {
		t.Error("the review begun under enforce finished under warn")
	}
	if resp := rb.validate.Handle(ctx, rb.missing(t)); !resp.Allowed {
		t.Errorf("the next review still ran under enforce: %v", resp.Result)
	}
}

// A config naming a CA file that is not there yet (a Secret volume the
// kubelet updates after the ConfigMap one) fails to load; once the file
// appears the same config bytes must apply on the next reload (the poll),
// not stay refused until someone edits the config again.
func TestReloadRetriesWhatFailedOutsideTheFile(t *testing.T) {
	rb := newReloadBed(t)
	ctx := context.Background()
	ca := filepath.Join(t.TempDir(), "corp.pem")
	rb.writeRaw(t, fmt.Sprintf("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: enforce\nregistries:\n  mirrors: {docker.io: [%q]}\n  allowLoopback: true\n  caBundles: {registry.corp.example: %q}\n", rb.open.Host, ca))
	rb.reloader.Reload(ctx)
	rb.wantReloads(t, "failure", 1)
	corp, err := certs.NewCA("corp", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, corp.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	rb.reloader.Reload(ctx) // the poll: same config bytes
	rb.wantReloads(t, "success", 1)
	if resp := rb.validate.Handle(ctx, rb.missing(t)); resp.Allowed {
		t.Errorf("the enforce config never applied once its CA file appeared: warnings %q", resp.Warnings)
	}
}

// The nodes' hosts folder, mounted from a ConfigMap, changes without
// pullsafe's own config file changing: containerd reads hosts.toml at every
// pull, so the next poll applies it.
func TestReloadFollowsTheHostsFolder(t *testing.T) {
	rb := newReloadBed(t)
	ctx := context.Background()
	hosts := t.TempDir()
	folder := strings.Replace(rb.open.Host, ":", "_", 1) + "_" // containerd's host_port_
	writeHosts := func(server string) {
		t.Helper()
		if err := configmapvol.Write(hosts, map[string][]byte{folder + "/hosts.toml": []byte("server = \"http://" + server + "\"\n")}); err != nil {
			t.Fatal(err)
		}
	}
	writeHosts("127.0.0.1:1") // a host that refuses: cannot verify
	rb.writeRaw(t, fmt.Sprintf("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: enforce\nregistries:\n  hostsDir: %s\n  allowLoopback: true\n", hosts))
	rb.reloader.Reload(ctx)
	if resp := rb.validate.Handle(ctx, rb.missing(t)); !resp.Allowed {
		t.Fatalf("denied while the only host refuses connections: %s", resp.Result.Message)
	}
	writeHosts(rb.open.Host)
	rb.reloader.Reload(ctx) // the poll: same config bytes, other hosts
	if resp := rb.validate.Handle(ctx, rb.missing(t)); resp.Allowed {
		t.Errorf("the hosts folder's change never applied: warnings %q", resp.Warnings)
	}
	rb.wantReloads(t, "success", 2)
}

// Issue 21's air-gapped cluster, through admission: the nodes reach Docker
// Hub only through their mirror (hosts.toml's server), so a tag the mirror
// lacks is denied not-found naming it; a tag it has is admitted, and no
// Docker Hub credential is asked for (the mirror serves the nodes).
func TestAirGappedDockerHubDeniedThroughHostsDir(t *testing.T) {
	rb := newReloadBed(t)
	ctx := context.Background()
	hosts := t.TempDir()
	if err := configmapvol.Write(hosts, map[string][]byte{"docker.io/hosts.toml": []byte("server = \"http://" + rb.open.Host + "\"\n")}); err != nil {
		t.Fatal(err)
	}
	rb.writeRaw(t, fmt.Sprintf("apiVersion: pullsafe.io/v1alpha1\nkind: Config\nmode: enforce\nregistries:\n  hostsDir: %s\n  allowLoopback: true\n", hosts))
	rb.reloader.Reload(ctx)
	rb.wantReloads(t, "success", 1)
	resp := rb.validate.Handle(ctx, request(t, admissionv1.Create, pod("team-a", "nginx:does-not-exist"), nil, ""))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "not-found") || !strings.Contains(resp.Result.Message, rb.open.Host) {
		t.Errorf("nginx:does-not-exist: allowed=%v %q, want a not-found denial naming the mirror %s", resp.Allowed, resp.Result.Message, rb.open.Host)
	}
	if resp := rb.validate.Handle(ctx, request(t, admissionv1.Create, pod("team-a", "nginx:1.27"), nil, "")); !resp.Allowed {
		t.Errorf("nginx:1.27 (on the mirror) denied: %s", resp.Result.Message)
	}
}

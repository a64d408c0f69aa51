package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pullsafe/pullsafe/registry"
	"github.com/pullsafe/pullsafe/registry/registrytest"
	"github.com/pullsafe/pullsafe/test/bed"
)

// scene is the bed with images pushed and an HTTPS client that trusts
// pullsafe's CA, as the API server does.
type scene struct {
	b      *bed.Bed
	client *http.Client
}

func newScene(ctx context.Context, b *bed.Bed) (*scene, error) {
	multi := []bed.Platform{bed.Linux("amd64"), bed.Linux("arm64")}
	for _, img := range []string{"team/api:v1.4.1", "multi/app:v1", "library/nginx:1.27"} {
		repo, tag, _ := strings.Cut(img, ":")
		if _, err := b.Push(b.Open, repo, tag, multi...); err != nil {
			return nil, err
		}
	}
	for _, ns := range []string{"bench", "pullsafe-system"} {
		if err := b.Namespace(ctx, ns, nil); err != nil {
			return nil, err
		}
	}
	if err := b.SetNodes(ctx, "amd64", "arm64"); err != nil {
		return nil, err
	}
	cfg, err := b.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, bed.DevWebhookConfig, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cfg.Webhooks[0].ClientConfig.CABundle)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 0,
		DialContext: (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext}
	return &scene{b: b, client: &http.Client{Transport: tr, Timeout: 15 * time.Second}}, nil
}

// review is an AdmissionReview of a Pod with images.
func review(ns, name string, images ...string) []byte {
	p := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for i, img := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img, ImagePullPolicy: corev1.PullAlways})
	}
	raw, _ := json.Marshal(p)
	r := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: types.UID(name), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: ns, Name: name,
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}}
	out, _ := json.Marshal(r)
	return out
}

// post sends one review to /validate and reports whether it was allowed.
func (s *scene) post(ctx context.Context, body []byte) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.b.PullsafeURL+"/validate?timeout=10s", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var r admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Response == nil {
		return false, fmt.Errorf("bad answer (status %d): %v", resp.StatusCode, err)
	}
	return r.Response.Allowed, nil
}

// load replays one cached review at fixed concurrency levels.
func (s *scene) load(ctx context.Context, levels []int, each time.Duration) ([]row, error) {
	o := s.b.Open.Addr
	body := review("bench", "load", o+"/team/api:v1.4.1", o+"/multi/app:v1", "nginx:1.27")
	if ok, err := s.post(ctx, body); err != nil || !ok {
		return nil, fmt.Errorf("warm-up review: allowed=%v err=%v", ok, err)
	}
	pid := s.b.Pullsafe.PID()
	var rows []row
	for _, c := range levels {
		var (
			mu      sync.Mutex
			lat     []time.Duration
			errs    atomic.Int64
			peakRSS atomic.Int64
		)
		lctx, cancel := context.WithTimeout(ctx, each)
		stopRSS := make(chan struct{})
		go func() {
			for {
				if r := int64(rssKiB(pid, "VmRSS")); r > peakRSS.Load() {
					peakRSS.Store(r)
				}
				select {
				case <-stopRSS:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		var wg sync.WaitGroup
		for range c {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for lctx.Err() == nil {
					t := time.Now()
					ok, err := s.post(lctx, body)
					if lctx.Err() != nil {
						break
					}
					if err != nil || !ok {
						errs.Add(1)
						continue
					}
					mine = append(mine, time.Since(t))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		cancel()
		close(stopRSS)
		rate := float64(len(lat)) / elapsed.Seconds()
		goal := ""
		switch c {
		case 1:
			goal = "p99 ≤ 1 ms"
		case 50:
			goal = "≥ 10,000/s, p99 ≤ 2 ms"
		}
		rows = append(rows, row{fmt.Sprintf("HTTPS reviews, %d in flight (3-container Pod, cached)", c),
			fmt.Sprintf("%.0f/s; p50 %s p90 %s p99 %s; errors %d; RSS peak %d MiB", rate,
				dur(percentile(lat, .5)), dur(percentile(lat, .9)), dur(percentile(lat, .99)), errs.Load(), peakRSS.Load()/1024), goal})
	}
	return rows, nil
}

func (s *scene) storm(ctx context.Context) ([]row, error) {
	multi := []bed.Platform{bed.Linux("amd64"), bed.Linux("arm64")}
	if _, err := s.b.Push(s.b.Open, "storm/app", "v1", multi...); err != nil {
		return nil, err
	}
	for i := range 10 {
		if _, err := s.b.Push(s.b.Open, fmt.Sprintf("storm/other%d", i), "v1", multi...); err != nil {
			return nil, err
		}
	}
	proxy, err := registrytest.NewCountingProxy(s.b.Open.Addr)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()
	var wg sync.WaitGroup
	var denied atomic.Int64
	start := time.Now()
	for i := range 110 {
		img := proxy.Addr + "/storm/app:v1"
		if i >= 100 {
			img = fmt.Sprintf("%s/storm/other%d:v1", proxy.Addr, i-100)
		}
		body := review("bench", fmt.Sprintf("storm-%d", i), img)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := s.post(ctx, body); err != nil || !ok {
				denied.Add(1)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	c := proxy.Counts()
	return []row{
		{"rollout storm: HEAD manifest requests (11 images, 110 reviews)", fmt.Sprint(c["HEAD manifests"]), "1 per (image, credential) = 11"},
		{"rollout storm: GET manifest requests (platform rule, pull path)", fmt.Sprint(c["GET manifests"]),
			"≤ 1 per new digest + 1 per platform the nodes pull (registries.verifyBlobs)"},
		{"rollout storm: other requests (ping, blobs)", fmt.Sprintf("%d ping, %d blob GET, %d blob HEAD", c["GET ping"], c["GET blobs"], c["HEAD blobs"]),
			"blob HEADs: config and layers of each pulled platform, once per digest"},
		{"rollout storm: wall time for 110 concurrent reviews", fmt.Sprintf("%s (%d not allowed)", dur(took), denied.Load()), ""},
	}, nil
}

// coldMiss compares a first lookup (new connection, ping, HEAD) and a later
// lookup of another tag in the same repository with the registry's own HEAD
// round trip on a warm connection.
func (s *scene) coldMiss(ctx context.Context) ([]row, error) {
	const n = 40
	for i := range n {
		if _, err := s.b.Push(s.b.Open, "cold/app", fmt.Sprintf("t%d", i), bed.Linux("amd64")); err != nil {
			return nil, err
		}
	}
	host := s.b.Open.Addr
	raw, err := headRoundTrips(ctx, host, n, func(i int) string { return fmt.Sprintf("cold/app/manifests/t%d", i%n) })
	if err != nil {
		return nil, err
	}
	var first, later []time.Duration
	for i := range n {
		r, err := registry.NewResolver(registry.WithAllowLoopback(true))
		if err != nil {
			return nil, err
		}
		t := time.Now()
		if _, err := r.Resolve(ctx, fmt.Sprintf("%s/cold/app:t%d", host, i), nil); err != nil {
			return nil, err
		}
		first = append(first, time.Since(t))
	}
	r, _ := registry.NewResolver(registry.WithAllowLoopback(true))
	if _, err := r.Resolve(ctx, host+"/cold/app:t0", nil); err != nil {
		return nil, err
	}
	for i := 1; i < n; i++ {
		t := time.Now()
		if _, err := r.Resolve(ctx, fmt.Sprintf("%s/cold/app:t%d", host, i), nil); err != nil {
			return nil, err
		}
		later = append(later, time.Since(t))
	}
	rt := percentile(raw, .5)
	return []row{
		{"registry's own HEAD round trip (warm connection), p50", dur(rt), "baseline"},
		{"first lookup (new connection + ping + HEAD), p50", fmt.Sprintf("%s = %.1f× the round trip", dur(percentile(first, .5)), ratio(percentile(first, .5), rt)), ""},
		{"another tag, same repository (connection reused), p50", fmt.Sprintf("%s = %.1f× the round trip", dur(percentile(later, .5)), ratio(percentile(later, .5), rt)), "one request, ≈ 1×"},
	}, nil
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// throughAPIServer creates Pods through the real API server alternately in
// a namespace the webhooks see and in one they exclude.
func (s *scene) throughAPIServer(ctx context.Context, n int) ([]row, error) {
	img := s.b.Open.Addr + "/team/api:v1.4.1"
	pods := s.b.Client.CoreV1()
	var with, without []time.Duration
	for i := range n {
		for _, ns := range []string{"bench", "pullsafe-system"} {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("api-%d", i), Namespace: ns},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: img, ImagePullPolicy: corev1.PullAlways}}}}
			t := time.Now()
			if _, err := pods.Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				return nil, err
			}
			d := time.Since(t)
			if i == 0 {
				continue // first create warms caches on both paths
			}
			if ns == "bench" {
				with = append(with, d)
			} else {
				without = append(without, d)
			}
		}
	}
	w50, w99 := percentile(with, .5), percentile(with, .99)
	o50, o99 := percentile(without, .5), percentile(without, .99)
	return []row{
		{fmt.Sprintf("pod create via kube-apiserver, no webhook (n=%d)", len(without)), fmt.Sprintf("p50 %s p99 %s", dur(o50), dur(o99)), ""},
		{fmt.Sprintf("pod create via kube-apiserver, both pullsafe webhooks (n=%d)", len(with)), fmt.Sprintf("p50 %s p99 %s", dur(w50), dur(w99)), ""},
		{"overhead per create (both webhooks, cached images)", fmt.Sprintf("p50 +%s (%.2f×), p99 +%s", dur(w50-o50), ratio(w50, o50), dur(w99-o99)), ""},
	}, nil
}

// headRoundTrips times the registry's own manifest HEAD, n+1 times on one
// keep-alive connection, paths from path(i); the first, which opened the
// connection, is left out.
func headRoundTrips(ctx context.Context, host string, n int, path func(int) string) ([]time.Duration, error) {
	raw := make([]time.Duration, 0, n)
	hc := &http.Client{}
	for i := range n + 1 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodHead, fmt.Sprintf("http://%s/v2/%s", host, path(i)), nil)
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
		t := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if i > 0 {
			raw = append(raw, time.Since(t))
		}
	}
	return raw, nil
}

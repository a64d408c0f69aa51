package registry

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the resolver's Prometheus series. A nil *metrics records nothing.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	cache     *prometheus.CounterVec
	remaining *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullsafe_registry_requests_total",
			Help: "HTTP requests sent to registries, by registry host, method and status code (0: no response).",
		}, []string{"registry", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pullsafe_registry_request_duration_seconds",
			Help:    "Latency of HTTP requests to registries.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"registry", "method"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullsafe_cache_events_total",
			Help: "Lookup cache events: hit, miss, coalesced (joined a lookup in flight), eviction.",
		}, []string{"event"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pullsafe_registry_ratelimit_remaining",
			Help: "Last RateLimit-Remaining a registry reported (Docker Hub sends it on manifest requests).",
		}, []string{"registry"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.cache, m.remaining} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) cacheEvent(event string) {
	if m != nil {
		m.cache.WithLabelValues(event).Inc()
	}
}

// instrumented counts every request that leaves the process, under the
// authentication transports, so token requests and redirects count too.
type instrumented struct {
	next http.RoundTripper
	m    *metrics
}

func (t instrumented) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if t.m == nil {
		return resp, err
	}
	host := req.URL.Host
	code := "0"
	if resp != nil {
		code = strconv.Itoa(resp.StatusCode)
		// Docker Hub: "ratelimit-remaining: 76;w=21600".
		if v := resp.Header.Get("RateLimit-Remaining"); v != "" {
			n, _, _ := strings.Cut(v, ";")
			if f, perr := strconv.ParseFloat(strings.TrimSpace(n), 64); perr == nil {
				t.m.remaining.WithLabelValues(host).Set(f)
			}
		}
	}
	t.m.requests.WithLabelValues(host, req.Method, code).Inc()
	t.m.latency.WithLabelValues(host, req.Method).Observe(time.Since(start).Seconds())
	return resp, err
}

package registry

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullsafe/pullsafe/internal/metricset"
)

// metrics are the resolver's Prometheus series. A nil *metrics records nothing.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	cache     *prometheus.CounterVec
	remaining *prometheus.GaugeVec
	hosts     *hostLabels
}

func newMetrics(o *options) (*metrics, error) {
	if s := o.sharedMetrics; s != nil {
		// The bound on host labels lives with the series it bounds: a
		// resolver rebuilt by a reload records into the same series, so it
		// shares their recent hosts instead of counting from zero (each
		// reload added maxHostLabels more values).
		return &metrics{requests: s.requests, latency: s.latency, cache: s.cache, remaining: s.remaining,
			hosts: s.hosts.reconfigured(o)}, nil
	}
	reg := o.metrics
	if reg == nil {
		return nil, nil
	}
	s := metricset.New(reg)
	m := &metrics{
		requests: s.CounterVec("pullsafe_registry_requests_total",
			"HTTP requests sent to registries, by registry host, method and status code (0: no response).", "registry", "method", "code"),
		latency: s.HistogramVec("pullsafe_registry_request_duration_seconds", "Latency of HTTP requests to registries.",
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}, "registry", "method"),
		cache: s.CounterVec("pullsafe_cache_events_total",
			"Lookup cache events: hit, miss, coalesced (joined a lookup in flight), eviction.", "event"),
		remaining: s.GaugeVec("pullsafe_registry_ratelimit_remaining",
			"Last RateLimit-Remaining a registry reported (Docker Hub sends it on manifest requests).", "registry"),
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	m.hosts = newHostLabels(o, m.forgetHost)
	return m, nil
}

// forgetHost deletes an expired host's series.
func (m *metrics) forgetHost(host string) {
	for _, v := range []*prometheus.MetricVec{m.requests.MetricVec, m.latency.MetricVec, m.remaining.MetricVec} {
		v.DeletePartialMatch(prometheus.Labels{"registry": host})
	}
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
	host := t.m.hosts.label(req.URL.Host)
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

// Label bounds: the host a user names in an image is a label value, so an
// attacker could make one series per host. Configured registries and Docker
// Hub always have their own; up to maxHostLabels other hosts keep theirs while
// in use (their series are deleted after hostLabelIdle without requests); the
// rest count as "other".
const (
	maxHostLabels = 50
	hostLabelIdle = time.Hour
	otherHosts    = "other"
)

type hostLabels struct {
	fixed map[string]bool // canonical hosts: configured registries, Docker Hub
	*recentHosts
}

// recentHosts are the other hosts with series of their own, shared by every
// resolver that records into the same series.
type recentHosts struct {
	now    func() time.Time
	forget func(host string) // deletes an expired host's series

	mu     sync.Mutex
	recent map[string]time.Time // host -> last request
}

func newHostLabels(o *options, forget func(string)) *hostLabels {
	return (&hostLabels{recentHosts: &recentHosts{now: o.now, forget: forget, recent: map[string]time.Time{}}}).reconfigured(o)
}

// reconfigured is l with the fixed hosts of configuration o, sharing l's
// recent hosts.
func (l *hostLabels) reconfigured(o *options) *hostLabels {
	l = &hostLabels{fixed: map[string]bool{"docker.io": true, "auth.docker.io": true}, recentHosts: l.recentHosts}
	for reg, mirrors := range o.mirrors {
		l.fixed[reg] = true
		for _, m := range mirrors {
			l.fixed[canonicalHost(m)] = true
		}
	}
	for h := range o.insecure {
		l.fixed[h] = true
	}
	for h := range o.caBundles {
		l.fixed[h] = true
	}
	for _, h := range o.hostsDir.hostNames() {
		l.fixed[canonicalHost(h)] = true
	}
	return l
}

// label is host itself while it is configured or among the recent hosts,
// else "other".
func (l *hostLabels) label(host string) string {
	if l.fixed[canonicalHost(host)] {
		return host
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.recent[host]; ok || len(l.recent) < maxHostLabels || l.expire(now) {
		l.recent[host] = now
		return host
	}
	return otherHosts
}

// expire frees the slots of hosts idle for hostLabelIdle; it reports
// whether any was freed.
func (l *hostLabels) expire(now time.Time) bool {
	freed := false
	for h, last := range l.recent {
		if now.Sub(last) > hostLabelIdle {
			delete(l.recent, h)
			l.forget(h)
			freed = true
		}
	}
	return freed
}

package helm

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// TestAlertsFire evaluates the alert expressions on recorded series (one
// sample a minute, from time 0): each fires in the situation it is for, and
// none fires when pullsafe is merely idle or healthy. The `for:` durations
// come on top.
func TestAlertsFire(t *testing.T) {
	exprs := monitoringExprs(t)
	const deny = `pullsafe_reviews_total{webhook="validate",kind="Pod",decision="deny"}`
	const allow = `pullsafe_reviews_total{webhook="validate",kind="Pod",decision="allow"}`
	for _, tc := range []struct {
		name, alert, series string
		at                  time.Duration
		fire                bool
	}{
		// Counters are created at their first increment: a cluster that
		// never denied gets the deny series when it starts to.
		{"first denials ever", "PullsafeDenialSpike", allow + " 0+60x200\n  " + deny + " _x120 0+30x80", 150 * time.Minute, true},
		{"denials three times an hour ago", "PullsafeDenialSpike", deny + " 0+3x120 360+30x80", 150 * time.Minute, true},
		{"steady denials", "PullsafeDenialSpike", deny + " 0+30x200", 150 * time.Minute, false},
		{"idle", "PullsafeDenialSpike", allow + " 0x200", 150 * time.Minute, false},
		{"idle registries", "PullsafeRegistryUnreachable", `pullsafe_registry_requests_total{registry="docker.io",method="GET",code="200"} 5x200`, 150 * time.Minute, false},
		{"registry not answering", "PullsafeRegistryUnreachable", `pullsafe_registry_requests_total{registry="docker.io",method="GET",code="0"} 0+10x200`, 150 * time.Minute, true},
		{"reload ok", "PullsafeConfigReloadFailed", `pullsafe_config_last_reload_successful{pod="a"} 1x200`, 150 * time.Minute, false},
		{"reload failed on one pod", "PullsafeConfigReloadFailed", `pullsafe_config_last_reload_successful{pod="a"} 1x200` + "\n  " + `pullsafe_config_last_reload_successful{pod="b"} 0x200`, 150 * time.Minute, true},
		{"certificate expires in 3 days", "PullsafeCertificateExpiresSoon", `pullsafe_certificate_expiry_timestamp_seconds{pod="a"} 268200x200`, 150 * time.Minute, true},
		{"certificate expires in 30 days", "PullsafeCertificateExpiresSoon", `pullsafe_certificate_expiry_timestamp_seconds{pod="a"} 2601000x200`, 150 * time.Minute, false},
		{"rate-limited", "PullsafeRegistryRateLimited", `pullsafe_registry_requests_total{registry="docker.io",method="GET",code="429"} 0+1x200`, 150 * time.Minute, true},
		{"not rate-limited", "PullsafeRegistryRateLimited", `pullsafe_registry_requests_total{registry="docker.io",method="GET",code="200"} 0+100x200`, 150 * time.Minute, false},
		{"fail open", "PullsafeAdmissionsFailingOpen", `apiserver_admission_webhook_fail_open_count{name="validate.pullsafe.io",type="validating"} 0+1x200`, 150 * time.Minute, true},
		{"another webhook fails open", "PullsafeAdmissionsFailingOpen", `apiserver_admission_webhook_fail_open_count{name="validate.kyverno.svc",type="validating"} 0+1x200`, 150 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expr, ok := exprs["alert "+tc.alert]
			if !ok {
				t.Fatalf("no alert %s", tc.alert)
			}
			st := loadSeries(t, tc.series)
			eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
			q, err := eng.NewInstantQuery(t.Context(), st, nil, expr, time.Unix(0, 0).Add(tc.at))
			if err != nil {
				t.Fatal(err)
			}
			res := q.Exec(t.Context())
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			v, err := res.Vector()
			if err != nil {
				t.Fatal(err)
			}
			if fired := len(v) > 0; fired != tc.fire {
				t.Errorf("%s fired %v, want %v: %v\n%s", tc.alert, fired, tc.fire, v, expr)
			}
		})
	}
}

// loadSeries is Prometheus's test "load 1m" block in memory (promqltest
// itself pulls modules this offline build cannot fetch): one series a line,
// a sample a minute from time 0, "_" for none.
func loadSeries(t *testing.T, text string) storage.Queryable {
	t.Helper()
	var all []storage.Series
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		lset, vals, err := parser.NewParser(parser.Options{}).ParseSeriesDesc(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		var samples []chunks.Sample
		for i, v := range vals {
			if !v.Omitted {
				samples = append(samples, fsample{t: int64(i) * time.Minute.Milliseconds(), f: v.Value})
			}
		}
		all = append(all, storage.NewListSeries(lset, samples))
	}
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range all {
				if matchAll(s.Labels(), ms) {
					out = append(out, s)
				}
			}
			return &listSet{series: out, i: -1}
		}}}
}

func matchAll(l labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

type listSet struct {
	series []storage.Series
	i      int
}

func (s *listSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *listSet) At() storage.Series                { return s.series[s.i] }
func (s *listSet) Err() error                        { return nil }
func (s *listSet) Warnings() annotations.Annotations { return nil }

type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }

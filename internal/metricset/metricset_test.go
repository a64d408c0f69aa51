package metricset

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// What each kind of collector exposes: its name, help, type and labels as
// given, gauges and histograms without labels from the start.
func TestSetRegisters(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(reg)
	s.CounterVec("x_total", "X.", "a", "b").WithLabelValues("1", "2").Inc()
	s.GaugeVec("y", "Y.", "c").WithLabelValues("3").Set(2)
	s.Gauge("z", "Z.")
	s.Histogram("h_seconds", "H.", []float64{1})
	s.HistogramVec("hv_seconds", "HV.", []float64{1}, "d").WithLabelValues("4").Observe(0.5)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range families {
		line := f.GetName() + " " + f.GetType().String() + " " + f.GetHelp()
		for _, l := range f.GetMetric()[0].GetLabel() {
			line += " " + l.GetName()
		}
		got = append(got, line)
	}
	want := []string{"h_seconds HISTOGRAM H.", "hv_seconds HISTOGRAM HV. d", "x_total COUNTER X. a b", "y GAUGE Y. c", "z GAUGE Z."}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("gathered (-want +got):\n%s", d)
	}
}

// New refuses a name already registered; Shared returns the collector
// registered first, so what is recorded through either is gathered.
func TestSetTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	first := New(reg).Gauge("g", "G.")
	s := New(reg)
	s.Gauge("g", "G.")
	if s.Err() == nil {
		t.Error("New: a name registered twice is no error")
	}
	sh := Shared(reg)
	if g := sh.Gauge("g", "G."); g != first || sh.Err() != nil {
		t.Errorf("Shared: got %v (err %v), want the gauge registered first", g, sh.Err())
	}
	sh.GaugeVec("g", "G.", "other")
	if sh.Err() == nil {
		t.Error("Shared: the same name with other labels is no error")
	}
}

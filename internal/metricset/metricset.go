// Package metricset builds pullsafe's Prometheus collectors and registers
// each as it is built, so a package's metrics read as one list of names,
// help texts and labels, and registering them is written once.
package metricset

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Set registers the collectors it builds with one Registerer. The first
// registration error is kept (Err); later collectors are still built, not
// registered, so a caller checks once at the end.
type Set struct {
	reg   prometheus.Registerer
	adopt bool
	err   error
}

// New registers with reg; a name reg already holds is an error.
func New(reg prometheus.Registerer) *Set { return &Set{reg: reg} }

// Shared registers with reg, and where reg already holds the same
// collector (same name, help and labels: a second component of the kind in
// one process, on controller-runtime's global registry) returns that one,
// so both record into the series /metrics shows.
func Shared(reg prometheus.Registerer) *Set { return &Set{reg: reg, adopt: true} }

// Err is the first registration error.
func (s *Set) Err() error { return s.err }

// CounterVec is a counter with labels.
func (s *Set) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(s, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

// GaugeVec is a gauge with labels.
func (s *Set) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(s, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

// Gauge is a gauge without labels: shown (0) from the start, where a
// GaugeVec shows nothing until a value is set.
func (s *Set) Gauge(name, help string) prometheus.Gauge {
	return register(s, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// Histogram is a histogram without labels.
func (s *Set) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return register(s, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

// HistogramVec is a histogram with labels.
func (s *Set) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(s, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
}

func register[C prometheus.Collector](s *Set, c C) C {
	if s.err != nil {
		return c
	}
	err := s.reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if s.adopt && errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	s.err = err
	return c
}

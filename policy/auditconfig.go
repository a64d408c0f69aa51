package policy

import (
	"fmt"
	"time"
)

// AuditConfig switches on the audit of running workloads in `pullsafe
// serve`: every Interval, one replica (a Lease elects it) looks up the
// images of the running Pods with each Pod's own pull secrets and reports
// those that would fail to pull now.
type AuditConfig struct {
	Enabled bool `json:"enabled"`
	// Interval from the end of one pass to the start of the next; a pass
	// is cut short (what is left is "cannot verify") after one Interval.
	Interval Duration `json:"interval,omitempty"`
	// RequestsPerMinute is the audit's budget of HTTP requests to each
	// registry (a token bucket per registry host). The audit asks again
	// rather than trust admission's cached answers; admission lookups are
	// never counted nor held.
	RequestsPerMinute int `json:"requestsPerMinute,omitempty"`
	// Namespaces limits the audit to these namespaces; empty means all
	// (less the excluded ones, as for admission).
	Namespaces []string `json:"namespaces,omitempty"`
}

// Bounds of the audit's settings: a pass more often than every minute
// would mostly re-read the cache; a budget past 600 a minute is no budget.
const (
	MinAuditInterval     = time.Minute
	MaxAuditInterval     = 7 * 24 * time.Hour
	MaxAuditRequestsRate = 600
)

func defaultAudit() AuditConfig {
	return AuditConfig{Interval: Duration{Duration: time.Hour}, RequestsPerMinute: 60}
}

func (a AuditConfig) validate() error {
	if a.Interval.Duration < MinAuditInterval || a.Interval.Duration > MaxAuditInterval {
		return fmt.Errorf("audit.interval: %s is outside [%s, %s]", a.Interval.Duration, MinAuditInterval, MaxAuditInterval)
	}
	if a.RequestsPerMinute < 1 || a.RequestsPerMinute > MaxAuditRequestsRate {
		return fmt.Errorf("audit.requestsPerMinute: %d is outside [1, %d]", a.RequestsPerMinute, MaxAuditRequestsRate)
	}
	for _, ns := range a.Namespaces {
		if ns == "" {
			return fmt.Errorf("audit.namespaces: empty name")
		}
	}
	return nil
}

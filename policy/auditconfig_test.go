package policy

import (
	"strings"
	"testing"
	"time"
)

func TestAuditConfig(t *testing.T) {
	head := "apiVersion: pullsafe.io/v1alpha1\nkind: Config\n"
	tests := []struct {
		yaml    string
		wantErr string // "" = valid
	}{
		{"", ""},
		{"audit: {enabled: true}", ""},
		{"audit: {enabled: true, interval: 10m, requestsPerMinute: 600, namespaces: [shop]}", ""},
		{"audit: {interval: 30s}", "audit.interval: 30s is outside [1m0s, 168h0m0s]"},
		{"audit: {interval: 200h}", "audit.interval"},
		{"audit: {interval: soon}", "audit.interval: \"soon\" is not a duration"},
		{"audit: {requestsPerMinute: 0}", "audit.requestsPerMinute: 0 is outside [1, 600]"},
		{"audit: {requestsPerMinute: 601}", "audit.requestsPerMinute"},
		{"audit: {namespaces: [\"\"]}", "audit.namespaces: empty name"},
		{"audit: {enabeld: true}", "unknown field"},
	}
	for _, tt := range tests {
		_, err := ParseConfig([]byte(head + tt.yaml))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.yaml, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want %q", tt.yaml, err, tt.wantErr)
		}
	}
	cfg, err := ParseConfig([]byte(head + "audit: {enabled: true}"))
	if err != nil || cfg.Audit.Interval.Duration != time.Hour || cfg.Audit.RequestsPerMinute != 60 {
		t.Errorf("defaults under enabled: %+v %v", cfg.Audit, err)
	}
}

package certs

import (
	"crypto/x509"
	"encoding/pem"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestExpiryCollector: the gauge is the served certificate's NotAfter, read
// at each scrape, so a rotation shows at the next one; no file, no series
// (an alert on a made-up value would be worse than none).
func TestExpiryCollector(t *testing.T) {
	dir := t.TempDir()
	c := NewExpiryCollector(dir)
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Fatalf("without a certificate: %d series, want 0", n)
	}
	now := time.Now()
	ca, err := NewCA("test-ca", now, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, validity := range []time.Duration{time.Hour, 2 * time.Hour} {
		certPEM, keyPEM, err := ca.Issue([]string{"pullsafe.pullsafe-system.svc"}, now, validity)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteDir(dir, certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(certPEM)
		leaf, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		want := "# HELP pullsafe_certificate_expiry_timestamp_seconds Unix time the serving certificate in --cert-dir expires (NotAfter).\n" +
			"# TYPE pullsafe_certificate_expiry_timestamp_seconds gauge\n" +
			"pullsafe_certificate_expiry_timestamp_seconds " + strconv.FormatInt(leaf.NotAfter.Unix(), 10) + "\n"
		if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
			t.Errorf("validity %s: %v", validity, err)
		}
	}
}

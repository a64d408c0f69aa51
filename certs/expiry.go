package certs

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
)

// expiryCollector exports the NotAfter of the certificate in a folder. It
// reads the file at each scrape rather than hooking every writer (pullsafe's
// own rotation, cert-manager, the kubelet's Secret volume updates): what is
// on disk is what the webhook server serves, since it reloads on change.
type expiryCollector struct {
	dir  string
	desc *prometheus.Desc
}

// NewExpiryCollector returns the pullsafe_certificate_expiry_timestamp_seconds
// gauge for dir/tls.crt. An unreadable certificate gives no series.
func NewExpiryCollector(dir string) prometheus.Collector {
	return &expiryCollector{dir: dir, desc: prometheus.NewDesc("pullsafe_certificate_expiry_timestamp_seconds",
		"Unix time the serving certificate in --cert-dir expires (NotAfter).", nil, nil)}
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	data, err := os.ReadFile(filepath.Join(c.dir, CertFile))
	if err != nil {
		return
	}
	// The first block is the leaf: the one whose expiry breaks admissions.
	blk, _ := pem.Decode(data)
	if blk == nil {
		return
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()))
}

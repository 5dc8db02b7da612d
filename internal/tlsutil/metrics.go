package tlsutil

import "github.com/prometheus/client_golang/prometheus"

var (
	descEnabled = prometheus.NewDesc("mo_tls_enabled", "1 when this process speaks mutual TLS, 0 when it speaks plaintext.", nil, nil)
	descExpiry  = prometheus.NewDesc("mo_tls_cert_expiry_timestamp_seconds", "When this process's TLS certificate expires (Unix time), by role.", []string{"role"}, nil)
)

// expiryCollector exports whether TLS is on and the current certificate's
// expiry, read at scrape time so that a reload shows at once.
type expiryCollector struct{ s *Store }

// NewCollector returns the TLS metrics of a process: mo_tls_enabled and,
// with TLS on (s non-nil), mo_tls_cert_expiry_timestamp_seconds.
func NewCollector(s *Store) prometheus.Collector { return expiryCollector{s} }

// Describe implements prometheus.Collector.
func (c expiryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEnabled
	ch <- descExpiry
}

// Collect implements prometheus.Collector.
func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s == nil {
		ch <- prometheus.MustNewConstMetric(descEnabled, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descEnabled, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, float64(c.s.NotAfter().Unix()), string(c.s.role))
}

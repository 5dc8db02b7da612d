package version

import "github.com/prometheus/client_golang/prometheus"

// NewBuildInfo returns the mo_build_info gauge: 1, labelled with the
// version and the Go version.
func NewBuildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "mo_build_info",
		Help:        "Always 1; its labels name the build's version and Go version.",
		ConstLabels: prometheus.Labels{"version": String(), "goversion": GoVersion()},
	})
	g.Set(1)
	return g
}

package agent

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/version"
)

// instanceStates are the instance states exported, as zero when absent.
var instanceStates = []string{api.InstanceRunning, api.InstanceExited, api.InstanceFailed, api.InstanceStopped}

// newMetricsHandle returns the GET /metrics handle: the Go and process
// collectors, and the agent's instances by state and its sampled CPU and
// memory, read from the status cache at scrape time. No label carries a
// workload id.
func newMetricsHandle(status *statusCache, tlsMetrics prometheus.Collector) httprouter.Handle {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&statusCollector{status: status},
		version.NewBuildInfo(),
		tlsMetrics,
	)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { h.ServeHTTP(w, r) }
}

// statusCollector exports the status cache.
type statusCollector struct {
	status *statusCache
}

var (
	descWorkloads = prometheus.NewDesc("mo_agent_workloads", "Workload instances on this agent by state.", []string{"state"}, nil)
	descCPU       = prometheus.NewDesc("mo_agent_cpu_usage_percent", "Node CPU use as last sampled (what health checks report).", nil, nil)
	descMemory    = prometheus.NewDesc("mo_agent_memory_usage_percent", "Node memory use as last sampled (what health checks report).", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWorkloads
	ch <- descCPU
	ch <- descMemory
}

// Collect implements prometheus.Collector.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	c.status.mu.Lock()
	cpu, mem := c.status.cpu, c.status.mem
	byState := map[string]int{}
	for _, w := range c.status.workloads {
		byState[w.State]++
	}
	c.status.mu.Unlock()
	for _, st := range instanceStates {
		ch <- prometheus.MustNewConstMetric(descWorkloads, prometheus.GaugeValue, float64(byState[st]), st)
	}
	ch <- prometheus.MustNewConstMetric(descCPU, prometheus.GaugeValue, cpu)
	ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, mem)
}

package agent

import (
	"cmp"
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/version"
)

// instanceStates are the instance states exported, as zero when absent.
var instanceStates = []string{api.InstanceRunning, api.InstanceRestarting, api.InstanceExited, api.InstanceFailed, api.InstanceStopped}

// healths are the health verdicts exported, as zero when absent.
var healths = []string{api.HealthHealthy, api.HealthUnhealthy, api.HealthUnknown}

// newMetricsHandle returns the GET /metrics handle: the Go and process
// collectors, and the agent's instances by state and its sampled CPU and
// memory, read from the status cache at scrape time, and the health checks
// and restarts in place counted by lc. No label carries a workload id.
func newMetricsHandle(status *statusCache, lc *lifeState, tlsMetrics prometheus.Collector) httprouter.Handle {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&statusCollector{status: status},
		&lifeCollector{lc: lc},
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
	descByHealth  = prometheus.NewDesc("mo_agent_instances_by_health", "Live (running or restarting) workload instances on this agent by the verdict of their health check.", []string{"health"}, nil)
	descChecks    = prometheus.NewDesc("mo_agent_health_checks_total", "Health check probes run by this agent, by result.", []string{"result"}, nil)
	descRestarts  = prometheus.NewDesc("mo_agent_restarts_total", "Restarts in place of workload instances attempted by this agent.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWorkloads
	ch <- descCPU
	ch <- descMemory
	ch <- descByHealth
}

// Collect implements prometheus.Collector.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	c.status.mu.Lock()
	cpu, mem := c.status.cpu, c.status.mem
	byState := map[string]int{}
	byHealth := map[string]int{}
	for _, w := range c.status.workloads {
		byState[w.State]++
		if w.State == api.InstanceRunning || w.State == api.InstanceRestarting {
			byHealth[cmp.Or(w.Health, api.HealthUnknown)]++
		}
	}
	c.status.mu.Unlock()
	for _, st := range instanceStates {
		ch <- prometheus.MustNewConstMetric(descWorkloads, prometheus.GaugeValue, float64(byState[st]), st)
	}
	for _, h := range healths {
		ch <- prometheus.MustNewConstMetric(descByHealth, prometheus.GaugeValue, float64(byHealth[h]), h)
	}
	ch <- prometheus.MustNewConstMetric(descCPU, prometheus.GaugeValue, cpu)
	ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, mem)
}

// lifeCollector exports the counters of health checks and restarts.
type lifeCollector struct {
	lc *lifeState
}

// Describe implements prometheus.Collector.
func (c *lifeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descChecks
	ch <- descRestarts
}

// Collect implements prometheus.Collector.
func (c *lifeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, float64(c.lc.checksOK.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, float64(c.lc.checksFail.Load()), "fail")
	ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(c.lc.restarts.Load()))
}

package agent

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/micro-orchestrator/mo/api"
)

// statusCache holds the GET /status answer, encoded ahead of time: it is
// rebuilt when a sample arrives (once a second) or an instance changes, so a
// request costs one atomic load and one write.
type statusCache struct {
	mu        sync.Mutex // serializes rebuilds
	nodeID    string
	cpu, mem  float64
	workloads []api.AgentWorkload

	body atomic.Pointer[encodedStatus]
}

// encodedStatus is a ready answer: the body and its Content-Length header.
type encodedStatus struct {
	body   []byte
	length []string
}

// newStatusCache returns a cache that already holds a valid answer.
func newStatusCache(nodeID string) *statusCache {
	c := &statusCache{nodeID: nodeID, workloads: []api.AgentWorkload{}}
	c.rebuildLocked()
	return c
}

// setUsage records a CPU and memory sample (percent).
func (c *statusCache) setUsage(cpu, mem float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cpu, c.mem = percent(cpu), percent(mem)
	c.rebuildLocked()
}

// setWorkloads records the instances (the supervisor's snapshot, not copied).
func (c *statusCache) setWorkloads(ws []api.AgentWorkload) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ws == nil {
		ws = []api.AgentWorkload{}
	}
	c.workloads = ws
	c.rebuildLocked()
}

func (c *statusCache) rebuildLocked() {
	b, err := json.Marshal(api.AgentStatus{NodeID: c.nodeID, CPUUsage: c.cpu, MemoryUsage: c.mem, Workloads: c.workloads})
	if err != nil {
		return // cannot happen: every float is finite, see percent
	}
	b = append(b, '\n')
	c.body.Store(&encodedStatus{body: b, length: []string{strconv.Itoa(len(b))}})
}

// encoded returns the ready answer; callers must not modify it.
func (c *statusCache) encoded() *encodedStatus { return c.body.Load() }

// Body returns the encoded answer; callers must not modify it.
func (c *statusCache) Body() []byte { return c.body.Load().body }

// Status decodes the current answer (for tests and logs, not the hot path).
func (c *statusCache) Status() api.AgentStatus {
	var st api.AgentStatus
	_ = json.Unmarshal(c.Body(), &st)
	return st
}

// percent clamps v to [0, 100], rounds it to one decimal and maps NaN to 0.
func percent(v float64) float64 {
	if math.IsNaN(v) || v < 0 {
		return 0
	}
	if v > 100 {
		return 100
	}
	return math.Round(v*10) / 10
}

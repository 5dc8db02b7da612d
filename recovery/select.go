package recovery

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/micro-orchestrator/mo/api"
)

// Candidate is a node that may take a workload.
type Candidate struct {
	ID       string
	Address  string
	CPU      float64
	Assigned int  // workloads the desired state already places there
	Leased   bool // its heartbeats reach the leader, so it can hold a lease for exclusive workloads
	// Capacity is what the node declared when it registered; nil for an
	// agent that declares none.
	Capacity *api.Capacity
	// Allocated is the sum of the declared resources of the workloads placed
	// there (see allocated), this pass's picks included.
	Allocated api.Capacity
	// Jobs counts the instances of each job placed there, this pass's
	// picks included: instances of one job spread over the nodes first.
	Jobs map[string]int
}

// Free is what the node has left to give: its capacity less what is
// allocated (zero for a node without a declared capacity).
func (c Candidate) Free() api.Capacity {
	if c.Capacity == nil {
		return api.Capacity{}
	}
	return api.Capacity{
		CPUMillicores: c.Capacity.CPUMillicores - c.Allocated.CPUMillicores,
		MemoryMB:      c.Capacity.MemoryMB - c.Allocated.MemoryMB,
	}
}

// asks returns what a workload's resources ask of a node's capacity: CPU and
// memory (pids are enforced by the agent but not placed).
func asks(r *api.Resources) api.Capacity {
	if r == nil {
		return api.Capacity{}
	}
	return api.Capacity{CPUMillicores: r.CPUMillicores, MemoryMB: r.MemoryMB}
}

// Fits reports whether the node has room for resources r. A workload that
// asks for no CPU and no memory fits every node. A node that declared no
// capacity (an agent older than capacity reporting) takes only such
// workloads: without a declared capacity, nothing placed there could be
// known to fit, and an overcommitted node is worse than a workload waiting
// until its agent is upgraded.
func (c Candidate) Fits(r *api.Resources) bool {
	need := asks(r)
	if need == (api.Capacity{}) {
		return true
	}
	if c.Capacity == nil {
		return false
	}
	free := c.Free()
	return need.CPUMillicores <= free.CPUMillicores && need.MemoryMB <= free.MemoryMB
}

// cpuBand is the width of the CPU bands within which nodes count as equally
// loaded, so that a burst spreads by workload count instead of piling onto
// the node whose last CPU sample happened to be a little lower.
const cpuBand = 10.0

// Selector picks target nodes: among the nodes with room for the workload's
// resources, lowest CPU first, then fewest workloads, and it counts its own
// picks (and the resources they take) so that a burst spreads over the
// nodes and never overfills one.
type Selector struct {
	nodes []*Candidate
}

// NewSelector returns a selector over the given candidates (online and below
// the CPU limit).
func NewSelector(cands []Candidate) *Selector {
	s := &Selector{}
	for i := range cands {
		c := cands[i]
		s.nodes = append(s.nodes, &c)
	}
	return s
}

// Pick returns the best node that is not in avoid, and counts the pick.
func (s *Selector) Pick(avoid map[string]bool) (Candidate, bool) {
	return s.PickFor(avoid, nil, nil)
}

// PickWhere is Pick among the candidates for which fit (if not nil) is true;
// it reports false when none fits.
func (s *Selector) PickWhere(avoid map[string]bool, fit func(Candidate) bool) (Candidate, bool) {
	return s.PickFor(avoid, nil, fit)
}

// PickFor is PickWhere among the candidates with room for resources r; the
// pick takes r from the chosen node's free capacity.
func (s *Selector) PickFor(avoid map[string]bool, r *api.Resources, fit func(Candidate) bool) (Candidate, bool) {
	return s.PickSpread(avoid, r, fit, "")
}

// PickSpread is PickFor for an instance of job (none when empty): among the
// nodes it fits, those with the fewest instances of that job come first.
func (s *Selector) PickSpread(avoid map[string]bool, r *api.Resources, fit func(Candidate) bool, job string) (Candidate, bool) {
	var pool, fitting []*Candidate
	for _, n := range s.nodes {
		if !n.Fits(r) || (fit != nil && !fit(*n)) {
			continue
		}
		fitting = append(fitting, n)
		if !avoid[n.ID] {
			pool = append(pool, n)
		}
	}
	if len(pool) == 0 {
		pool = fitting // retry on a node tried before rather than not at all
	}
	if len(pool) == 0 {
		return Candidate{}, false
	}
	sort.Slice(pool, func(i, j int) bool {
		a, b := pool[i], pool[j]
		if job != "" && a.Jobs[job] != b.Jobs[job] {
			return a.Jobs[job] < b.Jobs[job]
		}
		ba, bb := math.Floor(a.CPU/cpuBand), math.Floor(b.CPU/cpuBand)
		if ba != bb {
			return ba < bb
		}
		if a.Assigned != b.Assigned {
			return a.Assigned < b.Assigned
		}
		return a.ID < b.ID
	})
	n := pool[0]
	n.Assigned++
	if job != "" {
		if n.Jobs == nil {
			n.Jobs = map[string]int{}
		}
		n.Jobs[job]++
	}
	need := asks(r)
	n.Allocated.CPUMillicores += need.CPUMillicores
	n.Allocated.MemoryMB += need.MemoryMB
	return *n, true
}

// Fits reports whether some candidate has room for resources r now.
func (s *Selector) Fits(r *api.Resources) bool {
	for _, n := range s.nodes {
		if n.Fits(r) {
			return true
		}
	}
	return false
}

// NoFitReason says why no candidate has room for resources r, naming the
// resource and the node that comes closest, for example "no node has 2000
// millicores free (n2 has 1500)".
func (s *Selector) NoFitReason(r *api.Resources) string {
	need := asks(r)
	var declared []*Candidate
	var undeclared []string
	for _, n := range s.nodes {
		if n.Capacity == nil {
			undeclared = append(undeclared, n.ID)
		} else {
			declared = append(declared, n)
		}
	}
	if len(declared) == 0 {
		return fmt.Sprintf("no node has declared a capacity to fit %s (%s registered none, as agents older than capacity reporting do: such a node takes only workloads without cpu or memory resources)",
			describe(need), strings.Join(undeclared, ", "))
	}
	// The node with the most of a resource left, by id among equals.
	most := func(get func(api.Capacity) int) *Candidate {
		var best *Candidate
		for _, n := range declared {
			if best == nil || get(n.Free()) > get(best.Free()) || (get(n.Free()) == get(best.Free()) && n.ID < best.ID) {
				best = n
			}
		}
		return best
	}
	cpu := func(c api.Capacity) int { return c.CPUMillicores }
	mem := func(c api.Capacity) int { return c.MemoryMB }
	if n := most(cpu); need.CPUMillicores > n.Free().CPUMillicores {
		return fmt.Sprintf("no node has %d millicores free (%s has %d)", need.CPUMillicores, n.ID, max(n.Free().CPUMillicores, 0))
	}
	if n := most(mem); need.MemoryMB > n.Free().MemoryMB {
		return fmt.Sprintf("no node has %d MiB of memory free (%s has %d)", need.MemoryMB, n.ID, max(n.Free().MemoryMB, 0))
	}
	// Each fits somewhere, but not both on one node: name the node whose
	// tighter resource comes closest.
	var best *Candidate
	var bestScore float64
	for _, n := range declared {
		f := n.Free()
		score := math.Min(ratio(f.CPUMillicores, need.CPUMillicores), ratio(f.MemoryMB, need.MemoryMB))
		if best == nil || score > bestScore {
			best, bestScore = n, score
		}
	}
	f := best.Free()
	return fmt.Sprintf("no node has %d millicores and %d MiB of memory free together (%s has %d millicores and %d MiB)",
		need.CPUMillicores, need.MemoryMB, best.ID, max(f.CPUMillicores, 0), max(f.MemoryMB, 0))
}

// ratio is have/need, +Inf when nothing is needed.
func ratio(have, need int) float64 {
	if need <= 0 {
		return math.Inf(1)
	}
	return float64(have) / float64(need)
}

// describe names the CPU and memory asked for.
func describe(c api.Capacity) string {
	var parts []string
	if c.CPUMillicores > 0 {
		parts = append(parts, fmt.Sprintf("%d millicores", c.CPUMillicores))
	}
	if c.MemoryMB > 0 {
		parts = append(parts, fmt.Sprintf("%d MiB of memory", c.MemoryMB))
	}
	return strings.Join(parts, " and ")
}

// Len is the number of candidate nodes.
func (s *Selector) Len() int { return len(s.nodes) }

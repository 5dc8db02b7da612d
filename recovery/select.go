package recovery

import (
	"math"
	"sort"
)

// Candidate is a node that may take a workload.
type Candidate struct {
	ID       string
	Address  string
	CPU      float64
	Assigned int  // workloads the desired state already places there
	Leased   bool // its heartbeats reach the leader, so it can hold a lease for exclusive workloads
}

// cpuBand is the width of the CPU bands within which nodes count as equally
// loaded, so that a burst spreads by workload count instead of piling onto
// the node whose last CPU sample happened to be a little lower.
const cpuBand = 10.0

// Selector picks target nodes: lowest CPU first, then fewest workloads, and
// it counts its own picks so that a burst spreads over the nodes.
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
	return s.PickWhere(avoid, nil)
}

// PickWhere is Pick among the candidates for which fit (if not nil) is true;
// it reports false when none fits.
func (s *Selector) PickWhere(avoid map[string]bool, fit func(Candidate) bool) (Candidate, bool) {
	var pool, fitting []*Candidate
	for _, n := range s.nodes {
		if fit != nil && !fit(*n) {
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
		ba, bb := math.Floor(a.CPU/cpuBand), math.Floor(b.CPU/cpuBand)
		if ba != bb {
			return ba < bb
		}
		if a.Assigned != b.Assigned {
			return a.Assigned < b.Assigned
		}
		return a.ID < b.ID
	})
	pool[0].Assigned++
	return *pool[0], true
}

// Len is the number of candidate nodes.
func (s *Selector) Len() int { return len(s.nodes) }

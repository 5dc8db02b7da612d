package recovery

import (
	"slices"

	"github.com/micro-orchestrator/mo/fsm"
)

// scope returns the workloads a placement pass looks at, sorted on a full
// pass, and whether the pass is full. A pass that is not full looks at the
// workloads created since the last pass and at the recovery queue, not at
// every pending workload: so a submission costs what it adds, not what the
// state holds. A full pass is narrowed the same way when no node can take
// any work (idle) and every waiting workload was already told why (the same
// reason as at the last full pass): nothing it would look at can change.
func (e *Engine) scope(s *fsm.State, full, idle bool, why string) ([]string, bool) {
	fresh, next, ok := s.FreshSince(e.freshMark)
	e.freshMark = next
	if !ok {
		full = true // the log does not reach back: look at everything
	} else if full && idle && why == e.idleWhy {
		full = false
	}
	if full {
		if idle {
			e.idleWhy = why
		} else {
			e.idleWhy = ""
		}
		ids := s.PendingIDs()
		for _, q := range s.RecoveryQueue {
			ids = append(ids, q.WorkloadID)
		}
		slices.Sort(ids)
		return slices.Compact(ids), true
	}
	if !idle {
		e.idleWhy = "" // nodes came up: the next full pass looks at everything
	}
	ids := fresh
	if len(s.RecoveryQueue) > 0 {
		seen := make(map[string]bool, len(fresh))
		for _, id := range fresh {
			seen[id] = true
		}
		for _, q := range s.RecoveryQueue {
			if !seen[q.WorkloadID] {
				ids = append(ids, q.WorkloadID)
			}
		}
	}
	return ids, false
}

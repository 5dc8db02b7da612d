package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/jobs"
)

// Garbage collection defaults (scheduler serve --gc-after, --node-gc-after).
const (
	DefaultGCAfter     = time.Hour
	DefaultNodeGCAfter = 24 * time.Hour
	// MinGCAfter is the shortest --gc-after and --node-gc-after.
	MinGCAfter = time.Second
)

// gcInterval is how often the leader collects: half the shorter age, from
// 1s to 1m.
func (r *Replica) gcInterval() time.Duration {
	d := min(r.cfg.GCAfter, r.cfg.NodeGCAfter) / 2
	return min(max(d, time.Second), time.Minute)
}

// gcLoop collects garbage every gcInterval while this replica leads.
func (r *Replica) gcLoop(ctx context.Context) {
	t := time.NewTicker(r.gcInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.collectGarbage(time.Now().UTC()); err != nil && ctx.Err() == nil {
				r.log.Warn("garbage collection failed", "error", err)
			}
		}
	}
}

// collectGarbage removes, through raft, the stopped and completed workloads
// (and the instances of jobs that gave up) not changed for --gc-after, the
// nodes offline and empty for --node-gc-after, and the stopped jobs with no
// instance left.
func (r *Replica) collectGarbage(now time.Time) (api.GCResponse, error) {
	return r.collectGarbageAged(now, r.cfg.GCAfter)
}

// collectGarbageAged is collectGarbage with workloads and jobs collected
// age after they ended.
func (r *Replica) collectGarbageAged(now time.Time, age time.Duration) (api.GCResponse, error) {
	cmd := &fsm.CollectGarbage{WorkloadsBefore: now.Add(-age), NodesBefore: now.Add(-r.cfg.NodeGCAfter)}
	var eng interface{ InstanceGone(*api.Workload) bool }
	if ls := r.currentLeader(); ls != nil && ls.recovery != nil {
		eng = ls.recovery
	}
	r.fsm.Read(func(s *fsm.State) {
		gone := map[string]int{}
		for id, w := range s.Workloads {
			if !s.Collectable(w, cmd.WorkloadsBefore) {
				continue
			}
			// A stopped instance its node may still run holds what an
			// exclusive job waits for, and the room it takes: it stays
			// until it is surely gone.
			if w.State == api.StateStopped && w.Node != "" && (eng == nil || !eng.InstanceGone(w)) {
				continue
			}
			// A job's instance that gave up lately paces its replacements.
			if w.State == api.StatePermanentlyFailed && now.Sub(w.UpdatedAt) < jobs.ReplaceWindow {
				continue
			}
			cmd.Workloads = append(cmd.Workloads, id)
			if w.Job != "" {
				gone[w.Job]++
			}
		}
		for id, n := range s.Nodes {
			if s.NodeCollectable(n, cmd.NodesBefore) {
				cmd.Nodes = append(cmd.Nodes, id)
			}
		}
		// A stopped job whose last instances go in this collection goes too.
		left := map[string]int{}
		for _, w := range s.Workloads {
			if w.Job != "" {
				left[w.Job]++
			}
		}
		for name, j := range s.Jobs {
			if j.Stopped && j.UpdatedAt.Before(cmd.WorkloadsBefore) && left[name] == gone[name] {
				cmd.Jobs = append(cmd.Jobs, name)
			}
		}
	})
	res := api.GCResponse{Workloads: len(cmd.Workloads), Nodes: len(cmd.Nodes), Jobs: len(cmd.Jobs)}
	if res == (api.GCResponse{}) {
		return res, nil
	}
	sortStrings(cmd.Workloads, cmd.Nodes, cmd.Jobs)
	if err := r.Apply(cmd); err != nil {
		return api.GCResponse{}, err
	}
	r.log.Info("garbage collected", "workloads", res.Workloads, "nodes", res.Nodes, "jobs", res.Jobs)
	if res.Nodes > 0 || res.Jobs > 0 {
		r.event("garbage_collected", "cluster", fmt.Sprintf("removed %d workloads, %d nodes, %d jobs", res.Workloads, res.Nodes, res.Jobs), "", "")
	}
	return res, nil
}

// sortStrings sorts each list, so that the command is the same whatever the
// map order.
func sortStrings(lists ...[]string) {
	for _, l := range lists {
		slices.Sort(l)
	}
}

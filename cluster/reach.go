package cluster

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/micro-orchestrator/mo/health"
)

// Handing leadership to a replica that reaches the nodes this leader cannot.
const (
	reachEvery = time.Second
	// reachHold is how long nodes must stay alive-but-unreachable (heard
	// only through another replica) before the leader hands over.
	reachHold = 10 * time.Second
	// reachRest is the least time between two such hand-overs by one replica,
	// so that a cut that no replica sees around cannot bounce leadership.
	reachRest = time.Minute
)

// reachLoop watches, while this replica leads, for nodes that are alive (their
// heartbeats arrive through a follower) but that this leader cannot check.
// Their work stays where it is either way; after reachHold, leadership goes to
// the follower that relays most of them, since a leader that cannot reach its
// nodes can neither place nor stop workloads there.
func (r *Replica) reachLoop(ctx context.Context, ls *leaderState) {
	t := time.NewTicker(reachEvery)
	defer t.Stop()
	var since time.Time // when the current run of unreachable nodes began
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		via := map[string]int{}
		held := 0
		now := time.Now()
		for _, nh := range ls.health.Snapshot() {
			// Alive, failing this leader's checks, and heard only through
			// others lately: this leader is the one cut off from it.
			if nh.HeldAlive && nh.HeardVia != "" && now.Sub(nh.LastHeardDirect) > health.DefaultAliveWindow {
				held++
				via[nh.HeardVia]++
			}
		}
		if held == 0 {
			since = time.Time{}
			continue
		}
		if since.IsZero() {
			since = time.Now()
			r.log.Warn("nodes are alive (heard through other replicas) but this leader cannot reach them; their workloads stay", "nodes", held)
		}
		if time.Since(since) < reachHold {
			continue
		}
		r.mu.Lock()
		rested := time.Since(r.lastReachTransfer) >= reachRest
		r.mu.Unlock()
		if !rested {
			continue
		}
		target := bestRelay(via)
		addr := r.raftAddr(target)
		if addr == "" {
			continue
		}
		r.mu.Lock()
		r.lastReachTransfer = time.Now()
		r.mu.Unlock()
		r.log.Warn("handing leadership to a replica that reaches the nodes this leader cannot", "to", target, "unreachable_nodes", held)
		if err := r.raft.LeadershipTransferToServer(raft.ServerID(target), raft.ServerAddress(addr)).Error(); err != nil {
			r.log.Warn("leadership transfer failed", "to", target, "error", err)
		}
		since = time.Time{}
	}
}

// bestRelay returns the replica that relays the most nodes (ties: lowest id).
func bestRelay(via map[string]int) string {
	ids := make([]string, 0, len(via))
	for id := range via {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if via[ids[i]] != via[ids[j]] {
			return via[ids[i]] > via[ids[j]]
		}
		return ids[i] < ids[j]
	})
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

// raftAddr returns the raft address of a voter, or "".
func (r *Replica) raftAddr(id string) string {
	for _, s := range r.servers() {
		if string(s.ID) == id && s.Suffrage == raft.Voter {
			return string(s.Address)
		}
	}
	return ""
}

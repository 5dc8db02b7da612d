package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/health"
	"github.com/micro-orchestrator/mo/jobs"
	"github.com/micro-orchestrator/mo/recovery"
)

// leaderState is what exists only while this replica leads: the context of
// the leader-only loops and the handles the API needs to reach them.
type leaderState struct {
	term     uint64
	ctx      context.Context // cancelled when leadership is lost
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	health   *health.Monitor
	recovery *recovery.Engine
	jobs     *jobs.Watcher

	alertKick chan struct{} // capacity 1: wakes the alert loop

	mu       sync.Mutex
	statuses map[string]string // node statuses as last written, to tell transitions
}

// watchLeadership follows raft's leadership notifications: on gaining
// leadership it waits for Barrier (so the FSM is current) and starts the
// leader-only loops; on losing it, it stops them at once.
func (r *Replica) watchLeadership(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-r.leaderCh:
			// Drain to the latest notification.
			for drained := false; !drained; {
				select {
				case isLeader = <-r.leaderCh:
				default:
					drained = true
				}
			}
			if isLeader {
				r.startLeading(ctx)
			} else {
				r.stopLeading()
			}
		}
	}
}

func (r *Replica) startLeading(ctx context.Context) {
	r.stopLeading()
	// The FSM must hold everything committed before this replica acts on it;
	// retry the barrier for as long as this replica leads.
	for {
		err := r.raft.Barrier(applyTimeout).Error()
		if !r.IsLeader() || ctx.Err() != nil {
			return
		}
		if err == nil {
			break
		}
		r.log.Warn("barrier after election failed; retrying", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	term := r.raft.CurrentTerm()
	var lastSeq uint64
	var myAddr string
	r.fsm.Read(func(s *fsm.State) { lastSeq, myAddr = s.LastSeq, s.Replicas[r.cfg.ID] })
	if cur := r.seq.Load(); lastSeq > cur {
		r.seq.Store(lastSeq)
	}
	if myAddr != r.cfg.AdvertiseHTTP {
		if err := r.Apply(&fsm.SetReplica{ID: r.cfg.ID, HTTP: r.cfg.AdvertiseHTTP}); err != nil {
			r.log.Warn("recording own HTTP address failed", "error", err)
		}
	}
	if r.restore != nil {
		st := r.restore
		r.restore = nil
		if err := r.Apply(&fsm.LoadState{State: st}); err != nil {
			r.log.Error("seeding state from --restore failed", "error", err)
		} else {
			r.log.Info("state seeded from --restore", "file", r.cfg.RestoreFile, "workloads", len(st.Workloads), "nodes", len(st.Nodes))
			r.fsm.Read(func(s *fsm.State) { lastSeq = s.LastSeq })
			if lastSeq > r.seq.Load() {
				r.seq.Store(lastSeq)
			}
		}
	}

	lctx, cancel := context.WithCancel(ctx)
	ls := &leaderState{term: term, ctx: lctx, cancel: cancel, alertKick: make(chan struct{}, 1), statuses: map[string]string{}}
	ls.wg.Add(1)
	go func() { defer ls.wg.Done(); r.saveLoop(lctx) }()
	r.startLeaderLoops(lctx, ls)
	// Publish only once every field is set: handlers read ls without a lock.
	r.mu.Lock()
	r.leader = ls
	r.mu.Unlock()
	r.log.Info("leadership established", "term", term)
	r.event(api.EventLeaderElected, r.cfg.ID, fmt.Sprintf("replica %s leads (term %d)", r.cfg.ID, term), "", "")
}

// stopLeading cancels the leader-only loops and waits for them to end.
func (r *Replica) stopLeading() {
	r.mu.Lock()
	ls := r.leader
	r.leader = nil
	r.mu.Unlock()
	if ls == nil {
		return
	}
	ls.cancel()
	ls.wg.Wait()
	r.alerts.Reset()
	r.event(api.EventLeadershipLost, r.cfg.ID, fmt.Sprintf("replica %s no longer leads (term %d)", r.cfg.ID, ls.term), "", "")
	r.log.Info("leadership lost: leader loops stopped", "term", ls.term)
}

// currentLeader returns the leader state while this replica leads.
func (r *Replica) currentLeader() *leaderState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

// saveLoop writes the state file every SaveInterval while leading.
func (r *Replica) saveLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.saveStateFile(); err != nil {
				r.log.Error("saving state file", "error", err)
			}
		}
	}
}

package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// joinLoop asks the replicas of --join, in turn, to add this replica as a
// voter, until one accepts or JoinTimeout passes.
func (r *Replica) joinLoop(ctx context.Context) error {
	req := api.JoinRequest{ID: r.cfg.ID, HTTP: r.cfg.AdvertiseHTTP, Raft: r.cfg.AdvertiseRaft}
	deadline := time.Now().Add(r.cfg.JoinTimeout)
	lastLog := time.Time{}
	for attempt := 1; ; attempt++ {
		var errs []string
		for _, addr := range r.cfg.Join {
			if addr == r.cfg.AdvertiseHTTP || addr == r.cfg.HTTPAddr {
				continue
			}
			err := r.postJSON(ctx, addr, "/cluster/join", req)
			if err == nil {
				r.log.Info("joined the cluster", "via", addr)
				return nil
			}
			errs = append(errs, fmt.Sprintf("%s: %v", addr, err))
		}
		if r.raft.Leader() != "" && r.memberOfConfig() {
			r.log.Info("already a member of the cluster")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("could not join any of %s within %s: %s", strings.Join(r.cfg.Join, ","), r.cfg.JoinTimeout, strings.Join(errs, "; "))
		}
		if time.Since(lastLog) > 5*time.Second {
			r.log.Info("waiting to join the cluster; retrying", "attempt", attempt, "errors", strings.Join(errs, "; "))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// memberOfConfig reports whether this replica is in the raft configuration.
func (r *Replica) memberOfConfig() bool {
	for _, s := range r.servers() {
		if string(s.ID) == r.cfg.ID {
			return true
		}
	}
	return false
}

// announceLoop makes sure the replicated HTTP address of this replica is its
// current one (after a restart with a new --http, for instance).
func (r *Replica) announceLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		var have string
		r.fsm.Read(func(s *fsm.State) { have = s.Replicas[r.cfg.ID] })
		if have == r.cfg.AdvertiseHTTP || r.IsLeader() || !r.memberOfConfig() {
			continue
		}
		_, leader := r.leaderHTTP()
		if leader == "" {
			continue
		}
		req := api.JoinRequest{ID: r.cfg.ID, HTTP: r.cfg.AdvertiseHTTP, Raft: r.cfg.AdvertiseRaft}
		if err := r.postJSON(ctx, leader, "/cluster/join", req); err != nil {
			r.log.Debug("announcing HTTP address failed", "error", err)
		}
	}
}

// postJSON posts v to another replica and returns an error unless it answers 2xx.
func (r *Replica) postJSON(ctx context.Context, addr, path string, v any) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return api.PostJSON(cctx, r.client, "http://"+addr+path, v, nil)
}

package cluster

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// relayInterval is how often a follower passes the heartbeats it received
// on to the leader.
const relayInterval = 250 * time.Millisecond

// heartbeatPath is the agent's heartbeat endpoint; every replica answers it
// itself (it is never forwarded).
func heartbeatPath(p string) bool {
	return strings.HasPrefix(p, "/nodes/") && strings.HasSuffix(p, "/heartbeat")
}

// beatBook is a follower's record of agent heartbeats: the newest heartbeat
// of each node not yet relayed to the leader, and the leader's latest
// acknowledgement of each node's relayed heartbeats.
type beatBook struct {
	mu        sync.Mutex
	heard     map[string]heardBeat // not yet relayed
	acks      map[string]uint64
	term      uint64 // the leader term of the acks
	leader    string
	lease     int64 // milliseconds, as the leader grants it
	leaseSeen int64 // the longest lease agents reported holding (milliseconds)
}

// heardBeat is the newest heartbeat of a node and when it arrived.
type heardBeat struct {
	seq uint64
	at  time.Time
}

// relayFresh is how old a heartbeat may be and still be relayed: the leader
// takes a relayed heartbeat for one heard just now.
const relayFresh = time.Second

func newBeatBook() *beatBook {
	return &beatBook{heard: map[string]heardBeat{}, acks: map[string]uint64{}}
}

// clampLease bounds a lease that an agent (or a relay) reports holding to
// twice this replica's own --agent-lease: replicas may differ a little, but
// no report can hold exclusive recovery back for longer than that.
func (r *Replica) clampLease(ms int64) int64 {
	return min(max(ms, 0), 2*r.cfg.Lease.Milliseconds())
}

// noteLease raises the longest lease seen to ms.
func noteLease(seen *atomic.Int64, ms int64) {
	for {
		cur := seen.Load()
		if ms <= cur || seen.CompareAndSwap(cur, ms) {
			return
		}
	}
}

// handleHeartbeat answers POST /nodes/{id}/heartbeat. The leader records the
// heartbeat with its health monitor and acknowledges it at once; a follower
// keeps it for its next relay and answers with the leader's latest
// acknowledgement for that node.
func (r *Replica) handleHeartbeat(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	var hb api.Heartbeat
	if code, err := api.DecodeJSON(w, req, &hb); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	id := ps.ByName("id")
	if id == "" {
		api.WriteError(w, http.StatusBadRequest, "a heartbeat names its node: POST /nodes/{id}/heartbeat")
		return
	}
	hb.LeaseMillis = r.clampLease(hb.LeaseMillis)
	r.certs.note("node", id, req.TLS, time.Now())
	if hb.NodeID != "" && hb.NodeID != id {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("heartbeat for node %q sent to the path of node %q", hb.NodeID, id))
		return
	}
	ack := api.HeartbeatAck{Replicas: r.replicaAddrs()}
	if ls := r.currentLeader(); ls != nil && r.IsLeader() && hb.Term <= ls.term {
		noteLease(&r.leaseSeen, hb.LeaseMillis)
		if !ls.health.NoteHeartbeat(id, time.Now(), "", hb.Seq) {
			api.WriteError(w, http.StatusNotFound, "node "+id+" is not registered (yet) with the leader")
			return
		}
		// Acknowledge only once a quorum has confirmed, after this heartbeat
		// arrived, that this replica still leads: then any later leader was
		// elected after it, and counts every lease from its election. (A
		// leader that was paused, or lost its quorum, may not know yet.)
		if r.confirm.confirm(req.Context()) {
			ack.IsLeader, ack.Leader, ack.Term, ack.AckSeq = true, r.cfg.ID, ls.term, hb.Seq
			ack.LeaseMillis = r.cfg.Lease.Milliseconds()
		}
		api.WriteJSON(w, http.StatusOK, ack)
		return
	}
	b := r.beats
	b.mu.Lock()
	if hb.Seq > b.heard[id].seq {
		b.heard[id] = heardBeat{seq: hb.Seq, at: time.Now()}
	}
	if hb.Seq < b.acks[id] {
		delete(b.acks, id) // not a later run of the agent's: the ack is not for it
	}
	b.leaseSeen = max(b.leaseSeen, hb.LeaseMillis)
	ack.Leader, ack.Term, ack.AckSeq, ack.LeaseMillis = b.leader, b.term, b.acks[id], b.lease
	b.mu.Unlock()
	api.WriteJSON(w, http.StatusOK, ack)
}

// handleHeartbeatRelay answers POST /cluster/heartbeats, a follower's relay,
// on the leader: every node named was heard by that follower within the
// last relayFresh.
func (r *Replica) handleHeartbeatRelay(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	var rel api.HeartbeatRelay
	if code, err := api.DecodeJSON(w, req, &rel); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	ls := r.currentLeader()
	if ls == nil || !r.IsLeader() {
		noLeader(w, "this replica is not (yet) an established leader")
		return
	}
	noteLease(&r.leaseSeen, r.clampLease(rel.LeaseMillis))
	now := time.Now()
	out := api.HeartbeatRelayAck{Term: ls.term, Leader: r.cfg.ID, LeaseMillis: r.cfg.Lease.Milliseconds(), Acks: make(map[string]uint64, len(rel.Beats))}
	for node, seq := range rel.Beats {
		if ls.health.NoteHeartbeat(node, now, rel.From, seq) {
			out.Acks[node] = seq
		}
	}
	if !r.confirm.confirm(req.Context()) { // as for a direct heartbeat
		noLeader(w, "this replica could not confirm its leadership")
		return
	}
	api.WriteJSON(w, http.StatusOK, out)
}

// relayLoop passes the heartbeats this replica received on to the leader,
// every relayInterval, while it follows.
func (r *Replica) relayLoop(ctx context.Context) {
	t := time.NewTicker(relayInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b := r.beats
		now := time.Now()
		b.mu.Lock()
		if r.IsLeader() {
			b.heard = map[string]heardBeat{} // heard directly now
			b.mu.Unlock()
			continue
		}
		beats := make(map[string]uint64, len(b.heard))
		for n, hb := range b.heard {
			if now.Sub(hb.at) <= relayFresh {
				beats[n] = hb.seq
			} else {
				delete(b.heard, n) // too old to say the node is alive now
			}
		}
		leaseSeen := b.leaseSeen
		b.mu.Unlock()
		if len(beats) == 0 {
			continue
		}
		ack, err := r.relay(ctx, beats, leaseSeen)
		b.mu.Lock()
		for n, s := range beats {
			if err == nil && b.heard[n].seq == s {
				delete(b.heard, n) // relayed; kept otherwise, while fresh, for the next try
			}
		}
		if err == nil && ack.Term >= b.term {
			if ack.Term > b.term {
				b.acks = map[string]uint64{}
				b.term = ack.Term
			}
			b.leader, b.lease = ack.Leader, ack.LeaseMillis
			for n, s := range ack.Acks {
				if s > b.acks[n] {
					b.acks[n] = s
				}
			}
		}
		b.mu.Unlock()
		if err != nil {
			r.log.Debug("relaying heartbeats to the leader failed", "error", err)
		}
	}
}

// relay sends one batch of heartbeats to the leader.
func (r *Replica) relay(ctx context.Context, beats map[string]uint64, leaseSeen int64) (api.HeartbeatRelayAck, error) {
	var ack api.HeartbeatRelayAck
	_, addr := r.leaderHTTP()
	if addr == "" || addr == r.cfg.AdvertiseHTTP {
		return ack, fmt.Errorf("no leader known")
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	// A replica that is not the leader any more forwards it one hop at most.
	err := api.PostJSON(cctx, r.client, "http://"+addr+"/cluster/heartbeats", api.HeartbeatRelay{From: r.cfg.ID, Beats: beats, LeaseMillis: leaseSeen}, &ack)
	return ack, err
}

// replicaAddrs returns the HTTP addresses of the replicas, sorted.
func (r *Replica) replicaAddrs() []string {
	var out []string
	r.fsm.Read(func(s *fsm.State) {
		for _, a := range s.Replicas {
			if a != "" {
				out = append(out, a)
			}
		}
	})
	slices.Sort(out)
	return out
}

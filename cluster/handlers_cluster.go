package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/julienschmidt/httprouter"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/internal/version"
)

// self is this replica's own view, the answer of GET /cluster/self: its
// raft state and term, the leader it knows, and the voters of its raft
// configuration (which a replica without a leader can still tell).
func (r *Replica) self() api.ReplicaSelf {
	_, lid := r.raft.LeaderWithID()
	out := api.ReplicaSelf{
		ID: r.cfg.ID, State: stateName(r.raft.State()), Term: r.raft.CurrentTerm(),
		CommitIndex: r.raft.CommitIndex(), AppliedIndex: r.raft.AppliedIndex(), Leader: string(lid),
		Version: version.String(), TLSCertExpires: r.tlsNotAfter(),
	}
	addrs := r.replicaHTTPByID()
	for _, s := range r.servers() {
		if s.Suffrage == raft.Voter {
			out.Voters = append(out.Voters, api.ReplicaInfo{ID: string(s.ID), HTTP: addrs[string(s.ID)], Raft: string(s.Address), Voter: true})
		}
	}
	return out
}

// replicaHTTPByID returns the replicated HTTP address of each replica, and
// this replica's own even before it is replicated.
func (r *Replica) replicaHTTPByID() map[string]string {
	var addrs map[string]string
	r.fsm.Read(func(s *fsm.State) {
		addrs = make(map[string]string, len(s.Replicas)+1)
		for k, v := range s.Replicas {
			addrs[k] = v
		}
	})
	if addrs[r.cfg.ID] == "" {
		addrs[r.cfg.ID] = r.cfg.AdvertiseHTTP
	}
	return addrs
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

func (r *Replica) handleClusterSelf(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	api.WriteJSON(w, http.StatusOK, r.self())
}

// handleClusterStatus answers with every replica of the raft configuration
// and the state each one reports about itself.
func (r *Replica) handleClusterStatus(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	addrs := r.replicaHTTPByID()
	servers := r.servers()
	out := api.ClusterStatus{Term: r.raft.CurrentTerm(), CommitIndex: r.raft.CommitIndex(), Replicas: []api.ReplicaInfo{}, Version: version.String()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range servers {
		info := api.ReplicaInfo{ID: string(s.ID), HTTP: addrs[string(s.ID)], Raft: string(s.Address), Voter: s.Suffrage == raft.Voter}
		if string(s.ID) == r.cfg.ID {
			info.State, info.Version, info.TLSCertExpires = stateName(r.raft.State()), version.String(), r.tlsNotAfter()
		} else {
			wg.Add(1)
			go func(info api.ReplicaInfo) {
				defer wg.Done()
				info.State, info.Version, info.TLSCertExpires = r.remoteState(req.Context(), info.HTTP)
				mu.Lock()
				out.Replicas = append(out.Replicas, info)
				mu.Unlock()
			}(info)
			continue
		}
		mu.Lock()
		out.Replicas = append(out.Replicas, info)
		mu.Unlock()
	}
	wg.Wait()
	sort.Slice(out.Replicas, func(i, j int) bool { return out.Replicas[i].ID < out.Replicas[j].ID })
	if addr, lid := r.raft.LeaderWithID(); lid != "" {
		out.Leader = api.ReplicaInfo{ID: string(lid), HTTP: addrs[string(lid)], Raft: string(addr), State: "leader", Voter: true}
		for _, rep := range out.Replicas {
			if rep.ID == out.Leader.ID {
				out.Leader.Version, out.Leader.TLSCertExpires = rep.Version, rep.TLSCertExpires
			}
		}
	}
	api.WriteJSON(w, http.StatusOK, out)
}

// remoteState asks another replica for its own raft state, version and
// certificate expiry.
func (r *Replica) remoteState(ctx context.Context, addr string) (state, version string, certExpires *time.Time) {
	if addr == "" {
		return "unknown", "", nil
	}
	s, err := r.askSelf(ctx, addr)
	if err != nil {
		return "unreachable", "", nil
	}
	return s.State, s.Version, s.TLSCertExpires
}

// askSelf asks another replica for its own view (GET /cluster/self).
func (r *Replica) askSelf(ctx context.Context, addr string) (*api.ReplicaSelf, error) {
	ctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/cluster/self", nil)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s api.ReplicaSelf
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /cluster/self: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// handleJoin adds a replica as a voter (leader only; followers forward).
func (r *Replica) handleJoin(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	var j api.JoinRequest
	if code, err := api.DecodeJSON(w, req, &j); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	if j.ID == "" || j.Raft == "" || j.HTTP == "" {
		api.WriteError(w, http.StatusBadRequest, "id, http and raft are required")
		return
	}
	known := false
	for _, s := range r.servers() {
		switch {
		case string(s.ID) == j.ID && string(s.Address) == j.Raft:
			known = true
		case string(s.ID) == j.ID || string(s.Address) == j.Raft:
			// Same id at a new address, or a new id at an old address: replace it.
			if err := r.raft.RemoveServer(s.ID, 0, applyTimeout).Error(); err != nil {
				writeApplyError(w, wrapRaftErr(err))
				return
			}
		}
	}
	if !known {
		if err := r.raft.AddVoter(raft.ServerID(j.ID), raft.ServerAddress(j.Raft), 0, applyTimeout).Error(); err != nil {
			writeApplyError(w, wrapRaftErr(err))
			return
		}
		r.log.Info("replica joined", "id", j.ID, "raft", j.Raft, "http", j.HTTP)
	}
	if err := r.Apply(&fsm.SetReplica{ID: j.ID, HTTP: j.HTTP}); err != nil {
		writeApplyError(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{"joined": j.ID})
}

// handleRemove removes a replica from the raft configuration.
func (r *Replica) handleRemove(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	var rm api.RemoveRequest
	if code, err := api.DecodeJSON(w, req, &rm); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	if rm.ID == "" {
		api.WriteError(w, http.StatusBadRequest, "id is required")
		return
	}
	if rm.ID == r.cfg.ID {
		api.WriteError(w, http.StatusConflict, "cannot remove the leader; stop it first (it hands leadership over) and remove it from the new leader")
		return
	}
	if !containsServer(r.servers(), rm.ID) {
		api.WriteError(w, http.StatusNotFound, "no replica "+rm.ID+" in the cluster")
		return
	}
	if err := r.raft.RemoveServer(raft.ServerID(rm.ID), 0, applyTimeout).Error(); err != nil {
		writeApplyError(w, wrapRaftErr(err))
		return
	}
	if err := r.Apply(&fsm.RemoveReplica{ID: rm.ID}); err != nil {
		writeApplyError(w, err)
		return
	}
	r.log.Info("replica removed", "id", rm.ID)
	api.WriteJSON(w, http.StatusOK, map[string]string{"removed": rm.ID})
}

func containsServer(servers []raft.Server, id string) bool {
	for _, s := range servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

func wrapRaftErr(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	return err
}

func (r *Replica) handleState(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	b, err := r.fsm.Export()
	if err != nil {
		api.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

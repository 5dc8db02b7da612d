package cluster

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// Node operation events.
const (
	EventNodeDrainStarted   = "node_drain_started"
	EventNodeDrainCancelled = "node_drain_cancelled"
	EventNodeEligibility    = "node_eligibility"
	EventNodePurged         = "node_purged"
	EventNodeRestarting     = "node_restarting"
)

// routeNodes adds the node operations.
func (r *Replica) routeNodes(rt *router) {
	rt.GET("/nodes/:id", r.read(r.handleGetNode))
	rt.DELETE("/nodes/:id", r.handlePurgeNode)
	rt.POST("/nodes/:id/drain", r.handleDrain)
	rt.POST("/nodes/:id/eligibility", r.handleEligibility)
	rt.POST("/nodes/:id/restarting", r.handleRestarting)
	rt.POST("/gc", r.handleGC)
}

// nodeUse is what a node's live workloads take: how many there are (the
// old instances of moves off it included) and the resources they hold.
type nodeUse struct {
	remaining int
	alloc     api.Capacity
}

func (u *nodeUse) add(w *api.Workload) {
	u.remaining++
	if res := w.Spec.Resources; res != nil {
		u.alloc.CPUMillicores += res.CPUMillicores
		u.alloc.MemoryMB += res.MemoryMB
	}
}

// nodeUses sums, in one scan of the workloads, what each node's live
// workloads take (only for node when it is not empty).
func nodeUses(s *fsm.State, node string) map[string]*nodeUse {
	out := map[string]*nodeUse{}
	use := func(id string) *nodeUse {
		u := out[id]
		if u == nil {
			u = &nodeUse{}
			out[id] = u
		}
		return u
	}
	for _, w := range s.Workloads {
		if !fsm.IsLive(w) {
			continue
		}
		if m := w.MoveFrom; m != nil && (node == "" || m.Node == node) {
			use(m.Node).add(w) // its old instance runs there until the new one is up
		}
		if w.Node != "" && (node == "" || w.Node == node) {
			use(w.Node).add(w)
		}
	}
	return out
}

// nodeView is node n as the API shows it: with what its live workloads
// allocate (use), and how many are left to drain.
func nodeView(n *api.Node, use *nodeUse) api.Node {
	out := *n
	out.Capacity = nil
	if n.Capacity != nil {
		c := *n.Capacity
		out.Capacity = &c
	}
	if n.RestartingUntil != nil {
		t := *n.RestartingUntil
		out.RestartingUntil = &t
	}
	if use == nil {
		use = &nodeUse{}
	}
	alloc := use.alloc
	out.Allocated = &alloc
	if n.Drain != nil {
		d := *n.Drain
		d.Remaining = use.remaining
		out.Drain = &d
	}
	return out
}

// nodeViews returns every node as the API shows it, sorted by id, in one
// scan of the workloads.
func nodeViews(s *fsm.State) []api.Node {
	uses := nodeUses(s, "")
	out := make([]api.Node, 0, len(s.Nodes))
	for _, id := range slices.Sorted(maps.Keys(s.Nodes)) {
		out = append(out, nodeView(s.Nodes[id], uses[id]))
	}
	return out
}

// nodeViewOf returns node id as the API shows it.
func nodeViewOf(s *fsm.State, id string) (api.Node, bool) {
	n, ok := s.Nodes[id]
	if !ok {
		return api.Node{}, false
	}
	return nodeView(n, nodeUses(s, id)[id]), true
}

func (r *Replica) handleGetNode(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	id := ps.ByName("id")
	var out api.Node
	ok := false
	r.fsm.Read(func(s *fsm.State) { out, ok = nodeViewOf(s, id) })
	if !ok {
		api.WriteError(w, http.StatusNotFound, "no node "+id)
		return
	}
	api.WriteJSON(w, http.StatusOK, out)
}

// answerNode answers with node id as it is now.
func (r *Replica) answerNode(w http.ResponseWriter, id string) {
	var out api.Node
	r.fsm.Read(func(s *fsm.State) { out, _ = nodeViewOf(s, id) })
	api.WriteJSON(w, http.StatusOK, out)
}

// handleDrain answers POST /nodes/{id}/drain: {"enable":true,"deadline":"10m"}
// starts a drain (or sets a new deadline for the one under way),
// {"enable":false} cancels it and makes the node eligible again.
func (r *Replica) handleDrain(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	id := ps.ByName("id")
	var body api.DrainRequest
	if code, err := api.DecodeJSON(w, req, &body); err != nil {
		if code == http.StatusBadRequest {
			err = fmt.Errorf("%v (deadline is a duration such as \"10m\" or \"1h\")", err)
		}
		api.WriteError(w, code, err.Error())
		return
	}
	deadline := body.Deadline.D()
	if deadline == 0 {
		deadline = api.DefaultDrainDeadline
	}
	if deadline > api.MaxDuration {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("deadline %s: at most %s", deadline, api.MaxDuration))
		return
	}
	now := time.Now().UTC()
	cmd := &fsm.SetDrain{At: now, ID: id, Enable: body.Enable}
	if body.Enable {
		cmd.Deadline = now.Add(deadline)
	}
	if err := r.Apply(cmd); err != nil {
		writeCommandError(w, id, err)
		return
	}
	if body.Enable {
		r.nodeEvent(EventNodeDrainStarted, id, fmt.Sprintf("drain of %s started; deadline %s", id, cmd.Deadline.Format(time.RFC3339)))
	} else {
		r.nodeEvent(EventNodeDrainCancelled, id, "drain of "+id+" cancelled; it is eligible again")
	}
	r.answerNode(w, id)
}

// nodeEvent records a node operation's event and wakes the placement loop.
func (r *Replica) nodeEvent(kind, id, msg string) {
	r.log.Info("node operation", "node", id, "kind", kind, "message", msg)
	r.event(kind, id, msg, id, "")
	r.kickPlacement()
}

func (r *Replica) handleEligibility(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	id := ps.ByName("id")
	var body api.EligibilityRequest
	if code, err := api.DecodeJSON(w, req, &body); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	if body.Eligible == nil {
		api.WriteError(w, http.StatusBadRequest, "eligible is required: true or false")
		return
	}
	if err := r.Apply(&fsm.SetEligibility{At: time.Now().UTC(), ID: id, Eligible: *body.Eligible}); err != nil {
		writeCommandError(w, id, err)
		return
	}
	what := "ineligible: it keeps what it runs and takes no new work"
	if *body.Eligible {
		what = "eligible: it takes new work"
	}
	r.nodeEvent(EventNodeEligibility, id, id+" is "+what)
	r.answerNode(w, id)
}

// handlePurgeNode answers DELETE /nodes/{id}: it forgets an offline node
// with nothing on it (409 otherwise).
func (r *Replica) handlePurgeNode(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	id := ps.ByName("id")
	if err := r.Apply(&fsm.PurgeNode{ID: id}); err != nil {
		writeCommandError(w, id, err)
		return
	}
	r.nodeEvent(EventNodePurged, id, "node "+id+" purged")
	api.WriteJSON(w, http.StatusOK, map[string]string{"purged": id})
}

// handleRestarting answers POST /nodes/{id}/restarting, sent by an agent
// about to restart: the leader does not mark the node offline for the
// grace it gives (its next registration ends it sooner).
func (r *Replica) handleRestarting(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	id := ps.ByName("id")
	var body api.RestartingRequest
	if code, err := api.DecodeJSON(w, req, &body); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	grace := time.Duration(body.GraceMS) * time.Millisecond
	if grace <= 0 || grace > api.MaxRestartGrace {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("grace_ms %d: want 1 to %d", body.GraceMS, api.MaxRestartGrace.Milliseconds()))
		return
	}
	now := time.Now().UTC()
	if err := r.Apply(&fsm.NodeRestarting{At: now, ID: id, Until: now.Add(grace)}); err != nil {
		writeCommandError(w, id, err)
		return
	}
	if ls := r.currentLeader(); ls != nil && ls.health != nil {
		ls.health.NoteRestarting(id, now.Add(grace))
	}
	r.log.Info("agent restarting; its node is not marked offline meanwhile", "node", id, "grace", grace)
	r.event(EventNodeRestarting, id, fmt.Sprintf("agent of %s restarting; back within %s", id, grace), id, "")
	r.answerNode(w, id)
}

// handleGC answers POST /gc[?older_than=D]: a garbage collection now, on
// the leader, of what ended --gc-after ago, or D ago (0s: everything that
// ended; nodes still wait --node-gc-after).
func (r *Replica) handleGC(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	age := r.cfg.GCAfter
	if v := req.URL.Query().Get("older_than"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("older_than %q: want a duration such as \"10m\" or \"0s\"", v))
			return
		}
		age = d
	}
	if r.currentLeader() == nil {
		noLeader(w, "this replica is not (yet) an established leader; retry")
		return
	}
	res, err := r.collectGarbageAged(time.Now().UTC(), age)
	if err != nil {
		writeApplyError(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, res)
}

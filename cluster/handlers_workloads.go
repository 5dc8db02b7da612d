package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// MaxCount is the largest count of one submission.
const MaxCount = 1000

// validateSubmit checks a submission and returns the count it asks for. It
// fills the spec's defaults (api.Spec.Normalize) once it is valid.
func validateSubmit(s *api.SubmitRequest) (int, error) {
	s.Name = strings.TrimSpace(s.Name)
	if err := api.ValidateName(s.Name); err != nil {
		return 0, err
	}
	// The agent applies the same rules before it starts a process: refuse
	// here what it would refuse there, instead of failing three times later.
	if err := api.ValidateProcess(s.Command, s.Args, s.Env); err != nil {
		return 0, err
	}
	count := 1
	if s.Count != nil {
		count = *s.Count
	}
	if count < 1 || count > MaxCount {
		return 0, fmt.Errorf("count must be between 1 and %d, got %d", MaxCount, count)
	}
	if err := s.Spec.Validate(); err != nil {
		return 0, errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	s.Spec.Normalize()
	return count, nil
}

// specDurations are the duration fields of a spec, by their JSON path.
var specDurations = []struct {
	block  string
	fields []string
}{
	{"check", []string{"interval", "timeout", "grace"}},
	{"restart", []string{"delay", "max_delay"}},
	{"update", []string{"min_healthy_time", "healthy_deadline"}},
}

// durationError finds the spec duration that a submission's body could not
// decode (api.Duration refuses it) and names its field, for example
// `check.interval: duration "0s": must be positive`. It returns nil when no
// duration is at fault.
func durationError(body []byte) error {
	var probe map[string]json.RawMessage
	if json.NewDecoder(bytes.NewReader(body)).Decode(&probe) != nil {
		return nil
	}
	for _, b := range specDurations {
		var block map[string]json.RawMessage
		if raw, ok := probe[b.block]; !ok || json.Unmarshal(raw, &block) != nil {
			continue
		}
		for _, f := range b.fields {
			raw, ok := block[f]
			if !ok || string(raw) == "null" {
				continue
			}
			var d api.Duration
			if err := d.UnmarshalJSON(raw); err != nil {
				return fmt.Errorf("%s.%s: %v", b.block, f, err)
			}
		}
	}
	return nil
}

func (r *Replica) handleSubmit(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	var s api.SubmitRequest
	// Keep what the decoder read: a duration it refused is named from it.
	var body bytes.Buffer
	req.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(req.Body, &body), req.Body}
	if code, err := api.DecodeJSON(w, req, &s); err != nil {
		if code == http.StatusBadRequest {
			if derr := durationError(body.Bytes()); derr != nil {
				err = derr
			}
		}
		api.WriteError(w, code, err.Error())
		return
	}
	count, err := validateSubmit(&s)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if r.currentLeader() == nil {
		// IDs come from a sequence that a new leader takes over from the
		// state after raft.Barrier; until then it must not hand any out.
		noLeader(w, "this replica is not (yet) an established leader; retry")
		return
	}
	now := time.Now().UTC()
	ids, last := r.newIDs(count, now)
	ws := make([]api.Workload, count)
	for i := range count {
		ws[i] = api.Workload{ID: ids[i], Name: s.Name, Command: s.Command, Args: s.Args, Env: s.Env, Exclusive: s.Exclusive,
			Spec: s.Spec}
	}
	if err := r.submits.submit(ws, last); err != nil {
		writeApplyError(w, err)
		return
	}
	r.kickNewWorkloads()
	api.WriteJSON(w, http.StatusCreated, api.SubmitResponse{IDs: ids})
}

// newIDs hands out n workload IDs (workload_<unix time>_<sequence>) from
// the leader's sequence, and returns them with the last sequence number,
// which the command that creates them records.
func (r *Replica) newIDs(n int, at time.Time) ([]string, uint64) {
	last := r.seq.Add(uint64(n))
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("workload_%d_%d", at.Unix(), last-uint64(n)+uint64(i)+1)
	}
	return ids, last
}

func (r *Replica) handleListWorkloads(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	q := req.URL.Query()
	state, node, name, job := q.Get("state"), q.Get("node"), q.Get("name"), q.Get("job")
	if state != "" && !api.ValidState(state) {
		api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("unknown state %q: want one of %s", state, strings.Join(api.WorkloadStates, ", ")))
		return
	}
	out := api.WorkloadList{Workloads: []api.Workload{}}
	r.fsm.Read(func(s *fsm.State) {
		for _, wl := range s.Workloads {
			if (state == "" || wl.State == state) && (node == "" || wl.Node == node) && (name == "" || wl.Name == name) && (job == "" || wl.Job == job) {
				c := fsm.CopyWorkload(wl)
				c.History = nil
				out.Workloads = append(out.Workloads, *shown(c))
			}
		}
	})
	sort.Slice(out.Workloads, func(i, j int) bool {
		a, b := out.Workloads[i], out.Workloads[j]
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return lessID(a.ID, b.ID)
	})
	api.WriteJSON(w, http.StatusOK, out)
}

// lessID orders workload IDs by their numeric sequence when they share a prefix.
func lessID(a, b string) bool {
	ia, ea := strconv.Atoi(a[strings.LastIndexByte(a, '_')+1:])
	ib, eb := strconv.Atoi(b[strings.LastIndexByte(b, '_')+1:])
	if ea == nil && eb == nil && ia != ib {
		return ia < ib
	}
	return a < b
}

// shown fills what the API shows beyond the stored workload: health is
// unknown without a check's verdict, and a workload stored before specs
// existed is a service.
func shown(w *api.Workload) *api.Workload {
	if w.Health == "" {
		w.Health = api.HealthUnknown
	}
	if w.Spec.Type == "" {
		w.Spec.Type = api.TypeService
	}
	return w
}

func (r *Replica) workload(id string) (*api.Workload, bool) {
	var out *api.Workload
	r.fsm.Read(func(s *fsm.State) {
		if wl, ok := s.Workloads[id]; ok {
			out = fsm.CopyWorkload(wl)
		}
	})
	return out, out != nil
}

func (r *Replica) handleGetWorkload(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	wl, ok := r.workload(ps.ByName("id"))
	if !ok {
		api.WriteError(w, http.StatusNotFound, "no workload "+ps.ByName("id"))
		return
	}
	api.WriteJSON(w, http.StatusOK, shown(wl))
}

// handleStopWorkload records the stop through raft, then stops the instance
// on its agent (the reconciliation stops it later if the agent is unreachable
// now). The lookup comes after the raft write, so that a deposed leader
// cannot answer 404 from an old state.
func (r *Replica) handleStopWorkload(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	id := ps.ByName("id")
	if err := r.Apply(&fsm.StopWorkload{At: time.Now().UTC(), ID: id}); err != nil {
		if errors.Is(err, fsm.ErrNotFound) {
			api.WriteError(w, http.StatusNotFound, "no workload "+id)
			return
		}
		writeApplyError(w, err)
		return
	}
	wl, ok := r.workload(id)
	// What it held on its node is free now: workloads waiting for room
	// may be placed. (A workload without resources frees none: no pass,
	// which with many workloads waiting would cost each stop a scan.)
	if ok && wl.Spec.Resources != nil {
		r.kickPlacement()
	}
	if ok && wl.Node != "" {
		if err := r.stopOnAgent(req.Context(), wl); err != nil {
			r.log.Warn("stopping workload on its agent failed; reconciliation will retry", "workload", id, "node", wl.Node, "error", err)
		}
	}
	if ok {
		shown(wl)
	}
	api.WriteJSON(w, http.StatusOK, wl)
}

// stopOnAgent stops a workload instance on the node it was placed on.
func (r *Replica) stopOnAgent(ctx context.Context, wl *api.Workload) error {
	addr := r.nodeAddr(wl.Node)
	if addr == "" {
		return fmt.Errorf("node %s unknown", wl.Node)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := r.agents.Stop(ctx, addr, wl.ID, r.raft.CurrentTerm(), wl.Generation)
	if ae, ok := err.(*api.AgentError); ok && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

func (r *Replica) nodeAddr(id string) (addr string) {
	r.fsm.Read(func(s *fsm.State) {
		if n, ok := s.Nodes[id]; ok {
			addr = n.Address
		}
	})
	return addr
}

func (r *Replica) handleLogs(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	id := ps.ByName("id")
	tail := 100
	all := false
	if t := req.URL.Query().Get("tail"); t == "all" {
		all = true
	} else if t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > 10000 {
			api.WriteError(w, http.StatusBadRequest, "tail must be all or a number from 0 to 10000")
			return
		}
		tail = n
	}
	follow := req.URL.Query().Get("follow") == "true"
	wl, ok := r.workload(id)
	if !ok {
		api.WriteError(w, http.StatusNotFound, "no workload "+id)
		return
	}
	if wl.Node == "" {
		api.WriteError(w, http.StatusConflict, "workload "+id+" has not been placed on a node yet")
		return
	}
	addr := r.nodeAddr(wl.Node)
	if follow || all {
		r.streamLogs(w, req, wl, addr, tail, all, follow)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	b, err := r.agents.Logs(ctx, addr, id, tail)
	if err != nil {
		if ae, ok := err.(*api.AgentError); ok && ae.Status == http.StatusNotFound {
			api.WriteError(w, http.StatusNotFound, "node "+wl.Node+" has no output for "+id)
			return
		}
		api.WriteError(w, http.StatusBadGateway, "fetching logs from node "+wl.Node+": "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (r *Replica) handleRegisterNode(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	var n api.RegisterRequest
	if code, err := api.DecodeJSON(w, req, &n); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	if n.ID == "" || n.Address == "" {
		api.WriteError(w, http.StatusBadRequest, "id and address are required")
		return
	}
	if err := errors.Join(api.CheckPrintable("id", n.ID), api.CheckPrintable("address", n.Address)); err != nil {
		api.WriteError(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	if _, _, err := net.SplitHostPort(n.Address); err != nil {
		api.WriteError(w, http.StatusBadRequest, "address must be host:port: "+err.Error())
		return
	}
	if err := validateCapacity(n.Capacity); err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := r.Apply(&fsm.RegisterNode{At: time.Now().UTC(), ID: n.ID, Address: n.Address, Capacity: n.Capacity}); err != nil {
		writeApplyError(w, err)
		return
	}
	if c := n.Capacity; c != nil {
		r.log.Info("node registered", "node", n.ID, "address", n.Address, "cpu_millicores", c.CPUMillicores, "memory_mb", c.MemoryMB)
	} else {
		r.log.Info("node registered without a capacity; it takes only workloads without cpu or memory resources", "node", n.ID, "address", n.Address)
	}
	r.checkSoon()
	api.WriteJSON(w, http.StatusCreated, map[string]string{"registered": n.ID})
}

// validateCapacity checks the capacity a node registers: absent (an older
// agent), or amounts from 0 to the bounds a workload may ask for.
func validateCapacity(c *api.Capacity) error {
	if c == nil {
		return nil
	}
	var errs []string
	if c.CPUMillicores < 0 || c.CPUMillicores > api.MaxCPUMillicores {
		errs = append(errs, fmt.Sprintf("capacity.cpu_millicores %d: want 0 to %d", c.CPUMillicores, api.MaxCPUMillicores))
	}
	if c.MemoryMB < 0 || c.MemoryMB > api.MaxMemoryMB {
		errs = append(errs, fmt.Sprintf("capacity.memory_mb %d: want 0 to %d", c.MemoryMB, api.MaxMemoryMB))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// checkSoon runs a health round now, in the background, so that a node that
// just registered can take workloads at once instead of after a whole interval.
func (r *Replica) checkSoon() {
	ls := r.currentLeader()
	if ls == nil || ls.health == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ls.health.CheckNow(ctx); err == nil && ls.recovery != nil {
			ls.recovery.Kick()
		}
	}()
}

func (r *Replica) handleListNodes(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	out := api.NodeList{Nodes: []api.Node{}}
	r.fsm.Read(func(s *fsm.State) { out.Nodes = nodeViews(s) })
	api.WriteJSON(w, http.StatusOK, out)
}

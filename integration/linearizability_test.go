package integration

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/micro-orchestrator/mo/api"
)

// Invariant 4: the history of API calls is linearizable even while replicas
// are killed or paused. Concurrent clients submit, read, list and stop
// workloads through random replicas while the leader is killed with -9 and
// restarted, and the next leader is paused with SIGSTOP long enough to be
// replaced and then resumed, with calls about writes it has not seen queued
// at its socket while it sleeps. Every call is recorded with its call and return
// times and the history is checked with porcupine against a sequential model
// of the workload table.
//
// The model, per workload ID (the history is partitioned by ID): the state is
// "absent", "pending" or "stopped" (no agents run, so nothing but a stop
// changes a workload's state; other fields are ignored).
//   - submit → the new ID: legal only if that ID was absent (IDs are fresh);
//     the workload becomes pending.
//   - stop → "stopped" (200) if present, "absent" (404) if not.
//   - get, and a list projected onto one ID → the state, or "absent".
//
// A write whose outcome the client could not learn (transport error, timeout,
// 5xx) may or may not have been applied: it gets the output "unknown" and a
// return time at the end of the history, so the checker may place it anywhere
// after its call, including after every other call (= never applied). A
// submit with an unknown outcome can only be placed in a partition once its
// ID shows up in a later answer (found by its unique name); until then it
// constrains nothing. A read without an answer constrains nothing and is
// dropped; a 4xx answer to a submit means it was not applied.
func TestHistoryIsLinearizable(t *testing.T) {
	t.Run("model", testLinModel)
	if t.Failed() {
		return
	}
	t.Run("cluster", testLinCluster)
}

const (
	linSubmit = "submit"
	linGet    = "get"
	linStop   = "stop"
	linList   = "list" // a list's answer about one ID

	linAbsent  = "absent"
	linUnknown = "unknown"
)

// linInput is the input of one operation of the checked history.
type linInput struct {
	Kind string
	ID   string
}

// linMeta says who answered what; shown in reports and the visualization.
type linMeta struct {
	Replica string
	Status  int // 0: no HTTP answer
	Err     string
	Msg     string // the error an HTTP answer gave
}

func (m linMeta) String() string {
	if m.Status == 0 {
		return fmt.Sprintf("via %s: %s", m.Replica, m.Err)
	}
	if m.Msg != "" {
		return fmt.Sprintf("via %s: HTTP %d %q", m.Replica, m.Status, m.Msg)
	}
	return fmt.Sprintf("via %s: HTTP %d", m.Replica, m.Status)
}

// linModel is the sequential specification of the workload table, partitioned by ID.
func linModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range h {
				id := op.Input.(linInput).ID
				if _, ok := by[id]; !ok {
					keys = append(keys, id)
				}
				by[id] = append(by[id], op)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, by[k])
			}
			return out
		},
		Init: func() any { return linAbsent },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(string), input.(linInput), output.(string)
			switch in.Kind {
			case linSubmit:
				// "ok" or "unknown" alike: an unknown one that was never
				// applied is linearized after everything else.
				return st == linAbsent, api.StatePending
			case linStop:
				switch out {
				case linUnknown:
					if st == linAbsent {
						return true, st
					}
					return true, api.StateStopped
				case linAbsent:
					return st == linAbsent, st
				default:
					return st != linAbsent && out == api.StateStopped, api.StateStopped
				}
			default: // get, list
				return out == st, st
			}
		},
		DescribeOperation: func(input, output any) string {
			in := input.(linInput)
			return fmt.Sprintf("%s(%s) → %s", in.Kind, in.ID, output)
		},
		DescribeState: func(state any) string { return state.(string) },
		DescribeOperationMetadata: func(m any) string {
			if m == nil {
				return ""
			}
			return m.(linMeta).String()
		},
	}
}

// Hand-made histories: the model must be able to fail, and must accept what
// concurrency and unknown outcomes allow.
func testLinModel(t *testing.T) {
	op := func(client int, kind, id string, call, ret int64, out string) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: linInput{Kind: kind, ID: id}, Call: call, Output: out, Return: ret}
	}
	const end = 1000
	cases := []struct {
		name string
		h    []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"get returns pending after a completed stop (stale read)", []porcupine.Operation{
			op(0, linSubmit, "w1", 0, 10, "ok"),
			op(0, linStop, "w1", 20, 30, api.StateStopped),
			op(1, linGet, "w1", 40, 50, api.StatePending),
		}, porcupine.Illegal},
		{"get concurrent with the stop may see either state", []porcupine.Operation{
			op(0, linSubmit, "w1", 0, 10, "ok"),
			op(0, linStop, "w1", 20, 30, api.StateStopped),
			op(1, linGet, "w1", 15, 40, api.StatePending),
			op(2, linGet, "w1", 25, 45, api.StateStopped),
		}, porcupine.Ok},
		{"stop answers 404 after an acknowledged submit", []porcupine.Operation{
			op(0, linSubmit, "w1", 0, 10, "ok"),
			op(1, linStop, "w1", 20, 30, linAbsent),
		}, porcupine.Illegal},
		{"an acknowledged submit is lost", []porcupine.Operation{
			op(0, linSubmit, "w1", 0, 10, "ok"),
			op(1, linGet, "w1", 20, 30, api.StatePending),
			op(2, linList, "w1", 40, 50, linAbsent),
		}, porcupine.Illegal},
		{"an ID handed out twice", []porcupine.Operation{
			op(0, linSubmit, "w1", 0, 10, "ok"),
			op(1, linSubmit, "w1", 20, 30, "ok"),
		}, porcupine.Illegal},
		{"a submit with an unknown outcome shows up later", []porcupine.Operation{
			op(0, linSubmit, "w1", 0, end, linUnknown),
			op(1, linGet, "w1", 20, 30, linAbsent),
			op(1, linGet, "w1", 40, 50, api.StatePending),
			op(2, linStop, "w1", 60, 70, api.StateStopped),
		}, porcupine.Ok},
		{"a stop with an unknown outcome may never apply", []porcupine.Operation{
			op(0, linSubmit, "w1", 0, 10, "ok"),
			op(0, linStop, "w1", 20, end, linUnknown),
			op(1, linGet, "w1", 30, 40, api.StatePending),
			op(1, linGet, "w1", 50, 60, api.StatePending),
		}, porcupine.Ok},
		{"a stop with an unknown outcome applies once", []porcupine.Operation{
			op(0, linSubmit, "w1", 0, 10, "ok"),
			op(0, linStop, "w1", 20, end, linUnknown),
			op(1, linGet, "w1", 30, 40, api.StateStopped),
			op(1, linGet, "w1", 50, 60, api.StatePending),
		}, porcupine.Illegal},
		{"partitions are checked independently", []porcupine.Operation{
			op(0, linSubmit, "w1", 0, 10, "ok"),
			op(1, linSubmit, "w2", 0, 10, "ok"),
			op(0, linStop, "w2", 20, 30, api.StateStopped),
			op(1, linGet, "w1", 40, 50, api.StatePending),
			op(2, linGet, "w2", 40, 50, api.StatePending),
		}, porcupine.Illegal},
	}
	m := linModel()
	for _, c := range cases {
		res, info := porcupine.CheckOperationsVerbose(m, c.h, 5*time.Second)
		if res != c.want {
			t.Errorf("%s: checker says %s, want %s", c.name, res, c.want)
		}
		if res == porcupine.Illegal {
			var sb strings.Builder
			if err := porcupine.Visualize(m, info, &sb); err != nil || sb.Len() == 0 {
				t.Errorf("%s: visualization: %v (%d bytes)", c.name, err, sb.Len())
			}
		}
	}
}

// linRecord is one API call as a client saw it.
type linRecord struct {
	client    int
	kind      string // submit, get, stop, list (the whole table)
	id, name  string // the ID read or stopped; the name submitted
	call, ret int64  // nanoseconds since the start of the run
	meta      linMeta
	state     string                  // get/stop: the state answered
	gotID     string                  // submit: the ID answered; get/stop: the answer's ID
	gotName   string                  // get/stop: the answer's name
	listed    map[string]api.Workload // list: ID → workload
}

// linRun holds the shared history of one run.
type linRun struct {
	t     *testing.T
	start time.Time
	mu    sync.Mutex
	recs  []*linRecord
	acked []string // IDs of acknowledged submits, in order
}

func (lr *linRun) now() int64 { return int64(time.Since(lr.start)) }

// do makes one call and records it.
func (lr *linRun) do(c *client, rec *linRecord, method, address, path string, body any) {
	rec.call = lr.now()
	code, b, err := c.call(method, address, path, body)
	rec.ret = lr.now()
	rec.meta.Status = code
	if err != nil {
		rec.meta.Status, rec.meta.Err = 0, err.Error()
	}
	if rec.meta.Status >= 300 {
		var e api.Error
		if json.Unmarshal(b, &e) == nil {
			rec.meta.Msg = e.Error
		}
	}
	if rec.meta.Status/100 == 2 {
		switch rec.kind {
		case linSubmit:
			var resp api.SubmitResponse
			if e := json.Unmarshal(b, &resp); e != nil || len(resp.IDs) != 1 {
				rec.meta.Err = fmt.Sprintf("undecodable answer %q: %v", b, e)
			} else {
				rec.gotID = resp.IDs[0]
			}
		case linGet, linStop:
			var w api.Workload
			if e := json.Unmarshal(b, &w); e != nil {
				rec.meta.Err = fmt.Sprintf("undecodable answer %q: %v", b, e)
			}
			rec.state, rec.gotID, rec.gotName = w.State, w.ID, w.Name
		case linList:
			var l api.WorkloadList
			if e := json.Unmarshal(b, &l); e != nil {
				rec.meta.Err = fmt.Sprintf("undecodable answer: %v", e)
			}
			rec.listed = make(map[string]api.Workload, len(l.Workloads))
			for _, w := range l.Workloads {
				rec.listed[w.ID] = w
			}
		}
	}
	lr.mu.Lock()
	lr.recs = append(lr.recs, rec)
	if rec.kind == linSubmit && rec.gotID != "" {
		lr.acked = append(lr.acked, rec.gotID)
	}
	lr.mu.Unlock()
}

// pick returns an acknowledged ID, often a recent one (those are the ones a
// fault is most likely to hide), or "" when none is.
func (lr *linRun) pick(rng *rand.Rand) string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	n := len(lr.acked)
	if n == 0 {
		return ""
	}
	if rng.IntN(10) < 6 {
		return lr.acked[n-1-rng.IntN(min(n, 8))]
	}
	return lr.acked[rng.IntN(n)]
}

// selfOf asks one replica about itself, with the client's timeout.
func selfOf(c *client, r *replica) (state, leader string, term uint64) {
	var s struct {
		State  string `json:"state"`
		Leader string `json:"leader"`
		Term   uint64 `json:"term"`
	}
	if c.getJSON(r.http, "/cluster/self", &s) != nil {
		return "", "", 0
	}
	return s.State, s.Leader, s.Term
}

func testLinCluster(t *testing.T) {
	const (
		probeCount   = 6 // calls queued at the paused leader
		clients      = 6
		loadFor      = 13 * time.Second
		maxPerClient = 600
	)
	tc := newTestCluster(t)
	tc.startReplicas(3)
	tc.leader()

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	lr := &linRun{t: t, start: time.Now()}
	var faults []porcupine.Annotation
	mark := func(start int64, desc string) {
		faults = append(faults, porcupine.Annotation{Tag: "faults", Start: start, End: lr.now(), Description: desc, BackgroundColor: "#ffd6d6"})
		t.Logf("%6.2fs–%6.2fs %s", float64(start)/1e9, float64(lr.now())/1e9, desc)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range clients {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			c := newClient(tc.token)
			c.http.Timeout = 3 * time.Second
			for i := 0; i < maxPerClient && time.Since(lr.start) < loadFor; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := tc.replicas[rng.IntN(len(tc.replicas))]
				rec := &linRecord{client: g, meta: linMeta{Replica: r.id}}
				p, id := rng.IntN(100), lr.pick(rng)
				switch {
				case p < 32 || id == "":
					rec.kind, rec.name = linSubmit, fmt.Sprintf("lin-%d-%d", g, i)
					lr.do(c, rec, "POST", r.http, "/workloads", api.SubmitRequest{Name: rec.name, Command: "true", Count: intp(1)})
				case p < 70:
					rec.kind, rec.id = linGet, id
					lr.do(c, rec, "GET", r.http, "/workloads/"+id, nil)
				case p < 94:
					rec.kind, rec.id = linStop, id
					lr.do(c, rec, "DELETE", r.http, "/workloads/"+id, nil)
				default:
					rec.kind = linList
					lr.do(c, rec, "GET", r.http, "/workloads", nil)
				}
				pace := time.Duration(5+rng.IntN(20)) * time.Millisecond
				if rec.meta.Status == 0 || rec.meta.Status >= 500 {
					pace += 30 * time.Millisecond
				}
				time.Sleep(pace)
			}
		}(g)
	}
	stopClients := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopClients()

	// The fault schedule. Sleeps only pace it; state is polled.
	at := func(d time.Duration) { time.Sleep(time.Until(lr.start.Add(d))) }
	quick := newClient(tc.token)
	quick.http.Timeout = time.Second
	leaderAmong := func(what string, rs ...*replica) *replica {
		var out *replica
		waitFor(t, 15*time.Second, what, func() bool {
			for _, r := range rs {
				if st, _, _ := selfOf(quick, r); st == "leader" {
					out = r
					return true
				}
			}
			return false
		})
		return out
	}
	others := func(x *replica) []*replica {
		var out []*replica
		for _, r := range tc.replicas {
			if r != x {
				out = append(out, r)
			}
		}
		return out
	}

	at(2 * time.Second)
	l1 := tc.leader()
	t0 := lr.now()
	l1.proc.kill()
	mark(t0, "kill -9 "+l1.id+" (leader)")
	t0 = lr.now()
	nl := leaderAmong("a new leader after the kill", others(l1)...)
	mark(t0, nl.id+" elected")

	at(4500 * time.Millisecond)
	t0 = lr.now()
	tc.startReplica(l1)
	waitFor(t, 20*time.Second, l1.id+" back as a follower of a leader", func() bool {
		st, leader, _ := selfOf(quick, l1)
		return st == "follower" && leader != ""
	})
	mark(t0, "restart "+l1.id)

	at(7 * time.Second)
	// An ID that the next leader holds as pending before it is paused.
	var before string
	waitFor(t, 10*time.Second, "an acknowledged submit", func() bool { before = lr.pick(rand.New(rand.NewPCG(seed, 99))); return before != "" })
	l2 := tc.leader()
	_, _, pausedTerm := selfOf(quick, l2)
	t0 = lr.now()
	if err := syscall.Kill(l2.proc.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(l2.proc.pid(), syscall.SIGCONT)
		}
	}
	defer resume()
	nl = leaderAmong("a new leader while "+l2.id+" is paused", others(l2)...)
	// The interesting case, made certain rather than left to chance: the
	// new leader acknowledges a submit and a stop that the paused one has
	// not seen, then calls about them queue at the paused one (its kernel
	// accepts them) and are answered when it wakes up still believing it
	// leads. Each may be refused (503) but must not answer from old state.
	probe := newClient(tc.token)
	probe.http.Timeout = 5 * time.Second
	sub := &linRecord{client: clients, kind: linSubmit, name: "lin-probe", meta: linMeta{Replica: nl.id}}
	lr.do(probe, sub, "POST", nl.http, "/workloads", api.SubmitRequest{Name: sub.name, Command: "true", Count: intp(1)})
	stp := &linRecord{client: clients, kind: linStop, id: before, meta: linMeta{Replica: nl.id}}
	lr.do(probe, stp, "DELETE", nl.http, "/workloads/"+before, nil)
	if sub.gotID == "" || stp.meta.Status != http.StatusOK {
		t.Logf("the new leader %s did not acknowledge the probe writes (%s, %s); the paused leader is probed with what it has", nl.id, sub.meta, stp.meta)
	}
	fresh := sub.gotID
	if fresh == "" {
		fresh = before
	}
	var probes sync.WaitGroup
	for i, q := range []struct{ kind, method, id, path string }{
		{linGet, "GET", fresh, "/workloads/" + fresh},     // stale: 404
		{linGet, "GET", before, "/workloads/" + before},   // stale: pending
		{linList, "GET", "", "/workloads"},                // stale: without fresh, with before pending
		{linStop, "DELETE", fresh, "/workloads/" + fresh}, // stale: 404 (the stop looks the workload up first)
		{linStop, "DELETE", fresh, "/workloads/" + fresh},
		{linStop, "DELETE", fresh, "/workloads/" + fresh},
	} {
		probes.Add(1)
		go func() {
			defer probes.Done()
			c := newClient(tc.token)
			c.http.Timeout = 10 * time.Second
			lr.do(c, &linRecord{client: clients + 1 + i, kind: q.kind, id: q.id, meta: linMeta{Replica: l2.id}}, q.method, l2.http, q.path, nil)
		}()
	}
	time.Sleep(300 * time.Millisecond) // pace: let the probes reach the paused replica's socket
	resume()
	mark(t0, "SIGSTOP "+l2.id+" (leader) until "+nl.id+" leads and acknowledges probe writes, then SIGCONT")
	t0 = lr.now()
	probes.Wait()
	waitFor(t, 10*time.Second, l2.id+" to learn of the new term after SIGCONT", func() bool {
		_, leader, term := selfOf(quick, l2)
		return term > pausedTerm && leader != ""
	})
	mark(t0, l2.id+" answers the queued probes and learns of the new term")
	lr.mu.Lock()
	for _, r := range lr.recs {
		if r.client > clients && r.client <= clients+probeCount {
			t.Logf("probe at the paused %s: %s %s → %s %s", l2.id, r.kind, r.id, r.meta, r.state)
		}
	}
	lr.mu.Unlock()

	at(loadFor)
	stopClients()
	for _, r := range tc.replicas {
		if !r.proc.alive() {
			t.Logf("restarting %s", r.id)
			tc.startReplica(r)
		}
	}
	// Final linearizable reads of the whole table through each replica.
	final := newClient(tc.token)
	final.http.Timeout = 5 * time.Second
	for _, r := range tc.replicas {
		waitFor(t, 20*time.Second, "a final list through "+r.id, func() bool {
			rec := &linRecord{client: clients + probeCount + 1, kind: linList, meta: linMeta{Replica: r.id}}
			lr.do(final, rec, "GET", r.http, "/workloads", nil)
			return rec.meta.Status == http.StatusOK
		})
	}

	history, stats := lr.history()
	t.Logf("recorded %d calls: %s; %d operations in %d partitions", len(lr.recs), stats, len(history), len(linModel().Partition(history)))
	if stats.ackedSubmits < 20 || stats.answeredReads < 20 {
		t.Fatalf("too little was acknowledged to check anything: %s", stats)
	}
	checkStart := time.Now()
	res := porcupine.CheckOperationsTimeout(linModel(), history, 10*time.Second)
	t.Logf("porcupine: %s in %s", res, time.Since(checkStart).Round(time.Millisecond))
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Fatalf("porcupine could not decide within its timeout whether the %d operations are linearizable; treat as a failure (a smaller run or a longer timeout will tell)", len(history))
	default:
		lr.reportIllegal(history, faults)
		t.Fatal("the history of API calls is not linearizable (see the excerpt and visualization above)")
	}
}

// linStats counts what the run recorded.
type linStats struct {
	byKind        map[string]int
	ackedSubmits  int
	unknownWrites int
	unseenSubmits int // unknown outcome and never seen: nothing to check
	rejected      map[int]int
	answeredReads int
	droppedReads  int
}

func (s linStats) String() string {
	return fmt.Sprintf("%v, %d acknowledged submits, %d writes with unknown outcome (%d submits never seen), rejected submits by status %v, %d answered reads, %d reads without answer",
		s.byKind, s.ackedSubmits, s.unknownWrites, s.unseenSubmits, s.rejected, s.answeredReads, s.droppedReads)
}

// history turns the records into porcupine operations (see the model).
func (lr *linRun) history() ([]porcupine.Operation, linStats) {
	t := lr.t
	lr.mu.Lock()
	defer lr.mu.Unlock()
	st := linStats{byKind: map[string]int{}, rejected: map[int]int{}}

	// Every workload this run created has a unique name: map names and IDs
	// both ways from every answer, and insist that the mapping is one to one.
	idOf, nameOf := map[string]string{}, map[string]string{}
	bind := func(id, name, where string) {
		if id == "" || name == "" {
			return
		}
		if n, ok := nameOf[id]; ok && n != name {
			t.Errorf("ID %s answered with name %s and with name %s (%s)", id, n, name, where)
		}
		if i, ok := idOf[name]; ok && i != id {
			t.Errorf("name %s answered with ID %s and with ID %s (%s)", name, i, id, where)
		}
		nameOf[id], idOf[name] = name, id
	}
	var end int64
	for _, r := range lr.recs {
		end = max(end, r.ret+1)
		switch r.kind {
		case linSubmit:
			bind(r.gotID, r.name, "submit "+r.meta.String())
		case linGet, linStop:
			bind(r.gotID, r.gotName, r.kind+" "+r.meta.String())
			if r.gotID != "" && r.gotID != r.id {
				t.Errorf("%s %s answered workload %s (%s)", r.kind, r.id, r.gotID, r.meta)
			}
		case linList:
			for id, w := range r.listed {
				bind(id, w.Name, "list "+r.meta.String())
			}
		}
	}
	ids := make([]string, 0, len(nameOf))
	for id := range nameOf {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	var h []porcupine.Operation
	add := func(r *linRecord, kind, id string, ret int64, out string) {
		h = append(h, porcupine.Operation{ClientId: r.client, Input: linInput{Kind: kind, ID: id}, Call: r.call, Output: out, Return: ret, Metadata: r.meta})
	}
	unknown := func(r *linRecord) bool { return r.meta.Status == 0 || r.meta.Status >= 500 }
	for _, r := range lr.recs {
		st.byKind[r.kind]++
		switch r.kind {
		case linSubmit:
			switch {
			case r.gotID != "":
				st.ackedSubmits++
				add(r, linSubmit, r.gotID, r.ret, "ok")
			case unknown(r):
				st.unknownWrites++
				if id, ok := idOf[r.name]; ok {
					add(r, linSubmit, id, end, linUnknown)
				} else {
					st.unseenSubmits++
				}
			case r.meta.Status == http.StatusConflict:
				st.rejected[r.meta.Status]++ // not applied
			default:
				st.rejected[r.meta.Status]++
				t.Errorf("submit %s: unexpected answer %s %s", r.name, r.meta, r.meta.Err)
			}
		case linStop:
			switch {
			case r.meta.Status == http.StatusOK && r.meta.Err == "":
				add(r, linStop, r.id, r.ret, r.state)
			case r.meta.Status == http.StatusNotFound:
				add(r, linStop, r.id, r.ret, linAbsent)
			case unknown(r):
				st.unknownWrites++
				add(r, linStop, r.id, end, linUnknown)
			default:
				t.Errorf("stop %s: unexpected answer %s %s", r.id, r.meta, r.meta.Err)
			}
		case linGet:
			switch {
			case r.meta.Status == http.StatusOK && r.meta.Err == "":
				st.answeredReads++
				add(r, linGet, r.id, r.ret, r.state)
			case r.meta.Status == http.StatusNotFound:
				st.answeredReads++
				add(r, linGet, r.id, r.ret, linAbsent)
			case unknown(r):
				st.droppedReads++
			default:
				t.Errorf("get %s: unexpected answer %s %s", r.id, r.meta, r.meta.Err)
			}
		case linList:
			switch {
			case r.meta.Status == http.StatusOK && r.meta.Err == "":
				st.answeredReads++
				for _, id := range ids {
					out := linAbsent
					if w, ok := r.listed[id]; ok {
						out = w.State
					}
					add(r, linList, id, r.ret, out)
				}
			case unknown(r):
				st.droppedReads++
			default:
				t.Errorf("list: unexpected answer %s %s", r.meta, r.meta.Err)
			}
		}
	}
	return h, st
}

// reportIllegal logs the operations of each non-linearizable partition and
// writes porcupine's visualization of them to a file that outlives the test.
func (lr *linRun) reportIllegal(history []porcupine.Operation, faults []porcupine.Annotation) {
	t := lr.t
	m := linModel()
	var bad []porcupine.Operation
	shown := 0
	for _, part := range m.Partition(history) {
		if porcupine.CheckOperationsTimeout(m, part, 5*time.Second) != porcupine.Illegal {
			continue
		}
		shown++
		if shown > 5 {
			continue
		}
		bad = append(bad, part...)
		sorted := append([]porcupine.Operation(nil), part...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
		// Lists are projected onto every workload: show only those whose
		// answer about this one differs from the list before, and the last.
		var sb strings.Builder
		prevList, elided := "", 0
		for i, op := range sorted {
			if op.Input.(linInput).Kind == linList {
				out := op.Output.(string)
				last := true
				for _, later := range sorted[i+1:] {
					if later.Input.(linInput).Kind == linList {
						last = false
						break
					}
				}
				if out == prevList && !last {
					elided++
					continue
				}
				prevList = out
			}
			ret := fmt.Sprintf("%7.3fs", float64(op.Return)/1e9)
			if op.Output == linUnknown {
				ret = "    end"
			}
			fmt.Fprintf(&sb, "  client %d [%7.3fs → %s] %-44s %s\n", op.ClientId, float64(op.Call)/1e9, ret, m.DescribeOperation(op.Input, op.Output), op.Metadata.(linMeta))
		}
		if elided > 0 {
			fmt.Fprintf(&sb, "  (%d lists not shown: same answer about it as the list before)\n", elided)
		}
		t.Logf("not linearizable: workload %s\n%s", part[0].Input.(linInput).ID, sb.String())
	}
	var fs strings.Builder
	for _, f := range faults {
		fmt.Fprintf(&fs, "  %7.3fs–%7.3fs %s\n", float64(f.Start)/1e9, float64(f.End)/1e9, f.Description)
	}
	t.Logf("%d workloads with a non-linearizable history; faults:\n%s", shown, fs.String())
	_, info := porcupine.CheckOperationsVerbose(m, bad, 20*time.Second)
	info.AddAnnotations(faults)
	f, err := os.CreateTemp("", "mo-linearizability-*.html")
	if err != nil {
		t.Logf("visualization: %v", err)
		return
	}
	f.Close()
	if err := porcupine.VisualizePath(m, info, f.Name()); err != nil {
		t.Logf("visualization: %v", err)
		return
	}
	t.Logf("porcupine visualization of those workloads: %s", f.Name())
}

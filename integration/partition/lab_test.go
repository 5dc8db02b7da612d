package partition

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// Ports inside every namespace: each host has its own network stack.
const (
	httpPort  = 7001
	raftPort  = 7101
	agentPort = 8080
)

// proc is one process started inside a namespace, killed by PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startProc starts bin inside namespace ns, in its own process group, logging to logPath.
func startProc(ns, name, logPath, bin string, args ...string) (*proc, error) {
	var p *proc
	err := reg.create(func() error {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		// ip netns exec enters the namespace and execs bin: the pid is bin's.
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns, filepath.Join(binDir, bin)}, args...)...)
		cmd.Stdout, cmd.Stderr = f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			f.Close()
			return fmt.Errorf("start %s: %w", name, err)
		}
		reg.addProc(cmd.Process.Pid)
		p = &proc{name: name, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); f.Close(); reg.delProc(cmd.Process.Pid); close(p.done) }()
		return nil
	})
	return p, err
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL to the process and its group and waits for it.
func (p *proc) kill() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// replica is one scheduler replica of a lab.
type replica struct {
	id   string // s1..s3
	h    *host
	http string // advertised HTTP address
	data string
	p    *proc
}

// agentNode is one agent of a lab.
type agentNode struct {
	id   string // n1..n5, the node id
	h    *host
	addr string // advertised address
	data string
	p    *proc
}

// lab is one partition lab: network, replicas, agents, sampler, and a client through the client namespace.
type lab struct {
	t        *testing.T
	tag      string // runPrefix_N: namespaces, temp dir and the MO_LAB marker of its workloads
	dir      string
	token    string
	net      *network
	client   *host
	replicas []*replica
	agents   []*agentNode
	tls      *labTLS         // nil in plaintext (MO_TEST_TLS=0)
	scheme   string          // of the test's own calls: https, or http in plaintext
	hc       *http.Client    // the test's calls to replicas
	ac       *http.Client    // the test's calls to agents, which present an agent certificate
	isAgent  map[string]bool // the agents' advertised addresses
	s        *sampler
	started  time.Time
	hint     atomic.Pointer[replica] // the last leader seen, asked first
}

var labSeq atomic.Int32

// newLab builds a running lab of 3 replicas and nAgents agents, removed when the test ends.
func newLab(t *testing.T, nAgents int) *lab {
	t.Helper()
	needLab(t)
	seq := labSeq.Add(1)
	l := &lab{t: t, tag: fmt.Sprintf("%s_%d", runPrefix, seq), started: time.Now()}
	ifTag := ifPrefix + strconv.Itoa(int(seq))
	t.Cleanup(l.close)

	err := reg.create(func() error {
		d, err := os.MkdirTemp("", l.tag+"_")
		if err == nil {
			reg.addDir(d)
			l.dir = d
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	l.token = "lab-token-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(int(seq))
	tokenFile := filepath.Join(l.dir, "token")
	if err := os.WriteFile(tokenFile, []byte(l.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	l.scheme = "http"
	if tlsOn() {
		if l.tls, err = newLabTLS(filepath.Join(l.dir, "tls")); err != nil {
			t.Fatal(err)
		}
		l.scheme = "https"
	}

	if l.net, err = newNetwork(l.tag, ifTag); err != nil {
		t.Fatalf("lab network: %v", err)
	}
	if l.client, err = l.net.addHost(l.tag, ifTag, "cl", 250); err != nil {
		t.Fatalf("lab client namespace: %v", err)
	}
	for i := 1; i <= 3; i++ {
		h, err := l.net.addHost(l.tag, ifTag, "r"+strconv.Itoa(i), 10+i)
		if err != nil {
			t.Fatalf("lab replica namespace: %v", err)
		}
		l.replicas = append(l.replicas, &replica{id: "s" + strconv.Itoa(i), h: h,
			http: fmt.Sprintf("%s:%d", h.ip, httpPort), data: filepath.Join(l.dir, "s"+strconv.Itoa(i))})
	}
	for i := 1; i <= nAgents; i++ {
		h, err := l.net.addHost(l.tag, ifTag, "a"+strconv.Itoa(i), 20+i)
		if err != nil {
			t.Fatalf("lab agent namespace: %v", err)
		}
		l.agents = append(l.agents, &agentNode{id: "n" + strconv.Itoa(i), h: h,
			addr: fmt.Sprintf("%s:%d", h.ip, agentPort), data: filepath.Join(l.dir, "n"+strconv.Itoa(i))})
	}
	l.isAgent = map[string]bool{}
	for _, a := range l.agents {
		l.isAgent[a.addr] = true
	}
	var toReplicas, toAgents *tls.Config
	if l.tls != nil {
		toReplicas, toAgents = l.tls.toReplicas, l.tls.toAgents
	}
	l.hc = &http.Client{Transport: l.transport(toReplicas)}
	l.ac = &http.Client{Transport: l.transport(toAgents)}

	join := strings.Join(l.replicaAddrs(), ",")
	for i, r := range l.replicas {
		args := []string{"serve", "--id", r.id,
			"--http", fmt.Sprintf("0.0.0.0:%d", httpPort), "--advertise-http", r.http,
			"--raft", fmt.Sprintf("0.0.0.0:%d", raftPort), "--advertise-raft", fmt.Sprintf("%s:%d", r.h.ip, raftPort),
			"--data", r.data, "--token-file", tokenFile, "--log-level", "debug"}
		args = append(args, l.tls.flags(tlsutil.RoleServer)...)
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", join)
		}
		if r.p, err = startProc(r.h.ns, r.id, filepath.Join(l.dir, r.id+".log"), "scheduler", args...); err != nil {
			t.Fatal(err)
		}
	}
	l.waitFor(45*time.Second, "3 voting replicas under one leader", func() bool { return l.voters() == 3 })

	for _, a := range l.agents {
		cpu := filepath.Join(l.dir, a.id+".cpu")
		if err := os.WriteFile(cpu, []byte("5\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"--id", a.id, "--listen", fmt.Sprintf("0.0.0.0:%d", agentPort), "--advertise", a.addr,
			"--join", join, "--data", a.data, "--token-file", tokenFile, "--stop-grace", "3s",
			"--cpu-file", cpu, "--log-level", "debug"}
		args = append(args, l.tls.flags(tlsutil.RoleAgent)...)
		if a.p, err = startProc(a.h.ns, a.id, filepath.Join(l.dir, a.id+".log"), "agent", args...); err != nil {
			t.Fatal(err)
		}
	}
	l.waitFor(45*time.Second, fmt.Sprintf("%d agents online", nAgents), func() bool {
		return l.countNodes(api.NodeOnline) == nAgents
	})
	l.s = newSampler(l)
	t.Logf("lab %s: 3 replicas and %d agents on %s0/24, %s, ready in %s", l.tag, nAgents, subnet, l.tls.mode(), time.Since(l.started).Round(time.Millisecond))
	return l
}

// transport is an HTTP transport through the client namespace, speaking TLS
// with tc, or plaintext when tc is nil.
func (l *lab) transport(tc *tls.Config) *http.Transport {
	return &http.Transport{
		DialContext:         (&nsDialer{ns: l.client.ns, timeout: 2 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     10 * time.Second,
	}
}

// close stops the lab's processes and removes its namespaces and files (logs dumped on failure).
func (l *lab) close() {
	if l.s != nil {
		l.s.stop()
	}
	for _, a := range l.agents {
		a.p.kill()
	}
	for _, r := range l.replicas {
		r.p.kill()
	}
	if l.t.Failed() && l.dir != "" {
		l.dumpLogs()
	}
	if l.net != nil {
		l.net.destroy()
	}
	killTagged(l.tag)
	if l.dir != "" {
		_ = os.RemoveAll(l.dir)
		reg.delDir(l.dir)
	}
	for _, c := range []*http.Client{l.hc, l.ac} {
		if c != nil {
			c.CloseIdleConnections()
		}
	}
}

// dumpLogs prints the tail of every process log.
func (l *lab) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(l.dir, "*.log"))
	sort.Strings(logs)
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		l.t.Logf("==== %s (tail)\n%s", filepath.Base(f), b)
	}
}

func (l *lab) replicaAddrs() []string {
	var out []string
	for _, r := range l.replicas {
		out = append(out, r.http)
	}
	return out
}

// roles returns the host roles of the given replicas and agents.
func roles(rs []*replica, as []*agentNode) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.h.role)
	}
	for _, a := range as {
		out = append(out, a.h.role)
	}
	return out
}

// waitFor polls cond every 50 ms until it holds, failing the test after d.
func (l *lab) waitFor(d time.Duration, what string, cond func() bool) {
	l.t.Helper()
	if !poll(d, cond) {
		l.t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// poll polls cond every 50 ms until it holds or d passes, and says which.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// call makes one request through the client namespace and returns the
// status and body; under TLS it shows the server certificate and expects
// an agent's certificate from an agent's address, a server's from any other.
func (l *lab) call(timeout time.Duration, method, address, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, l.scheme+"://"+address+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+l.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := l.hc
	if l.isAgent[address] {
		hc = l.ac
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// getJSON GETs path and decodes a 200 answer into out.
func (l *lab) getJSON(address, path string, out any) error {
	code, b, err := l.call(3*time.Second, http.MethodGet, address, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s%s: %d %s", address, path, code, compact(b))
	}
	return json.Unmarshal(b, out)
}

// compact puts an answer's body on one line.
func compact(b []byte) string { return strings.Join(strings.Fields(string(b)), " ") }

// selfState is a replica's own view (GET /cluster/self, never forwarded).
type selfState struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Term   uint64 `json:"term"`
	Leader string `json:"leader"`
}

// self asks a replica about itself.
func (l *lab) self(r *replica) (selfState, error) {
	var s selfState
	err := l.getJSON(r.http, "/cluster/self", &s)
	return s, err
}

// voters returns how many voters with an HTTP address a leader reports, or 0.
func (l *lab) voters() int {
	for _, r := range l.replicas {
		var st api.ClusterStatus
		if l.getJSON(r.http, "/cluster/status", &st) != nil || st.Leader.ID == "" {
			continue
		}
		n := 0
		for _, x := range st.Replicas {
			if x.Voter && x.HTTP != "" {
				n++
			}
		}
		return n
	}
	return 0
}

// leaderAmong returns the replica among rs that leads with the highest term, or nil.
func (l *lab) leaderAmong(rs []*replica) *replica {
	var best *replica
	var term uint64
	for _, r := range rs {
		if s, err := l.self(r); err == nil && s.State == "leader" && s.Term >= term {
			best, term = r, s.Term
		}
	}
	if best != nil {
		l.hint.Store(best)
	}
	return best
}

// ordered returns the replicas, the last leader seen first.
func (l *lab) ordered() []*replica {
	h := l.hint.Load()
	if h == nil {
		return l.replicas
	}
	out := []*replica{h}
	for _, r := range l.replicas {
		if r != h {
			out = append(out, r)
		}
	}
	return out
}

// leader waits for a leader and returns it.
func (l *lab) leader() *replica {
	l.t.Helper()
	var out *replica
	l.waitFor(30*time.Second, "a leader", func() bool { out = l.leaderAmong(l.replicas); return out != nil })
	return out
}

// others returns the replicas other than r.
func (l *lab) others(r *replica) []*replica {
	var out []*replica
	for _, x := range l.replicas {
		if x != r {
			out = append(out, x)
		}
	}
	return out
}

// nodes returns the leader's nodes through the first replica that answers.
func (l *lab) nodes() ([]api.Node, error) {
	var err error
	for _, r := range l.ordered() {
		var nl api.NodeList
		if err = l.getJSON(r.http, "/nodes", &nl); err == nil {
			return nl.Nodes, nil
		}
	}
	return nil, err
}

// countNodes returns how many nodes are in status, or -1 when no replica answers.
func (l *lab) countNodes(status string) int {
	ns, err := l.nodes()
	if err != nil {
		return -1
	}
	k := 0
	for _, n := range ns {
		if n.Status == status {
			k++
		}
	}
	return k
}

// workloadsVia returns the workloads as the replica at address answers them (query may be ?stale=true).
func (l *lab) workloadsVia(address, query string) ([]api.Workload, error) {
	var wl api.WorkloadList
	err := l.getJSON(address, "/workloads"+query, &wl)
	return wl.Workloads, err
}

// workloads returns the leader's workloads through the first replica that answers.
func (l *lab) workloads() ([]api.Workload, error) {
	var err error
	for _, r := range l.ordered() {
		var ws []api.Workload
		if ws, err = l.workloadsVia(r.http, ""); err == nil {
			return ws, nil
		}
	}
	return nil, err
}

// submitBody is POST /workloads; Exclusive is sent only when set.
type submitBody struct {
	Name      string            `json:"name"`
	Command   string            `json:"command"`
	Args      []string          `json:"args"`
	Env       map[string]string `json:"env"`
	Count     int               `json:"count"`
	Exclusive bool              `json:"exclusive,omitempty"`
}

// sleepers is a submission of n sleep workloads carrying the lab's marker.
func (l *lab) sleepers(name string, n int, exclusive bool) submitBody {
	return submitBody{Name: name, Command: "sleep", Args: []string{"3600"},
		Env: map[string]string{labEnv: l.tag}, Count: n, Exclusive: exclusive}
}

// submitOnce posts one submission to address and returns the answer.
func (l *lab) submitOnce(address string, b submitBody, timeout time.Duration) ([]string, int, error) {
	code, body, err := l.call(timeout, http.MethodPost, address, "/workloads", b)
	if err != nil {
		return nil, 0, err
	}
	if code != http.StatusCreated {
		return nil, code, fmt.Errorf("POST %s/workloads: %d %s", address, code, compact(body))
	}
	var resp api.SubmitResponse
	err = json.Unmarshal(body, &resp)
	return resp.IDs, code, err
}

// submit posts a submission, retrying 503 and connection errors for up to d.
func (l *lab) submit(address string, b submitBody, d time.Duration) ([]string, error) {
	deadline := time.Now().Add(d)
	for {
		ids, code, err := l.submitOnce(address, b, 5*time.Second)
		if err == nil || (code != 0 && code != http.StatusServiceUnavailable) || time.Now().After(deadline) {
			return ids, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mustSubmit submits and waits until every new workload runs exactly once where it is placed.
func (l *lab) mustSubmit(b submitBody) []string {
	l.t.Helper()
	ids, err := l.submit(l.ordered()[0].http, b, 20*time.Second)
	if err != nil {
		hint := ""
		if b.Exclusive && strings.Contains(err.Error(), "exclusive") {
			hint = " (this build does not know the exclusive field)"
		}
		l.t.Fatalf("submitting %d %q workloads: %v%s", b.Count, b.Name, err, hint)
	}
	l.waitRunningOnce(30*time.Second, ids)
	return ids
}

// waitRunningOnce waits until each workload runs, once (/proc), on the node the leader says.
func (l *lab) waitRunningOnce(d time.Duration, ids []string) {
	l.t.Helper()
	var why string
	if !poll(d, func() bool { why = l.runningOnce(ids); return why == "" }) {
		l.t.Fatalf("timed out after %s waiting for every workload to run once: %s", d, why)
	}
}

// runningOnce returns "" when every workload runs once where the leader placed it, or what is not so.
func (l *lab) runningOnce(ids []string) string {
	ws, err := l.workloads()
	if err != nil {
		return "workloads: " + err.Error()
	}
	byID := map[string]api.Workload{}
	for _, w := range ws {
		byID[w.ID] = w
	}
	snap := l.s.latest()
	for _, id := range ids {
		w, ok := byID[id]
		if !ok {
			return id + " unknown to the leader"
		}
		if w.State != api.StateRunning {
			return fmt.Sprintf("%s is %s", id, w.State)
		}
		where := snap.where[id]
		if len(where) != 1 || where[0] != w.Node {
			return fmt.Sprintf("%s placed on %s runs on %v", id, w.Node, where)
		}
	}
	return ""
}

// placement returns node and generation of every workload, as the leader says.
func (l *lab) placement() map[string]api.Workload {
	l.t.Helper()
	var ws []api.Workload
	var err error
	if !poll(15*time.Second, func() bool { ws, err = l.workloads(); return err == nil }) {
		l.t.Fatalf("reading the workloads: %v", err)
	}
	out := map[string]api.Workload{}
	for _, w := range ws {
		out[w.ID] = w
	}
	return out
}

// busiestAgent returns the agent running the most of ids, and those workloads.
func (l *lab) busiestAgent(ids []string) (*agentNode, []string) {
	l.t.Helper()
	pl := l.placement()
	on := map[string][]string{}
	for _, id := range ids {
		on[pl[id].Node] = append(on[pl[id].Node], id)
	}
	var best *agentNode
	for _, a := range l.agents {
		if best == nil || len(on[a.id]) > len(on[best.id]) {
			best = a
		}
	}
	if len(on[best.id]) == 0 {
		l.t.Fatalf("no agent runs any of %v", ids)
	}
	return best, on[best.id]
}

// settle heals every link and waits until every workload runs once where want says, and stays so.
func (l *lab) settle(want map[string]api.Workload) {
	l.t.Helper()
	if err := l.net.healAll(); err != nil {
		l.t.Fatalf("heal: %v", err)
	}
	healed := time.Now()
	var ids []string
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	check := func() string {
		if why := l.runningOnce(ids); why != "" {
			return why
		}
		pl, err := l.workloads()
		if err != nil {
			return err.Error()
		}
		for _, w := range pl {
			if o, ok := want[w.ID]; ok && w.Node != o.Node {
				return fmt.Sprintf("%s moved from %s to %s after the heal", w.ID, o.Node, w.Node)
			}
		}
		return ""
	}
	var why string
	if !poll(30*time.Second, func() bool { why = check(); return why == "" }) {
		l.t.Errorf("after the heal: not every workload runs once where it ran before the heal within 30s: %s", why)
		return
	}
	settled := time.Since(healed)
	hold := time.Now().Add(3500 * time.Millisecond)
	for time.Now().Before(hold) {
		if why = check(); why != "" {
			l.t.Errorf("after the heal, settled after %s, then: %s", settled.Round(time.Millisecond), why)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Logf("after the heal: every workload runs once where it ran before the heal (settled in %s)", settled.Round(time.Millisecond))
}

// stillPlaced lists the workloads of want that moved, restarted or stopped running in now.
func stillPlaced(want, now map[string]api.Workload) []string {
	var out []string
	for id, w := range want {
		n, ok := now[id]
		switch {
		case !ok:
			out = append(out, id+" vanished")
		case n.Node != w.Node:
			out = append(out, fmt.Sprintf("%s moved %s→%s", id, w.Node, n.Node))
		case n.Generation != w.Generation:
			out = append(out, fmt.Sprintf("%s restarted on %s (generation %d→%d)", id, n.Node, w.Generation, n.Generation))
		case n.State != api.StateRunning:
			out = append(out, fmt.Sprintf("%s is %s", id, n.State))
		}
	}
	sort.Strings(out)
	return out
}

// allNodes reports whether the leader sees every agent with the given status.
func (l *lab) allNodes(status string) bool {
	ns, err := l.nodes()
	if err != nil || len(ns) != len(l.agents) {
		return false
	}
	for _, n := range ns {
		if n.Status != status {
			return false
		}
	}
	return true
}

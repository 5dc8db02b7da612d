package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/agent/cgroup"
	"github.com/micro-orchestrator/mo/api"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	if IsGuard() { // the guard process runs from this test binary too
		os.Exit(RunGuard())
	}
	if IsMonitor() { // and so do the workloads' monitors
		os.Exit(RunMonitor())
	}
	if cgroup.IsShim() { // and so does the cgroup shim
		os.Exit(cgroup.RunShim())
	}
	if h := os.Getenv(testHelperEnv); h != "" { // a workload played by this test binary
		os.Exit(runTestHelper(h))
	}
	if mb := os.Getenv(testAllocEnv); mb != "" { // a workload that allocates memory
		os.Exit(testAllocate(mb))
	}
	// The guard and the monitors run from this binary, built with -race
	// by go test -race: without this each waits a second when it exits.
	if _, ok := os.LookupEnv("GORACE"); !ok {
		_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// agentBinary builds cmd/agent once per test run.
func agentBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mo-agent-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, "agent"), "github.com/micro-orchestrator/mo/cmd/agent").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "agent")
}

// syncBuffer collects a process's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// agentProc is the real agent binary running on 127.0.0.1.
type agentProc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	done   chan struct{}
	err    error // of Wait, once done is closed
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startAgentProc runs the binary with args plus --listen and --data, and
// kills it by pid when the test ends.
func startAgentProc(t testing.TB, args ...string) *agentProc {
	t.Helper()
	return startAgentProcAt(t, freeAddr(t), append([]string{"--data", t.TempDir()}, args...)...)
}

// isMonitorProc reports whether pid is a workload's monitor.
func isMonitorProc(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.HasPrefix(string(b), monitorArgv0+"\x00")
}

// call makes one request to the agent process.
func (p *agentProc) call(t testing.TB, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+p.addr+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// waitReady polls the agent's /status until it answers 200.
func (p *agentProc) waitReady(t testing.TB, token string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the agent to serve /status", func() bool {
		code, _ := p.call(t, http.MethodGet, "/status", token, nil)
		return code == http.StatusOK
	})
}

func (p *agentProc) startSleep(t testing.TB, token, id string) int {
	t.Helper()
	code, out := p.call(t, http.MethodPost, "/workloads", token, api.StartRequest{ID: id, Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 1})
	var resp api.StartResponse
	if code != http.StatusCreated || json.Unmarshal(out, &resp) != nil || resp.PID <= 0 {
		t.Fatalf("start %s: %d %s", id, code, out)
	}
	pid := resp.PID
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL); reapIfChild(pid) })
	return pid
}

func TestBinaryKilledAgentTakesItsWorkloadsAlong(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	regs := make(chan *http.Request, 4)
	bodies := make(chan api.RegisterRequest, 4)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/nodes" {
			api.WriteError(w, http.StatusNotFound, "fake scheduler: only POST /nodes")
			return
		}
		var req api.RegisterRequest
		if code, err := api.DecodeJSON(w, r, &req); err != nil {
			api.WriteError(w, code, err.Error())
			return
		}
		regs <- r
		bodies <- req
		api.WriteJSON(w, http.StatusCreated, req)
	}))
	defer fake.Close()

	p := startAgentProc(t, "--id", "n-int", "--join", fake.Listener.Addr().String(), "--token", testToken, "--stop-grace", "2s")
	select {
	case r := <-regs:
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("registration carried Authorization %q", got)
		}
		if b := <-bodies; b.ID != "n-int" || b.Address != p.addr {
			t.Errorf("registered %+v, want n-int at %s", b, p.addr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no registration arrived; agent stderr:\n%s", p.stderr.String())
	}
	p.waitReady(t, testToken)
	if code, _ := p.call(t, http.MethodGet, "/status", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /status without token: %d, want 401", code)
	}

	pid := p.startSleep(t, testToken, "sleeper")
	st, err := readProcStat(pid)
	if err != nil || st.pgrp != pid {
		t.Fatalf("workload %d: %+v %v, want it leading its own group", pid, st, err)
	}
	if mst, err := readProcStat(st.ppid); err != nil || mst.ppid != p.cmd.Process.Pid || !isMonitorProc(st.ppid) {
		t.Fatalf("workload %d: parent %d (%+v %v), want a monitor that is a child of the agent %d", pid, st.ppid, mst, err, p.cmd.Process.Pid)
	}
	// A workload with a background child, which Pdeathsig does not reach.
	code, out := p.call(t, http.MethodPost, "/workloads", testToken, api.StartRequest{ID: "family", Command: "sh", Args: []string{"-c", "sleep 600 & sleep 600"}, Generation: 1, Term: 1})
	var fam api.StartResponse
	if code != http.StatusCreated || json.Unmarshal(out, &fam) != nil {
		t.Fatalf("start family: %d %s", code, out)
	}
	t.Cleanup(func() { killGroup(t, fam.PID); reapGroup(fam.PID, 5*time.Second) })
	waitFor(t, 5*time.Second, "the family group to form", func() bool { return len(groupMembers(fam.PID)) >= 3 })

	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	waitFor(t, 10*time.Second, "the workload to die with the agent", func() bool { return !running(pid) })
	reapIfChild(pid)
	waitFor(t, 10*time.Second, "the background child to die with the agent", func() bool { return len(groupMembers(fam.PID)) == 0 })
	reapGroup(fam.PID, 5*time.Second)

	if strings.Contains(p.stderr.String(), testToken) {
		t.Errorf("the token appears in the agent's log:\n%s", p.stderr.String())
	}
}

// With --restart-grace 0, SIGTERM stops every workload, as it always did.
func TestBinarySIGTERMStopsWorkloadsAndExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	p := startAgentProc(t, "--id", "n-term", "--insecure", "--stop-grace", "1s", "--restart-grace", "0")
	p.waitReady(t, "")
	code, out := p.call(t, http.MethodPost, "/workloads", "", api.StartRequest{ID: "g", Command: "sh", Args: []string{"-c", "sleep 600 & sleep 600"}, Generation: 1, Term: 1})
	var resp api.StartResponse
	if code != http.StatusCreated || json.Unmarshal(out, &resp) != nil {
		t.Fatalf("start: %d %s", code, out)
	}
	t.Cleanup(func() { killGroup(t, resp.PID) })
	waitFor(t, 5*time.Second, "the group to form", func() bool { return len(groupMembers(resp.PID)) >= 3 })

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("agent did not exit after SIGTERM:\n%s", p.stderr.String())
	}
	if p.err != nil {
		t.Errorf("agent exit: %v, want status 0\n%s", p.err, p.stderr.String())
	}
	if groupExists(resp.PID) {
		t.Errorf("workload group %d outlived the agent's clean shutdown", resp.PID)
	}
	if log := p.stderr.String(); !strings.Contains(log, "INSECURE") {
		t.Errorf("no loud warning for --insecure:\n%s", log)
	}
}

func TestBinaryUsageErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	bin := agentBinary(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	data := t.TempDir()
	cases := []struct {
		args []string
		env  string
		code int
		want string
	}{
		{nil, "", 2, "--id is required"},
		{[]string{"--id", "n", "--data", data}, "", 2, "no cluster token"},
		{[]string{"--id", "n", "--data", data, "--token", "t", "--listen", "0.0.0.0:0"}, "", 2, "--advertise"},
		{[]string{"--id", "n", "--data", data, "--listen", ":9999"}, "SCHEDULER_TOKEN=t", 2, "binds every interface"},
		{[]string{"--bogus"}, "", 2, "flag provided but not defined"},
		{[]string{"--id", "n", "--data", data, "--token", "t", "extra"}, "", 2, "unexpected argument"},
		{[]string{"-h"}, "", 0, "Usage: agent"},
		{[]string{"--id", "n", "--data", data, "--token", "t", "--stop-grace", "0s"}, "", 2, "--stop-grace must be positive"},
		{[]string{"--id", "n", "--data", data, "--listen", busy.Addr().String()}, "SCHEDULER_TOKEN=t", 1, "address already in use"},
	}
	for _, c := range cases {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = workloadBaseEnv(os.Environ(), "")
		if c.env != "" {
			cmd.Env = append(cmd.Env, c.env)
		}
		out, _ := cmd.CombinedOutput()
		if got := cmd.ProcessState.ExitCode(); got != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("agent %v: exit %d, want %d with %q:\n%s", c.args, got, c.code, c.want, out)
		}
	}
}

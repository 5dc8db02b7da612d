package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// fakeScheduler answers what an agent calls: registration, heartbeats (404,
// which the agent logs and goes on), POST /nodes/{id}/restarting, POST
// /nodes/{id}/drain and GET /nodes.
type fakeScheduler struct {
	*httptest.Server
	regs chan api.RegisterRequest

	mu          sync.Mutex
	restarting  []api.RestartingRequest
	restartAuth []string
	restart404  bool
	drains      []map[string]any
	draining    bool
	nodePolls   int
}

func newFakeScheduler(t *testing.T) *fakeScheduler {
	f := &fakeScheduler{regs: make(chan api.RegisterRequest, 16)}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/nodes":
			var req api.RegisterRequest
			if code, err := api.DecodeJSON(w, r, &req); err != nil {
				api.WriteError(w, code, err.Error())
				return
			}
			f.regs <- req
			api.WriteJSON(w, http.StatusCreated, req)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/restarting"):
			if f.restart404 {
				api.WriteError(w, http.StatusNotFound, "no such endpoint: POST "+r.URL.Path)
				return
			}
			var req api.RestartingRequest
			if code, err := api.DecodeJSON(w, r, &req); err != nil {
				api.WriteError(w, code, err.Error())
				return
			}
			f.restarting = append(f.restarting, req)
			f.restartAuth = append(f.restartAuth, r.Header.Get("Authorization")+" "+r.URL.Path)
			api.WriteJSON(w, http.StatusOK, map[string]string{})
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/drain"):
			var req map[string]any
			if code, err := api.DecodeJSON(w, r, &req); err != nil {
				api.WriteError(w, code, err.Error())
				return
			}
			req["path"] = r.URL.Path
			req["auth"] = r.Header.Get("Authorization")
			f.drains = append(f.drains, req)
			f.draining = true
			api.WriteJSON(w, http.StatusOK, map[string]string{})
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/nodes/"):
			f.nodePolls++
			id := strings.TrimPrefix(r.URL.Path, "/nodes/")
			if id != "n-drain" {
				api.WriteError(w, http.StatusNotFound, "no node "+id)
				return
			}
			api.WriteJSON(w, http.StatusOK, map[string]any{"id": "n-drain", "status": "online", "draining": f.draining, "eligible": !f.draining})
		default:
			api.WriteError(w, http.StatusNotFound, "fake scheduler: no "+r.Method+" "+r.URL.Path)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeScheduler) addr() string { return f.Listener.Addr().String() }

// awaitRegistration waits for the next registration.
func (f *fakeScheduler) awaitRegistration(t *testing.T, p *agentProc) api.RegisterRequest {
	t.Helper()
	select {
	case r := <-f.regs:
		return r
	case <-time.After(15 * time.Second):
		t.Fatalf("no registration; agent log:\n%s", p.stderr.String())
	}
	return api.RegisterRequest{}
}

// startAgentProcAt is startAgentProc listening on addr.
func startAgentProcAt(t testing.TB, addr string, args ...string) *agentProc {
	t.Helper()
	p := &agentProc{addr: addr, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(agentBinary(t), append([]string{"--listen", addr}, args...)...)
	p.cmd.Env = workloadBaseEnv(os.Environ(), "")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	return p
}

// startWorkload starts req on the agent process and returns its pid; the
// group is killed when the test ends, and the monitor reaped (monitors of an
// agent that has exited come to the test process, a subreaper).
func (p *agentProc) startWorkload(t *testing.T, token string, req api.StartRequest) (pid, monitor int) {
	t.Helper()
	code, out := p.call(t, http.MethodPost, "/workloads", token, req)
	var resp api.StartResponse
	if code != http.StatusCreated || json.Unmarshal(out, &resp) != nil || resp.PID <= 0 {
		t.Fatalf("start %s: %d %s", req.ID, code, out)
	}
	pid = resp.PID
	st, err := readProcStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	monitor = st.ppid
	kill := monitorKiller(pid)
	t.Cleanup(func() {
		killGroup(t, pid)
		reapGroup(pid, 2*time.Second)
		kill()
	})
	return pid, monitor
}

// status fetches the agent process's GET /status.
func (p *agentProc) status(t *testing.T, token string) map[string]api.AgentWorkload {
	t.Helper()
	code, out := p.call(t, http.MethodGet, "/status", token, nil)
	if code != http.StatusOK {
		return nil
	}
	var st api.AgentStatus
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	m := map[string]api.AgentWorkload{}
	for _, w := range st.Workloads {
		m[w.ID] = w
	}
	return m
}

// logs fetches the whole output of id from the agent process.
func (p *agentProc) logs(t *testing.T, token, id string) string {
	t.Helper()
	code, out := p.call(t, http.MethodGet, "/workloads/"+id+"/logs?tail=all", token, nil)
	if code != http.StatusOK {
		t.Fatalf("logs of %s: %d %s", id, code, out)
	}
	return string(out)
}

// waitExit waits for the agent process to exit and says how long it took.
func (p *agentProc) waitExit(t *testing.T, since time.Time) time.Duration {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the agent did not exit:\n%s", p.stderr.String())
	}
	if p.err != nil {
		t.Errorf("agent exit: %v, want 0\n%s", p.err, p.stderr.String())
	}
	return time.Since(since)
}

// SIGTERM of a real agent keeps its workloads running (same pids, output
// captured meanwhile); the next agent on the same data dir adopts them,
// reports an exit with its code and stops them; SIGKILL of that agent then
// kills them at once, background children included. With and without
// cgroups.
func TestBinarySIGTERMKeepsWorkloadsForTheNextAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	if err := becomeSubreaper(); err != nil { // monitors of an exited agent come here
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
	}{{"cgroups", nil}, {"no-cgroups", []string{"--no-cgroups"}}} {
		t.Run(c.name, func(t *testing.T) {
			fake := newFakeScheduler(t)
			data, addr := t.TempDir(), freeAddr(t)
			args := append([]string{"--id", "n-rs", "--data", data, "--join", fake.addr(), "--token", testToken, "--stop-grace", "2s"}, c.args...)
			a := startAgentProcAt(t, addr, args...)
			fake.awaitRegistration(t, a)
			a.waitReady(t, testToken)
			sleeper, _ := a.startWorkload(t, testToken, api.StartRequest{ID: "sleeper", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 1})
			m := marker(8)
			t.Cleanup(func() { killWithArg(m) })
			tick, _ := a.startWorkload(t, testToken, sh("tick", "sleep "+m+" & "+tickScript, 1, 1))
			exiter, _ := a.startWorkload(t, testToken, sh("exiter", `while [ ! -e stop ]; do sleep 0.02; done; echo done; exit 7`, 1, 1))
			waitFor(t, 5*time.Second, "the tick workload's background child", func() bool { return len(withArg(m)) == 1 })
			tickMembers := append(withArg(m), tick)
			waitFor(t, 5*time.Second, "some ticks", func() bool { return len(ticks(t, a.logs(t, testToken, "tick"))) > 5 })
			before := a.status(t, testToken)

			sent := time.Now()
			if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			exitTook := a.waitExit(t, sent)
			for _, pid := range append([]int{sleeper, exiter}, tickMembers...) {
				if !running(pid) {
					t.Fatalf("process %d did not survive its agent's SIGTERM:\n%s", pid, a.stderr.String())
				}
			}
			fake.mu.Lock()
			announced := append([]api.RestartingRequest(nil), fake.restarting...)
			auth := append([]string(nil), fake.restartAuth...)
			fake.mu.Unlock()
			if len(announced) != 1 || announced[0].GraceMS != 10000 || auth[0] != "Bearer "+testToken+" /nodes/n-rs/restarting" {
				t.Errorf("restart announced as %+v %q, want grace_ms 10000 with the token", announced, auth)
			}
			if !strings.Contains(a.stderr.String(), "told the scheduler that this node is restarting") {
				t.Errorf("no word of the announcement in the log:\n%s", a.stderr.String())
			}
			spool := filepath.Join(data, "workloads", "tick", spoolName)
			waitFor(t, 5*time.Second, "output spooled while no agent runs", func() bool {
				fi, err := os.Stat(spool)
				return err == nil && fi.Size() > 200
			})

			started := time.Now()
			b := startAgentProcAt(t, addr, args...)
			var after map[string]api.AgentWorkload
			waitFor(t, 10*time.Second, "the next agent to show the adopted workloads", func() bool {
				after = b.status(t, testToken)
				return len(after) == 3
			})
			adoptTook := time.Since(started)
			t.Logf("SIGTERM to exit: %s; next agent started to workloads adopted in /status: %s; SIGTERM to adopted: %s",
				exitTook.Round(time.Millisecond), adoptTook.Round(time.Millisecond), time.Since(sent).Round(time.Millisecond))
			for id, w := range before {
				got := after[id]
				if got.State != api.InstanceRunning || got.PID != w.PID || got.Generation != w.Generation || !got.StartedAt.Equal(w.StartedAt) {
					t.Errorf("%s after the restart: %+v, want it as before: %+v", id, got, w)
				}
			}
			if r := fake.awaitRegistration(t, b); r.ID != "n-rs" || r.Address != addr {
				t.Errorf("the next agent registered %+v", r)
			}
			n := len(ticks(t, b.logs(t, testToken, "tick")))
			waitFor(t, 5*time.Second, "new output through the next agent", func() bool {
				return len(ticks(t, b.logs(t, testToken, "tick"))) > n+10
			})
			if got := ticks(t, b.logs(t, testToken, "tick")); got[0] != 0 {
				t.Errorf("output before the restart lost: first tick %d", got[0])
			}

			touch(t, filepath.Join(data, "workloads", "exiter", "stop"))
			waitFor(t, 5*time.Second, "the adopted workload's exit", func() bool { return b.status(t, testToken)["exiter"].State == api.InstanceExited })
			if w := b.status(t, testToken)["exiter"]; w.ExitCode == nil || *w.ExitCode != 7 || !strings.HasSuffix(b.logs(t, testToken, "exiter"), "done\n") {
				t.Errorf("exit after the adoption: %+v, want code 7 and its last output", w)
			}
			code, out := b.call(t, http.MethodDelete, "/workloads/sleeper?term=1&generation=1", testToken, nil)
			var stopped api.AgentWorkload
			if code != http.StatusOK || json.Unmarshal(out, &stopped) != nil || stopped.State != api.InstanceStopped || groupExists(sleeper) {
				t.Errorf("stop through the next agent: %d %s", code, out)
			}

			killed := time.Now()
			if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-b.done
			waitFor(t, 5*time.Second, "the adopted workload to die with the killed agent", func() bool {
				for _, pid := range tickMembers {
					if running(pid) {
						return false
					}
				}
				return true
			})
			t.Logf("SIGKILL of the agent to its adopted workload and background child dead: %s", time.Since(killed).Round(time.Millisecond))
			if strings.Contains(a.stderr.String()+b.stderr.String(), testToken) {
				t.Error("the token appears in an agent's log")
			}
		})
	}
}

// No agent within the grace: the workload is killed once it has passed. An
// older scheduler that does not know POST /nodes/{id}/restarting is logged.
func TestBinaryNoAgentWithinTheGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	fake := newFakeScheduler(t)
	fake.restart404 = true
	p := startAgentProc(t, "--id", "n-late", "--join", fake.addr(), "--token", testToken, "--restart-grace", "1s")
	fake.awaitRegistration(t, p)
	p.waitReady(t, testToken)
	pid, _ := p.startWorkload(t, testToken, sh("w", "sleep 600 & sleep 600", 1, 1))
	waitFor(t, 5*time.Second, "the group to form", func() bool { return len(groupMembers(pid)) >= 3 })
	members := groupMembers(pid)
	sent := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitExit(t, sent)
	if !running(pid) {
		t.Fatal("the workload did not outlive its agent")
	}
	waitFor(t, 10*time.Second, "the workload killed after the grace", func() bool {
		for _, m := range members {
			if running(m) {
				return false
			}
		}
		return true
	})
	took := time.Since(sent)
	t.Logf("killed %s after SIGTERM (grace 1s)", took.Round(time.Millisecond))
	if took < time.Second {
		t.Errorf("killed after %s, within the grace", took)
	}
	if log := p.stderr.String(); !strings.Contains(log, "does not know POST /nodes/{id}/restarting") {
		t.Errorf("no word of the older scheduler:\n%s", log)
	}
}

// --drain-on-shutdown: SIGTERM asks for a drain and waits until the node
// shows draining false, then stops what is left; a second SIGTERM during the
// drain exits at once, keeping the workloads.
func TestBinaryDrainOnShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	t.Run("drained", func(t *testing.T) {
		fake := newFakeScheduler(t)
		p := startAgentProc(t, "--id", "n-drain", "--join", fake.addr(), "--token", testToken, "--drain-on-shutdown", "--drain-deadline", "5m", "--stop-grace", "1s")
		fake.awaitRegistration(t, p)
		p.waitReady(t, testToken)
		pid, _ := p.startWorkload(t, testToken, sh("w", "sleep 600", 1, 1))
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		waitFor(t, 10*time.Second, "the node polled while draining", func() bool {
			fake.mu.Lock()
			defer fake.mu.Unlock()
			return fake.nodePolls >= 2
		})
		fake.mu.Lock()
		drains := fake.drains
		fake.mu.Unlock()
		if len(drains) != 1 || drains[0]["enable"] != true || drains[0]["deadline"] != "5m0s" || drains[0]["path"] != "/nodes/n-drain/drain" || drains[0]["auth"] != "Bearer "+testToken {
			t.Fatalf("drain requests %v", drains)
		}
		select {
		case <-p.done:
			t.Fatalf("the agent exited while its node was draining:\n%s", p.stderr.String())
		default:
		}
		if !running(pid) {
			t.Fatal("the workload was stopped before the drain finished")
		}
		fake.mu.Lock()
		fake.draining = false
		fake.mu.Unlock()
		p.waitExit(t, time.Now())
		if groupExists(pid) {
			t.Errorf("the workload outlived the drained agent's shutdown")
		}
		fake.mu.Lock()
		defer fake.mu.Unlock()
		if len(fake.restarting) != 0 {
			t.Errorf("a drained shutdown announced a restart: %v", fake.restarting)
		}
	})
	t.Run("second signal", func(t *testing.T) {
		fake := newFakeScheduler(t)
		p := startAgentProc(t, "--id", "n-drain", "--join", fake.addr(), "--token", testToken, "--drain-on-shutdown", "--restart-grace", "2s")
		fake.awaitRegistration(t, p)
		p.waitReady(t, testToken)
		pid, _ := p.startWorkload(t, testToken, sh("w", "sleep 600", 1, 1))
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		waitFor(t, 10*time.Second, "the drain to begin", func() bool {
			fake.mu.Lock()
			defer fake.mu.Unlock()
			return fake.nodePolls >= 1
		})
		sent := time.Now()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		took := p.waitExit(t, sent)
		t.Logf("second SIGTERM to exit: %s", took.Round(time.Millisecond))
		if !running(pid) {
			t.Fatal("the workload did not outlive the agent that left during the drain")
		}
		fake.mu.Lock()
		n := len(fake.restarting)
		fake.mu.Unlock()
		if n != 1 {
			t.Errorf("%d restart announcements, want 1", n)
		}
		waitFor(t, 10*time.Second, "the workload killed after the grace", func() bool { return !running(pid) })
	})
}

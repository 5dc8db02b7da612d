package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
)

const testToken = "t0k3n-for-tests-7c1e"

// testAgent is an agent served by an httptest server on 127.0.0.1.
type testAgent struct {
	*agent
	t   testing.TB
	url string
}

type testOption func(*Config, *agentOptions)

func withGrace(d time.Duration) testOption {
	return func(c *Config, _ *agentOptions) { c.StopGrace = d }
}

func withDataDir(dir string) testOption {
	return func(c *Config, _ *agentOptions) { c.DataDir = dir }
}

func withKeepEnded(n int) testOption {
	return func(_ *Config, o *agentOptions) { o.keepEnded = n }
}

func withLogMax(n int64) testOption {
	return func(c *Config, _ *agentOptions) { c.LogMaxBytes = n }
}

// newTestAgent builds an agent on a fresh data dir; it is shut down (every
// workload stopped) when the test ends.
func newTestAgent(t testing.TB, opts ...testOption) *testAgent {
	t.Helper()
	cfg := Config{ID: "n1", DataDir: t.TempDir(), Token: testToken, StopGrace: 2 * time.Second}
	var ao agentOptions
	for _, o := range opts {
		o(&cfg, &ao)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "agent", Output: t.Output(), Level: hclog.Info})
	a, err := newAgent(cfg, log, ao)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler)
	ta := &testAgent{agent: a, t: t, url: srv.URL}
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.close(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return ta
}

// do makes one request with the given bearer token ("" for none).
func (ta *testAgent) do(method, path, token string, body []byte) (int, []byte, http.Header) {
	ta.t.Helper()
	req, err := http.NewRequest(method, ta.url+path, bytes.NewReader(body))
	if err != nil {
		ta.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ta.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		ta.t.Fatal(err)
	}
	return resp.StatusCode, out, resp.Header
}

// start posts a start request and decodes the answer.
func (ta *testAgent) start(req api.StartRequest) (int, api.StartResponse) {
	ta.t.Helper()
	body, _ := json.Marshal(req)
	code, out, _ := ta.do(http.MethodPost, "/workloads", testToken, body)
	var resp api.StartResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		ta.t.Fatalf("start answer %d is not JSON: %q", code, out)
	}
	return code, resp
}

// mustStart starts req and fails the test unless the answer is 201 running.
func (ta *testAgent) mustStart(req api.StartRequest) api.StartResponse {
	ta.t.Helper()
	code, resp := ta.start(req)
	if code != http.StatusCreated || resp.State != api.InstanceRunning || resp.PID <= 0 {
		ta.t.Fatalf("start %s: got %d %+v, want 201 running", req.ID, code, resp)
	}
	return resp
}

// stop sends DELETE /workloads/{id} and decodes the instance or the error.
func (ta *testAgent) stop(id string, term, gen uint64) (int, api.AgentWorkload, string) {
	ta.t.Helper()
	code, out, _ := ta.do(http.MethodDelete, fmt.Sprintf("/workloads/%s?term=%d&generation=%d", id, term, gen), testToken, nil)
	var w api.AgentWorkload
	var e api.Error
	_ = json.Unmarshal(out, &w)
	_ = json.Unmarshal(out, &e)
	return code, w, e.Error
}

// status fetches GET /status.
func (ta *testAgent) status() api.AgentStatus {
	ta.t.Helper()
	code, out, _ := ta.do(http.MethodGet, "/status", testToken, nil)
	if code != http.StatusOK {
		ta.t.Fatalf("GET /status: %d %s", code, out)
	}
	var st api.AgentStatus
	if err := json.Unmarshal(out, &st); err != nil {
		ta.t.Fatalf("GET /status: %v: %q", err, out)
	}
	return st
}

// instance returns id's entry of GET /status.
func (ta *testAgent) instance(id string) (api.AgentWorkload, bool) {
	ta.t.Helper()
	for _, w := range ta.status().Workloads {
		if w.ID == id {
			return w, true
		}
	}
	return api.AgentWorkload{}, false
}

// waitState polls GET /status until id reaches state.
func (ta *testAgent) waitState(id, state string) api.AgentWorkload {
	ta.t.Helper()
	var w api.AgentWorkload
	waitFor(ta.t, 10*time.Second, id+" to be "+state, func() bool {
		w, _ = ta.instance(id)
		return w.State == state
	})
	return w
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// groupExists reports whether process group pgid has any member, zombies
// included.
func groupExists(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

// groupMembers lists the live (non-zombie) processes of group pgid.
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil && st.pgrp == pgid && st.state != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// running reports whether pid is a live, non-zombie process.
func running(pid int) bool {
	st, err := readProcStat(pid)
	return err == nil && st.state != 'Z'
}

// reapIfChild collects pid if it is an ended child of the test process (as a
// subreaper, the test process inherits orphans).
func reapIfChild(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

// killGroup SIGKILLs a group in test cleanups, ignoring "no such process".
func killGroup(t testing.TB, pgid int) {
	if pgid <= 1 {
		return
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill group %d: %v", pgid, err)
	}
}

func sh(id, script string, gen, term uint64) api.StartRequest {
	return api.StartRequest{ID: id, Command: "sh", Args: []string{"-c", script}, Generation: gen, Term: term}
}

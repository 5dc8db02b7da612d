package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func TestStopKillsWholeGroup(t *testing.T) {
	ta := newTestAgent(t)
	resp := ta.mustStart(sh("w1", "sleep 600 & sleep 600", 1, 1))
	pgid := resp.PID
	t.Cleanup(func() { killGroup(t, pgid) })

	// sh and both sleeps: the background sleep is a grandchild of the agent.
	var members []int
	waitFor(t, 5*time.Second, "3 processes in the group", func() bool {
		members = groupMembers(pgid)
		return len(members) >= 3
	})

	code, w, msg := ta.stop("w1", 1, 1)
	if code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, msg)
	}
	// No polling: once DELETE has answered, nothing of the group may exist.
	if groupExists(pgid) {
		t.Fatalf("process group %d still exists after DELETE returned (members %v)", pgid, groupMembers(pgid))
	}
	for _, pid := range members {
		if running(pid) {
			t.Errorf("process %d of the group still runs", pid)
		}
	}
	if w.State != api.InstanceStopped || w.ExitCode == nil || *w.ExitCode != 128+15 || w.ExitedAt == nil {
		t.Errorf("DELETE answer %+v, want stopped with exit code 143", w)
	}
	if got, _ := ta.instance("w1"); got.State != api.InstanceStopped {
		t.Errorf("status shows %q, want stopped", got.State)
	}
	// Stopping again is a no-op that returns the same final instance.
	code, w2, _ := ta.stop("w1", 1, 1)
	if code != http.StatusOK || w2.State != api.InstanceStopped || w2.PID != pgid {
		t.Errorf("second DELETE: %d %+v", code, w2)
	}
	// The record that lets a restarted agent kill the group is gone with it.
	if recs, _ := filepath.Glob(filepath.Join(ta.cfg.DataDir, "workloads", "w1", "proc-*.json")); len(recs) != 0 {
		t.Errorf("process records left: %v", recs)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	grace := 300 * time.Millisecond
	ta := newTestAgent(t, withGrace(grace))
	// SIGTERM is ignored by the shell and, inherited, by both sleeps.
	resp := ta.mustStart(sh("stubborn", `trap "" TERM; sleep 600 & sleep 600`, 1, 1))
	t.Cleanup(func() { killGroup(t, resp.PID) })
	waitFor(t, 5*time.Second, "3 processes in the group", func() bool { return len(groupMembers(resp.PID)) >= 3 })

	begin := time.Now()
	code, w, msg := ta.stop("stubborn", 1, 1)
	took := time.Since(begin)
	if code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, msg)
	}
	if took < grace {
		t.Errorf("stop took %s, less than the grace period %s: SIGKILL came too early", took, grace)
	}
	if groupExists(resp.PID) {
		t.Fatalf("group still exists after DELETE")
	}
	if w.ExitCode == nil || *w.ExitCode != 128+9 {
		t.Errorf("exit code %v, want 137", w.ExitCode)
	}
}

func TestLeaderEndKillsRestOfGroup(t *testing.T) {
	grace := 5 * time.Second
	ta := newTestAgent(t, withGrace(grace))
	// The main process dies on SIGTERM at once; its child ignores SIGTERM.
	resp := ta.mustStart(sh("w", `(trap "" TERM; sleep 600) & exec sleep 600`, 1, 1))
	t.Cleanup(func() { killGroup(t, resp.PID) })
	waitFor(t, 5*time.Second, "2 processes in the group", func() bool { return len(groupMembers(resp.PID)) >= 2 })

	begin := time.Now()
	code, _, msg := ta.stop("w", 1, 1)
	if code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, msg)
	}
	if took := time.Since(begin); took >= grace {
		t.Errorf("stop took %s: the rest of the group should be killed as soon as the main process ends", took)
	}
	if groupExists(resp.PID) {
		t.Fatalf("group still exists after DELETE")
	}
}

func TestStartIsIdempotent(t *testing.T) {
	ta := newTestAgent(t)
	first := ta.mustStart(api.StartRequest{ID: "w", Command: "sleep", Args: []string{"600"}, Generation: 3, Term: 2})
	t.Cleanup(func() { killGroup(t, first.PID) })

	code, again := ta.start(api.StartRequest{ID: "w", Command: "sleep", Args: []string{"600"}, Generation: 3, Term: 2})
	if code != http.StatusOK || again.PID != first.PID || again.State != api.InstanceRunning || again.Generation != 3 {
		t.Fatalf("repeated start: %d %+v, want 200 with pid %d", code, again, first.PID)
	}
	if m := groupMembers(first.PID); len(m) != 1 {
		t.Errorf("group members %v, want just the one sleep", m)
	}
	if n := len(ta.status().Workloads); n != 1 {
		t.Errorf("%d instances in /status, want 1", n)
	}
}

func TestConcurrentStartsStartOnce(t *testing.T) {
	ta := newTestAgent(t)
	const n = 16
	codes := make([]int, n)
	pids := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			codes[i], pids[i] = func() (int, int) {
				c, r := ta.start(api.StartRequest{ID: "w", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 1})
				return c, r.PID
			}()
		})
	}
	wg.Wait()
	t.Cleanup(func() { killGroup(t, pids[0]) })
	created := 0
	for i := range n {
		if codes[i] == http.StatusCreated {
			created++
		} else if codes[i] != http.StatusOK {
			t.Errorf("start %d answered %d", i, codes[i])
		}
		if pids[i] != pids[0] {
			t.Errorf("start %d got pid %d, start 0 got %d", i, pids[i], pids[0])
		}
	}
	if created != 1 {
		t.Errorf("%d starts answered 201, want exactly 1", created)
	}
}

func TestHigherGenerationReplaces(t *testing.T) {
	ta := newTestAgent(t)
	old := ta.mustStart(api.StartRequest{ID: "w", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 1})
	t.Cleanup(func() { killGroup(t, old.PID) })
	nw := ta.mustStart(api.StartRequest{ID: "w", Command: "sleep", Args: []string{"601"}, Generation: 2, Term: 1})
	t.Cleanup(func() { killGroup(t, nw.PID) })

	if nw.PID == old.PID || nw.Generation != 2 {
		t.Fatalf("new instance %+v, old pid %d", nw, old.PID)
	}
	if groupExists(old.PID) {
		t.Errorf("old generation's group %d still exists", old.PID)
	}
	if !running(nw.PID) {
		t.Errorf("new pid %d not running", nw.PID)
	}
	w, _ := ta.instance("w")
	if w.PID != nw.PID || w.Generation != 2 || w.State != api.InstanceRunning {
		t.Errorf("status %+v, want generation 2 running as %d", w, nw.PID)
	}
}

func TestStaleGenerationRefused(t *testing.T) {
	ta := newTestAgent(t)
	cur := ta.mustStart(api.StartRequest{ID: "w", Command: "sleep", Args: []string{"600"}, Generation: 5, Term: 1})
	t.Cleanup(func() { killGroup(t, cur.PID) })

	code, resp := ta.start(api.StartRequest{ID: "w", Command: "sleep", Args: []string{"600"}, Generation: 4, Term: 1})
	if code != http.StatusConflict || !strings.HasPrefix(resp.Error, "stale generation") {
		t.Errorf("start with lower generation: %d %q, want 409 stale generation", code, resp.Error)
	}
	code, _, msg := ta.stop("w", 1, 4)
	if code != http.StatusConflict || !strings.HasPrefix(msg, "stale generation") {
		t.Errorf("stop with lower generation: %d %q, want 409", code, msg)
	}
	if !running(cur.PID) {
		t.Fatal("the current instance was touched by a stale request")
	}
	if w, _ := ta.instance("w"); w.PID != cur.PID || w.Generation != 5 || w.State != api.InstanceRunning {
		t.Errorf("status %+v changed", w)
	}
	// A higher generation may stop it.
	if code, w, msg := ta.stop("w", 1, 6); code != http.StatusOK || w.State != api.InstanceStopped {
		t.Errorf("stop with higher generation: %d %+v %s", code, w, msg)
	}
}

func TestStaleTermRefusedAndPersisted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "data") // created by the agent
	ta := newTestAgent(t, withDataDir(dir))
	cur := ta.mustStart(api.StartRequest{ID: "w", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 7})
	t.Cleanup(func() { killGroup(t, cur.PID) })

	code, resp := ta.start(api.StartRequest{ID: "other", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 6})
	if code != http.StatusConflict || !strings.HasPrefix(resp.Error, "stale term") {
		t.Errorf("start with old term: %d %q, want 409 stale term", code, resp.Error)
	}
	if _, ok := ta.instance("other"); ok {
		t.Error("a stale-term start left an instance")
	}
	// Stale term wins over every other answer, even for an unknown id.
	for _, id := range []string{"w", "unknown"} {
		if code, _, msg := ta.stop(id, 6, 1); code != http.StatusConflict || !strings.HasPrefix(msg, "stale term") {
			t.Errorf("stop %s with old term: %d %q, want 409", id, code, msg)
		}
	}
	if !running(cur.PID) {
		t.Fatal("a stale-term stop touched the workload")
	}

	path := filepath.Join(dir, "agent_state.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("agent_state.json mode %v, want 0600", fi.Mode().Perm())
	}
	var st agentState
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &st); err != nil || st.Term != 7 {
		t.Errorf("agent_state.json = %q, want term 7", data)
	}
	for _, d := range []string{dir, filepath.Join(dir, "workloads"), filepath.Join(dir, "workloads", "w")} {
		if di, err := os.Stat(d); err != nil || di.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, want mode 0700", d, err)
		}
	}

	// A restarted agent keeps refusing term 6.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ta.close(ctx); err != nil {
		t.Fatal(err)
	}
	ta2 := newTestAgent(t, withDataDir(dir))
	if code, resp := ta2.start(api.StartRequest{ID: "x", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 6}); code != http.StatusConflict {
		t.Errorf("after restart, start with term 6: %d %+v, want 409", code, resp)
	}
}

func TestCommandThatCannotStart(t *testing.T) {
	ta := newTestAgent(t)
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ id, cmd, reason string }{
		{"missing", "/nonexistent/definitely-not-here", "no such file or directory"},
		{"notinpath", "no-such-command-mo-test", "executable file not found"},
		{"notexec", notExec, "permission denied"},
	}
	for _, c := range cases {
		code, resp := ta.start(api.StartRequest{ID: c.id, Command: c.cmd, Generation: 1, Term: 1})
		if code != http.StatusUnprocessableEntity || !strings.Contains(resp.Error, c.reason) || resp.State != api.InstanceFailed {
			t.Errorf("%s: %d %+v, want 422 failed with %q", c.id, code, resp, c.reason)
		}
		w, ok := ta.instance(c.id)
		if !ok || w.State != api.InstanceFailed || !strings.Contains(w.Error, c.reason) || w.PID != 0 {
			t.Errorf("%s: status %+v, want failed with the reason", c.id, w)
		}
		if code, out, _ := ta.do(http.MethodGet, "/workloads/"+c.id+"/logs", testToken, nil); code != http.StatusOK || !strings.Contains(string(out), c.reason) {
			t.Errorf("%s: logs %d %q, want the reason", c.id, code, out)
		}
	}
	// Retrying the same generation answers the same failure and starts nothing.
	if code, resp := ta.start(api.StartRequest{ID: "missing", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 1}); code != http.StatusUnprocessableEntity || resp.PID != 0 {
		t.Errorf("retry of a failed generation: %d %+v, want 422 and nothing started", code, resp)
	}
	// The agent keeps working, and a higher generation starts.
	resp := ta.mustStart(api.StartRequest{ID: "missing", Command: "sleep", Args: []string{"600"}, Generation: 2, Term: 1})
	killGroup(t, resp.PID)
}

func TestExitCodeReported(t *testing.T) {
	ta := newTestAgent(t)
	ta.mustStart(sh("three", "exit 3", 1, 1))
	ta.mustStart(sh("killed", "kill -KILL $$", 1, 1))

	w := ta.waitState("three", api.InstanceExited)
	if w.ExitCode == nil || *w.ExitCode != 3 || w.ExitedAt == nil || w.Error != "" {
		t.Errorf("exit 3: %+v", w)
	}
	w = ta.waitState("killed", api.InstanceExited)
	if w.ExitCode == nil || *w.ExitCode != 128+9 {
		t.Errorf("killed by SIGKILL: exit code %v, want 137", w.ExitCode)
	}
	if groupExists(w.PID) {
		t.Errorf("group of an exited workload still exists")
	}
	// A start of the generation that has ended starts nothing.
	if code, resp := ta.start(sh("three", "exit 3", 1, 1)); code != http.StatusOK || resp.State != api.InstanceExited {
		t.Errorf("start of an ended generation: %d %+v, want 200 exited", code, resp)
	}
}

func TestLogsTail(t *testing.T) {
	ta := newTestAgent(t)
	ta.mustStart(api.StartRequest{ID: "hello", Command: "echo", Args: []string{"hello"}, Generation: 1, Term: 1})
	ta.mustStart(sh("abc", `printf 'a\nb\n' ; printf 'c\n' >&2`, 1, 1))
	ta.waitState("hello", api.InstanceExited)
	ta.waitState("abc", api.InstanceExited)

	code, out, h := ta.do(http.MethodGet, "/workloads/hello/logs", testToken, nil)
	if code != http.StatusOK || string(out) != "hello\n" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("logs of echo hello: %d %q %q", code, out, h.Get("Content-Type"))
	}
	if _, out, _ := ta.do(http.MethodGet, "/workloads/abc/logs?tail=2", testToken, nil); string(out) != "b\nc\n" {
		t.Errorf("tail=2: %q, want b and c (stderr included)", out)
	}
	if _, out, _ := ta.do(http.MethodGet, "/workloads/abc/logs?tail=0", testToken, nil); len(out) != 0 {
		t.Errorf("tail=0: %q", out)
	}
	for _, bad := range []string{"-1", "x", "10001", "1.5"} {
		if code, out, _ := ta.do(http.MethodGet, "/workloads/abc/logs?tail="+bad, testToken, nil); code != http.StatusBadRequest || !strings.Contains(string(out), `"error"`) {
			t.Errorf("tail=%s: %d %s, want 400", bad, code, out)
		}
	}
	if code, _, _ := ta.do(http.MethodGet, "/workloads/nope/logs", testToken, nil); code != http.StatusNotFound {
		t.Errorf("logs of unknown id: %d, want 404", code)
	}
	fi, err := os.Stat(filepath.Join(ta.cfg.DataDir, "workloads", "hello", "output.log"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("output.log: %v %v, want mode 0600", err, fi)
	}
}

func TestWorkloadEnvironmentHasNoToken(t *testing.T) {
	t.Setenv(tokenEnv, testToken)
	t.Setenv("MO_TEST_COPY_OF_TOKEN", testToken)
	t.Setenv("MO_TEST_KEEP", "agent-value")
	t.Setenv("MO_TEST_OVERRIDE", "agent-value")
	ta := newTestAgent(t)
	req := api.StartRequest{ID: "env", Command: "env", Generation: 1, Term: 1,
		Env: map[string]string{"FOO": "bar", "MO_TEST_OVERRIDE": "submitted"}}
	ta.mustStart(req)
	ta.waitState("env", api.InstanceExited)
	_, out, _ := ta.do(http.MethodGet, "/workloads/env/logs?tail=10000", testToken, nil)
	env := strings.Split(string(out), "\n")
	if strings.Contains(string(out), testToken) || slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, tokenEnv+"=") }) {
		t.Errorf("the workload saw the token:\n%s", out)
	}
	for _, want := range []string{"FOO=bar", "MO_TEST_KEEP=agent-value", "MO_TEST_OVERRIDE=submitted"} {
		if !slices.Contains(env, want) {
			t.Errorf("%s missing from the workload's env", want)
		}
	}
	if slices.Contains(env, "MO_TEST_OVERRIDE=agent-value") {
		t.Error("the submitted env did not replace the agent's value")
	}
}

func TestShutdownStopsEverything(t *testing.T) {
	ta := newTestAgent(t, withGrace(300*time.Millisecond))
	a := ta.mustStart(api.StartRequest{ID: "a", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 1})
	b := ta.mustStart(sh("b", `trap "" TERM; sleep 600 & sleep 600`, 1, 1))
	t.Cleanup(func() { killGroup(t, a.PID); killGroup(t, b.PID) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ta.sup.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{a.PID, b.PID} {
		if groupExists(pid) {
			t.Errorf("group %d survived shutdown", pid)
		}
	}
	for _, id := range []string{"a", "b"} {
		if w, _ := ta.instance(id); w.State != api.InstanceStopped {
			t.Errorf("%s is %q after shutdown, want stopped", id, w.State)
		}
	}
	if code, _ := ta.start(api.StartRequest{ID: "c", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 1}); code != http.StatusServiceUnavailable {
		t.Errorf("start after shutdown: %d, want 503", code)
	}
}

func TestEndedInstancesArePruned(t *testing.T) {
	ta := newTestAgent(t, withKeepEnded(2))
	for i := range 4 {
		id := "w" + strconv.Itoa(i)
		ta.mustStart(api.StartRequest{ID: id, Command: "true", Generation: 1, Term: 1})
		ta.waitState(id, api.InstanceExited)
	}
	var ids []string
	for _, w := range ta.status().Workloads {
		ids = append(ids, w.ID)
	}
	if !slices.Equal(ids, []string{"w2", "w3"}) {
		t.Errorf("instances %v, want the 2 newest", ids)
	}
	if _, err := os.Stat(filepath.Join(ta.cfg.DataDir, "workloads", "w0")); !os.IsNotExist(err) {
		t.Errorf("dir of a pruned instance: %v, want removed", err)
	}
}

func TestStrayChildrenAreReaped(t *testing.T) {
	ta := newTestAgent(t)
	// The inner shell leaves the group (setsid) and outlives the main process,
	// so it is orphaned to the agent, the subreaper, and dies later.
	ta.mustStart(sh("stray", `setsid sh -c 'echo $$; sleep 0.5' & sleep 0.2`, 1, 1))
	var pid int
	waitFor(t, 5*time.Second, "the stray's pid in the logs", func() bool {
		_, out, _ := ta.do(http.MethodGet, "/workloads/stray/logs", testToken, nil)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(out)))
		return pid > 0
	})
	t.Cleanup(func() { killGroup(t, pid) })
	waitFor(t, 10*time.Second, "the stray to be reaped", func() bool {
		ta.sup.reapStrays()
		_, err := readProcStat(pid)
		return os.IsNotExist(err)
	})
}

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// These tests leave an agent for a restart in the test process
// (agent.detach, what SIGTERM does with --restart-grace) and build the next
// one on the same data dir; restart_binary_test.go does it with real agent
// processes and signals.

// detach leaves ta for a restart with grace.
func (ta *testAgent) detach(grace time.Duration) {
	ta.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ta.agent.detach(ctx, grace); err != nil {
		ta.t.Fatalf("detach: %v", err)
	}
}

// tickScript prints numbered lines, 100 a second, for ever.
const tickScript = `i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.01; done`

// ticks returns the numbers of the tick lines in out, and complains about
// any gap.
func ticks(t *testing.T, out string) []int {
	t.Helper()
	var got []int
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "tick "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("bad line %q", sc.Text())
			}
			if len(got) > 0 && n != got[len(got)-1]+1 {
				t.Errorf("output lost: tick %d follows tick %d", n, got[len(got)-1])
			}
			got = append(got, n)
		}
	}
	return got
}

// cleanupPID kills pid's group and its monitor when the test ends (a
// workload left by an agent that the test left for a restart).
func cleanupPID(t *testing.T, pid int) {
	kill := monitorKiller(pid)
	t.Cleanup(func() {
		killGroup(t, pid)
		reapGroup(pid, 5*time.Second)
		kill()
	})
}

// monitorKiller returns a func that kills and reaps the monitor of
// workload pid, as it is now (by pid, if its start time still matches), for
// a test's cleanup: a monitor left for a restart waits out its grace.
func monitorKiller(pid int) func() {
	st, err := readProcStat(pid)
	if err != nil || !isMonitorProc(st.ppid) {
		return func() {}
	}
	mon := st.ppid
	mst, err := readProcStat(mon)
	if err != nil {
		return func() {}
	}
	return func() {
		if cur, err := readProcStat(mon); err == nil && cur.startTime == mst.startTime && cur.state != 'Z' {
			_ = syscall.Kill(mon, syscall.SIGKILL)
		}
		reapOurs(mon, false, 5*time.Second)
	}
}

// The workloads of an agent that leaves for a restart keep running, their
// output is kept while no agent runs, and the next agent adopts them as
// they were: same pid, generation, started_at, ports, output; it stops them.
func TestRestartedAgentAdoptsItsWorkloads(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, withDataDir(dir))
	tick := a.mustStart(sh("tick", tickScript, 3, 2))
	cleanupPID(t, tick.PID)
	srvReq := httpServer(t, "srv", api.Spec{})
	srvReq.Term = 2
	srv := a.mustStart(srvReq)
	cleanupPID(t, srv.PID)
	waitFor(t, 5*time.Second, "some ticks", func() bool { return len(ticks(t, a.logs("tick"))) > 5 })
	before, _ := a.instance("tick")
	srvBefore, _ := a.instance("srv")

	a.detach(5 * time.Second)
	if !running(tick.PID) || !running(srv.PID) {
		t.Fatal("a workload did not survive its agent's restart")
	}
	spool := filepath.Join(dir, "workloads", "tick", spoolName)
	waitFor(t, 5*time.Second, "output spooled while no agent runs", func() bool {
		fi, err := os.Stat(spool)
		return err == nil && fi.Size() > 100
	})

	began := time.Now()
	b := newTestAgent(t, withDataDir(dir))
	t.Logf("the next agent started and adopted in %s", time.Since(began).Round(time.Millisecond))
	after, ok := b.instance("tick")
	if !ok || after.State != api.InstanceRunning || after.PID != before.PID || after.Generation != 3 || !after.StartedAt.Equal(before.StartedAt) {
		t.Fatalf("adopted instance %+v, want it as it was: %+v", after, before)
	}
	srvAfter, _ := b.instance("srv")
	if srvAfter.PID != srv.PID || srvAfter.Ports["http"] != srvBefore.Ports["http"] || srvAfter.Ports["http"] == 0 {
		t.Fatalf("adopted server %+v, want its pid and port as before %+v", srvAfter, srvBefore)
	}
	if b.sup.cfg.ports.inUse() != 1 {
		t.Errorf("the next agent holds %d ports, want the adopted one", b.sup.cfg.ports.inUse())
	}
	if _, err := os.Stat(spool); !os.IsNotExist(err) {
		t.Errorf("the spool is still there after the adoption: %v", err)
	}
	last := ticks(t, b.logs("tick"))
	waitFor(t, 5*time.Second, "new ticks through the next agent", func() bool {
		n := ticks(t, b.logs("tick"))
		return len(n) > len(last)+10
	})
	all := ticks(t, b.logs("tick"))
	if all[0] != 0 {
		t.Errorf("the output before the restart is gone: first tick %d", all[0])
	}
	if !strings.Contains(b.logs("tick"), "[agent: restarted; the workload kept running (pid "+strconv.Itoa(tick.PID)+")]") {
		t.Error("no word of the restart in the output")
	}
	code, w, msg := b.stop("tick", 2, 3)
	if code != http.StatusOK || w.State != api.InstanceStopped || w.ExitCode == nil || *w.ExitCode != 143 {
		t.Fatalf("stop through the next agent: %d %+v %s", code, w, msg)
	}
	if groupExists(tick.PID) {
		t.Fatal("the adopted workload's group outlived its stop")
	}
	if _, err := os.Stat(recordPath(filepath.Join(dir, "workloads", "tick"), 3)); !os.IsNotExist(err) {
		t.Errorf("record left after the stop: %v", err)
	}
}

// A workload that exits after its adoption is reported with its exit code;
// one that exits while no agent runs is reported too, with the code its
// monitor kept, and its restart policy applies.
func TestExitsAroundARestartAreReported(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, withDataDir(dir))
	later := a.mustStart(sh("later", `while [ ! -e stop ]; do sleep 0.02; done; echo bye; exit 7`, 1, 1))
	cleanupPID(t, later.PID)
	away := sh("away", `echo "run $$"; while [ ! -e stop ]; do sleep 0.02; done; rm stop; exit 5`, 1, 1)
	away.Spec = api.Spec{Restart: &api.RestartPolicy{Attempts: 2, Delay: dur(50 * time.Millisecond)}}
	first := a.mustStart(away)
	cleanupPID(t, first.PID)

	a.detach(10 * time.Second)
	touch(t, filepath.Join(dir, "workloads", "away", "stop"))
	waitFor(t, 5*time.Second, "the workload to exit while no agent runs", func() bool { return !running(first.PID) })

	b := newTestAgent(t, withDataDir(dir))
	w := b.waitUntil("away", 10*time.Second, "restarted in place", func(w api.AgentWorkload) bool {
		return w.State == api.InstanceRunning && w.PID != first.PID && w.Restarts == 1
	})
	cleanupPID(t, w.PID)
	if !strings.Contains(b.logs("away"), "[agent: restart 1 of 2 in 50ms: exited with code 5]") {
		t.Errorf("the exit while no agent ran is not in the output:\n%s", b.logs("away"))
	}
	touch(t, filepath.Join(dir, "workloads", "later", "stop"))
	w = b.waitState("later", api.InstanceExited)
	if w.ExitCode == nil || *w.ExitCode != 7 || w.PID != later.PID {
		t.Fatalf("exit after the adoption: %+v, want code 7", w)
	}
	if !strings.Contains(b.logs("later"), "bye\n") {
		t.Errorf("the last output is missing:\n%s", b.logs("later"))
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// No agent within the grace: the monitor kills the workload and its
// background children, and records why.
func TestNoAgentWithinTheGraceKillsTheWorkload(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, withDataDir(dir))
	w := a.mustStart(sh("w", "sleep 600 & sleep 600", 1, 1))
	cleanupPID(t, w.PID)
	waitFor(t, 5*time.Second, "the group to form", func() bool { return len(groupMembers(w.PID)) >= 3 })
	members := groupMembers(w.PID)
	grace := 2 * time.Second
	left := time.Now()
	a.detach(grace)
	if !running(w.PID) {
		t.Fatal("the workload did not outlive its agent")
	}
	waitFor(t, 10*time.Second, "the workload killed after the grace", func() bool {
		for _, pid := range members {
			if running(pid) {
				return false
			}
		}
		return true
	})
	if took := time.Since(left); took < grace {
		t.Fatalf("killed after %s, before the grace %s", took, grace)
	}
	var ex exitRecord
	waitFor(t, 5*time.Second, "the exit record", func() bool {
		data, err := os.ReadFile(exitPath(filepath.Join(dir, "workloads", "w"), 1))
		return err == nil && json.Unmarshal(data, &ex) == nil
	})
	if ex.Cause != causeGraceExpired || ex.Code == nil || *ex.Code != 137 {
		t.Errorf("exit record %+v, want the grace named", ex)
	}
	// The next agent, come too late, starts empty.
	b := newTestAgent(t, withDataDir(dir))
	if n := len(b.status().Workloads); n != 0 {
		t.Errorf("the late agent shows %d workloads", n)
	}
}

// A monitor whose agent goes away without announcing a restart kills its
// workload at once, background children included (its cgroup, or its tag):
// what SIGKILL of the agent does (restart_binary_test.go does it for real).
// The monitor is started alone here, with nobody else to kill anything.
func TestMonitorKillsItsWorkloadWhenTheAgentDies(t *testing.T) {
	ta := newTestAgent(t)
	for _, withCgroup := range []bool{false, true} {
		if withCgroup && ta.cgroups == nil {
			continue
		}
		dir := t.TempDir()
		in := &instance{id: "w", gen: 1, dir: dir}
		tag := instanceEnv + "=test" + strconv.Itoa(os.Getpid()) + ":w:1"
		m := marker(10)
		t.Cleanup(func() { killWithArg(m) })
		path, err := resolveCommand("sh")
		if err != nil {
			t.Fatal(err)
		}
		spec := monitorSpec{Version: monitorVersion, ID: "w", Gen: 1, Path: path,
			Argv: []string{"sh", "-c", `setsid sh -c "exec sleep ` + m + `" & sleep 600`},
			Env:  []string{"PATH=" + os.Getenv("PATH"), tag}, Tag: tag, Socket: socketName(1), LogMax: 1 << 20, BootID: readBootID()}
		if withCgroup {
			if err := ta.sup.createCgroup(in, nil); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ta.sup.dropCgroup(in) })
			spec.Cgroup = ta.sup.monitorCgroup(in)
		}
		link, started, pr, err := ta.sup.startMonitor(in, spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pr.Close(); killGroup(t, started.PID); reapOurs(link.pid, true, 5*time.Second) })
		waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withArg(m)) == 1 })
		escaped := withArg(m)[0]
		link.close() // the agent's end of the connection, as its death closes it
		waitFor(t, 5*time.Second, "the workload killed for its agent's death", func() bool { return !running(started.PID) })
		// Nothing is written in the dead agent's data dir afterwards.
		if _, err := os.Stat(exitPath(dir, 1)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %t: an exit record was written after the agent died (%v)", withCgroup, err)
		}
		waitFor(t, 5*time.Second, "the escaped process killed", func() bool { return !running(escaped) })
		waitFor(t, 5*time.Second, "the monitor gone", func() bool {
			st, err := readProcStat(link.pid)
			return err != nil || st.state == 'Z'
		})
	}
}

// Records that do not match what runs are neither adopted nor acted on: a
// monitor pid reused by another process, another boot.
func TestMismatchedRecordsAreNotAdopted(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(rec *procRecord, decoy int, decoyStart uint64)
	}{
		{"pid reused", func(rec *procRecord, decoy int, decoyStart uint64) {
			rec.MonitorPID, rec.MonitorStart = decoy, decoyStart+1
			rec.PGID, rec.StartTime = decoy, decoyStart+1
		}},
		{"start time differs", func(rec *procRecord, _ int, _ uint64) { rec.MonitorStart++ }},
		{"another boot", func(rec *procRecord, decoy int, decoyStart uint64) {
			rec.BootID = "another-boot"
			rec.MonitorPID, rec.MonitorStart = decoy, decoyStart
			rec.PGID, rec.StartTime = decoy, decoyStart
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			decoyCmd := startGroup(t, "exec sleep 600")
			decoy := decoyCmd.Process.Pid
			st, err := readProcStat(decoy)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			a := newTestAgent(t, withDataDir(dir))
			w := a.mustStart(sh("w", "sleep 600", 1, 1))
			cleanupPID(t, w.PID)
			a.detach(2 * time.Second)
			path := recordPath(filepath.Join(dir, "workloads", "w"), 1)
			rec, err := readRecord(path)
			if err != nil {
				t.Fatal(err)
			}
			c.edit(&rec, decoy, st.startTime)
			if err := writeRecord(path, rec); err != nil {
				t.Fatal(err)
			}
			b := newTestAgent(t, withDataDir(dir))
			if n := len(b.status().Workloads); n != 0 {
				t.Fatalf("adopted %d workloads from a record that does not match", n)
			}
			if !running(decoy) {
				t.Fatal("the process the record wrongly names was killed")
			}
			// The real workload is not left running as a stray: its monitor
			// (or, with cgroups, the sweep of this agent's own cgroups) ends it.
			waitFor(t, 10*time.Second, "the unadopted workload to end", func() bool { return !running(w.PID) })
		})
	}
}

// An instance waiting out its restart delay when the agent leaves is
// restarted in place by the next agent, with its count.
func TestPendingRestartGoesOnAfterARestart(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, withDataDir(dir))
	req := sh("flaky", `echo "run $$"; exit 3`, 1, 1)
	req.Spec = api.Spec{Restart: &api.RestartPolicy{Attempts: 3, Delay: dur(time.Second)}}
	a.mustStart(req)
	a.waitUntil("flaky", 10*time.Second, "to wait for its restart", func(w api.AgentWorkload) bool { return w.State == api.InstanceRestarting })
	a.detach(10 * time.Second)
	b := newTestAgent(t, withDataDir(dir))
	if w, _ := b.instance("flaky"); w.State != api.InstanceRestarting || w.Restarts != 1 {
		t.Fatalf("after the restart: %+v, want restarting with one restart counted", w)
	}
	w := b.waitUntil("flaky", 20*time.Second, "to fail", func(w api.AgentWorkload) bool { return w.State == api.InstanceFailed })
	if w.Restarts != 3 || !strings.Contains(w.Reason, "restarted 3 times") {
		t.Fatalf("failed instance %+v", w)
	}
	if n := strings.Count(b.logs("flaky"), "run "); n != 4 {
		t.Errorf("%d runs, want 4:\n%s", n, b.logs("flaky"))
	}
}

// Health checks resume on an adopted instance, and an unhealthy one is
// killed and restarted by the next agent.
func TestHealthChecksResumeAfterARestart(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, withDataDir(dir))
	req := httpServer(t, "srv", api.Spec{
		Check:   &api.Check{Type: api.CheckHTTP, Port: "http", Path: "/health", Interval: dur(100 * time.Millisecond), Timeout: dur(time.Second), Failures: 2, Grace: dur(100 * time.Millisecond)},
		Restart: &api.RestartPolicy{Attempts: 1, Delay: dur(50 * time.Millisecond)},
	})
	first := a.mustStart(req)
	cleanupPID(t, first.PID)
	a.waitUntil("srv", 10*time.Second, "healthy", func(w api.AgentWorkload) bool { return w.Health == api.HealthHealthy })
	a.detach(10 * time.Second)
	b := newTestAgent(t, withDataDir(dir))
	b.waitUntil("srv", 10*time.Second, "healthy again", func(w api.AgentWorkload) bool {
		return w.Health == api.HealthHealthy && w.PID == first.PID
	})
	// Freeze it: the next agent's checks find it unhealthy and restart it.
	if err := syscall.Kill(first.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	w := b.waitUntil("srv", 15*time.Second, "restarted", func(w api.AgentWorkload) bool {
		return w.State == api.InstanceRunning && w.PID != first.PID
	})
	cleanupPID(t, w.PID)
	if w.Restarts != 1 || !strings.Contains(b.logs("srv"), "unhealthy") {
		t.Fatalf("after the unhealthy run: %+v\n%s", w, b.logs("srv"))
	}
}

// A framed follow of an agent that leaves for a restart ends without an
// End frame, and resumed on the next agent at its last position it gets the
// output written meanwhile, nothing lost or repeated.
func TestFollowResumesAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, withDataDir(dir))
	tick := a.mustStart(sh("tick", tickScript, 1, 1))
	cleanupPID(t, tick.PID)
	follow := func(ta *testAgent, query string, stop func([]api.LogFrame) bool) []api.LogFrame {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ta.url+"/workloads/tick/logs?follow=true&frames=true&"+query, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got []api.LogFrame
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var f api.LogFrame
			if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
				t.Fatalf("frame %q: %v", sc.Text(), err)
			}
			got = append(got, f)
			if stop != nil && stop(got) {
				break
			}
		}
		return got
	}
	var text []byte
	streamed := make(chan []api.LogFrame, 1)
	go func() { streamed <- follow(a, "tail=all", nil) }()
	waitFor(t, 5*time.Second, "some ticks", func() bool { return len(ticks(t, a.logs("tick"))) > 10 })
	a.detach(10 * time.Second)
	var first []api.LogFrame
	select {
	case first = <-streamed:
	case <-time.After(10 * time.Second):
		t.Fatal("the follow did not end when its agent left")
	}
	for _, f := range first {
		if f.End {
			t.Fatal("the follow said the output ended although the workload runs on")
		}
		text = append(text, f.Data...)
	}
	next := first[len(first)-1].Next
	b := newTestAgent(t, withDataDir(dir))
	second := follow(b, "since="+strconv.FormatInt(next, 10), func(fs []api.LogFrame) bool {
		var n []byte
		for _, f := range fs {
			n = append(n, f.Data...)
		}
		return len(ticks(t, string(n))) > 30
	})
	for _, f := range second {
		if f.Lost != 0 {
			t.Errorf("frame %+v lost output", f)
		}
		text = append(text, f.Data...)
	}
	got := ticks(t, string(text)) // complains about any gap or repeat
	if len(got) < 40 || got[0] != 0 {
		t.Fatalf("followed ticks %d..%d (%d)", got[0], got[len(got)-1], len(got))
	}
}

// Exclusive instances do not outlive their agent's restart (their lease
// cannot be renewed meanwhile): they are stopped, and the next agent shows
// them stopped.
func TestExclusiveInstancesAreStoppedAtARestart(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, withDataDir(dir))
	now := boottime()
	a.agent.lease.recordSent(1, now)
	a.agent.lease.renew(now+time.Minute, 1)
	req := sh("solo", "sleep 600", 1, 1)
	req.Exclusive, req.HeartbeatSeq = true, 1
	solo := a.mustStart(req)
	cleanupPID(t, solo.PID)
	plain := a.mustStart(sh("plain", "sleep 600", 1, 1))
	cleanupPID(t, plain.PID)
	a.detach(10 * time.Second)
	if groupExists(solo.PID) {
		t.Fatal("an exclusive instance outlived its agent's restart")
	}
	if !running(plain.PID) {
		t.Fatal("the plain instance did not outlive its agent's restart")
	}
	b := newTestAgent(t, withDataDir(dir))
	if w, _ := b.instance("solo"); w.State != api.InstanceStopped {
		t.Errorf("the exclusive instance after the restart: %+v, want it shown stopped", w)
	}
	if w, _ := b.instance("plain"); w.PID != plain.PID {
		t.Errorf("plain after the restart: %+v", w)
	}
}

// Restart after restart: the workload goes from agent to agent.
func TestWorkloadsSurviveRestartsInARow(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, withDataDir(dir))
	tick := a.mustStart(sh("tick", tickScript, 1, 1))
	cleanupPID(t, tick.PID)
	prev := a
	for i := range 3 {
		n := len(ticks(t, prev.logs("tick")))
		waitFor(t, 5*time.Second, "new ticks", func() bool { return len(ticks(t, prev.logs("tick"))) > n+5 })
		prev.detach(5 * time.Second)
		next := newTestAgent(t, withDataDir(dir))
		if w, _ := next.instance("tick"); w.PID != tick.PID || w.State != api.InstanceRunning {
			t.Fatalf("after restart %d: %+v", i+1, w)
		}
		prev = next
	}
	got := ticks(t, prev.logs("tick"))
	if got[0] != 0 || strings.Count(prev.logs("tick"), "[agent: restarted;") != 3 {
		t.Fatalf("output after 3 restarts:\n%s", prev.logs("tick"))
	}
}

// An adopted instance that ignores SIGTERM is killed after the stop grace,
// with the process that left its group (cgroup, or tag without cgroups).
func TestAdoptedInstanceIsKilledAfterTheStopGrace(t *testing.T) {
	for _, c := range []struct {
		name string
		off  string
	}{{"cgroups", ""}, {"no-cgroups", "forced off by the test"}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := []testOption{withDataDir(dir), withGrace(300 * time.Millisecond), func(_ *Config, o *agentOptions) { o.cgroupsOff = c.off }}
			a := newTestAgent(t, opts...)
			m := marker(9)
			t.Cleanup(func() { killWithArg(m) })
			resp := a.mustStart(sh("stubborn", `trap "" TERM; setsid sh -c "trap '' TERM; exec sleep `+m+`" & while :; do sleep 0.05; done`, 1, 1))
			cleanupPID(t, resp.PID)
			waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withArg(m)) == 1 })
			a.detach(10 * time.Second)
			b := newTestAgent(t, opts...)
			began := time.Now()
			code, w, msg := b.stop("stubborn", 1, 1)
			if code != http.StatusOK || w.State != api.InstanceStopped || w.ExitCode == nil || *w.ExitCode != 137 {
				t.Fatalf("stop of the adopted instance: %d %+v %s", code, w, msg)
			}
			if took := time.Since(began); took < 300*time.Millisecond {
				t.Errorf("killed after %s, before the stop grace", took)
			}
			if groupExists(resp.PID) {
				t.Error("the group outlived the stop")
			}
			waitFor(t, 5*time.Second, "the escaped process killed", func() bool {
				for _, pid := range withArg(m) {
					reapIfChild(pid)
				}
				return len(withArg(m)) == 0
			})
		})
	}
}

// Instances that ended before the restart show in the next agent's
// GET /status as they were: the leader may not have seen their end yet.
func TestEndedInstancesShowAfterARestart(t *testing.T) {
	dir := t.TempDir()
	a := newTestAgent(t, withDataDir(dir))
	batch := sh("batch", "echo done", 1, 1)
	batch.Spec = api.Spec{Type: api.TypeBatch}
	a.mustStart(batch)
	a.waitState("batch", api.InstanceExited)
	if code, _ := a.start(api.StartRequest{ID: "bad", Command: "/nonexistent/x", Generation: 2, Term: 1}); code != http.StatusUnprocessableEntity {
		t.Fatalf("start of a missing command: %d", code)
	}
	before := a.status().Workloads
	a.detach(10 * time.Second)
	b := newTestAgent(t, withDataDir(dir))
	after := b.status().Workloads
	if len(after) != 2 {
		t.Fatalf("after the restart: %+v, want the 2 ended instances", after)
	}
	for i, w := range before {
		got := after[i]
		if got.ID != w.ID || got.State != w.State || got.Generation != w.Generation || got.PID != w.PID || got.Error != w.Error ||
			derefOr(got.ExitCode, -1) != derefOr(w.ExitCode, -1) || got.ExitedAt == nil || !got.ExitedAt.Equal(*w.ExitedAt) {
			t.Errorf("%s after the restart: %+v, want %+v", w.ID, got, w)
		}
	}
	if b.logs("batch") != "done\n" {
		t.Errorf("output of the ended batch: %q", b.logs("batch"))
	}
	// The same generation is still answered from what it was.
	if code, resp := b.start(batch); code != http.StatusOK || resp.State != api.InstanceExited {
		t.Errorf("repeated start of the completed batch: %d %+v", code, resp)
	}
}

package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/micro-orchestrator/mo/agent/cgroup"
	"github.com/micro-orchestrator/mo/api"
)

// testAllocEnv makes the test binary a workload that allocates (and
// touches) that many MiB, then sleeps.
const testAllocEnv = "MO_TEST_ALLOC_MB"

var allocated [][]byte

func testAllocate(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 2
	}
	for range n {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		allocated = append(allocated, b)
	}
	fmt.Println("allocated", n, "MiB")
	time.Sleep(time.Minute)
	return 0
}

// requireCgroups skips a test on a machine where the agent runs without
// cgroups (no root, none mounted).
func requireCgroups(t *testing.T, ta *testAgent) {
	t.Helper()
	if ta.cgroups == nil {
		t.Skip("cgroups are unavailable here")
	}
}

// withArg lists the live processes with arg among their argv.
func withArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && slices.Contains(strings.Split(string(b), "\x00"), arg) && running(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// killWithArg kills what a failed test leaves.
func killWithArg(arg string) {
	for _, pid := range withArg(arg) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		reapIfChild(pid)
	}
}

// marker is an argument of sleep that no other process has.
func marker(n int) string {
	return strconv.Itoa(4000+n) + ".000" + strconv.Itoa(os.Getpid())
}

func resources(r api.Resources) api.Spec { return api.Spec{Resources: &r} }

// memory_mb 64 for a process that allocates 300 MB: the instance ends as
// a failure, with reason "OOM killed".
func TestOOMKilledInstanceSaysSo(t *testing.T) {
	ta := newTestAgent(t)
	requireCgroups(t, ta)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ta.mustStart(api.StartRequest{ID: "hog", Command: exe, Env: map[string]string{testAllocEnv: "300"}, Generation: 1, Term: 1,
		Spec: resources(api.Resources{MemoryMB: 64})})
	w := ta.waitState("hog", api.InstanceExited)
	if w.Reason != reasonOOMKilled {
		t.Errorf("reason %q, want %q", w.Reason, reasonOOMKilled)
	}
	if !strings.HasPrefix(w.Error, reasonOOMKilled) || !strings.Contains(w.Error, "64 MB") {
		t.Errorf("error %q, want the OOM kill and the limit", w.Error)
	}
	if w.ExitCode == nil || *w.ExitCode != 128+int(syscall.SIGKILL) {
		t.Errorf("exit code %v, want 137", w.ExitCode)
	}
	t.Logf("OOM result: state=%s exit_code=%d reason=%q error=%q", w.State, derefOr(w.ExitCode, -1), w.Reason, w.Error)
	// An instance that stays under its limit ends without a reason.
	ta.mustStart(api.StartRequest{ID: "fit", Command: exe, Env: map[string]string{testAllocEnv: "8"}, Generation: 1, Term: 1,
		Spec: resources(api.Resources{MemoryMB: 64})})
	waitFor(t, 10*time.Second, "the small allocation", func() bool {
		b, _ := ta.sup.Logs("fit", 5)
		return strings.Contains(string(b), "allocated 8 MiB")
	})
	if code, w, msg := ta.stop("fit", 1, 1); code != http.StatusOK || w.Reason != "" {
		t.Fatalf("stop: %d %+v %s", code, w, msg)
	}
}

// A child that leaves the session and clears its environment is still in
// the instance's cgroup: a stop leaves nothing behind, without a scan of
// /proc.
func TestStopLeavesNoProcessBehind(t *testing.T) {
	ta := newTestAgent(t)
	requireCgroups(t, ta)
	m := marker(1)
	t.Cleanup(func() { killWithArg(m) })
	scans := procScans.Load()
	ta.mustStart(sh("leaky", `setsid sh -c "exec env -i sleep `+m+`" & sleep 1000`, 1, 1))
	waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withArg(m)) == 1 })
	if code, _, msg := ta.stop("leaky", 1, 1); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, msg)
	}
	if left := withArg(m); len(left) > 0 {
		t.Fatalf("escaped process %v outlived the stop", left)
	}
	if n := procScans.Load() - scans; n != 0 {
		t.Errorf("stopping with cgroups scanned /proc %d times", n)
	}
	if names, _ := ta.cgroups.Groups(); len(names) != 0 {
		t.Errorf("cgroups left after the stop: %v", names)
	}
}

// The same on cgroup v2 (the unified hierarchy of a hybrid machine, where
// there are no controllers but clone into a cgroup and cgroup.kill work).
func TestStopLeavesNoProcessBehindV2(t *testing.T) {
	mount := "/sys/fs/cgroup/unified"
	var st unix.Statfs_t
	if unix.Statfs(cgroup.DefaultMountpoint, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		mount = cgroup.DefaultMountpoint
	} else if unix.Statfs(mount, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("no cgroup v2 hierarchy")
	}
	ta := newTestAgent(t, func(_ *Config, o *agentOptions) { o.cgroups = &cgroup.Options{Version: 2, Mountpoint: mount} })
	requireCgroups(t, ta)
	m := marker(2)
	t.Cleanup(func() { killWithArg(m) })
	resp := ta.mustStart(sh("leaky", `cat /proc/$$/cgroup; setsid sh -c "exec env -i sleep `+m+`" & sleep 1000`, 1, 1))
	waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withArg(m)) == 1 })
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(resp.PID) + "/cgroup")
	if !strings.Contains(string(b), "0::/"+cgroup.Root+"/") || !strings.HasSuffix(strings.TrimSpace(string(b)), "/leaky@1") {
		t.Errorf("instance not in its v2 cgroup:\n%s", b)
	}
	if code, _, msg := ta.stop("leaky", 1, 1); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, msg)
	}
	if left := withArg(m); len(left) > 0 {
		t.Fatalf("escaped process %v outlived the stop", left)
	}
}

// An instance that ignores SIGTERM is killed, cgroup and all, after the
// grace.
func TestStopAfterGraceKillsTheCgroup(t *testing.T) {
	ta := newTestAgent(t, withGrace(200*time.Millisecond))
	requireCgroups(t, ta)
	m := marker(3)
	t.Cleanup(func() { killWithArg(m) })
	ta.mustStart(sh("stubborn", `trap "" TERM; setsid sh -c "trap '' TERM; exec env -i sleep `+m+`" & while :; do sleep 1; done`, 1, 1))
	waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withArg(m)) == 1 })
	code, w, msg := ta.stop("stubborn", 1, 1)
	if code != http.StatusOK || w.State != api.InstanceStopped {
		t.Fatalf("DELETE: %d %+v %s", code, w, msg)
	}
	if left := withArg(m); len(left) > 0 {
		t.Fatalf("escaped process %v outlived the stop", left)
	}
}

func TestPidsLimitIsEnforced(t *testing.T) {
	ta := newTestAgent(t)
	requireCgroups(t, ta)
	if !slices.Contains(ta.cgroups.Controllers(), "pids") {
		t.Skip("no pids controller")
	}
	ta.mustStart(api.StartRequest{ID: "forky", Command: "sh", Args: []string{"-c", `for i in $(seq 30); do sleep 1000 & done; echo all-forked; sleep 1000`},
		Generation: 1, Term: 1, Spec: resources(api.Resources{Pids: 8})})
	var out string
	waitFor(t, 10*time.Second, "a fork to fail or all to succeed", func() bool {
		b, _ := ta.sup.Logs("forky", 20)
		out = strings.ToLower(string(b))
		return strings.Contains(out, "fork")
	})
	if strings.Contains(out, "all-forked") {
		t.Fatalf("30 forks succeeded under pids 8:\n%s", out)
	}
	in, _, _ := ta.sup.get("forky")
	if pids, _ := in.cg.Pids(); len(pids) > 8 {
		t.Fatalf("%d processes in an instance limited to 8", len(pids))
	}
}

// CPU and memory limits reach the instance's cgroup.
func TestResourcesBecomeLimits(t *testing.T) {
	ta := newTestAgent(t)
	requireCgroups(t, ta)
	ta.mustStart(api.StartRequest{ID: "lim", Command: "sleep", Args: []string{"1000"}, Generation: 4, Term: 1,
		Spec: resources(api.Resources{CPUMillicores: 250, MemoryMB: 32, Pids: 16})})
	in, _, _ := ta.sup.get("lim")
	if in.cg == nil || in.cg.Name() != "lim@4" || in.cg.Limits() != (cgroup.Limits{CPUMillicores: 250, MemoryMB: 32, Pids: 16}) {
		t.Fatalf("cgroup %+v", in.cg)
	}
	if ta.cgroups.Version() == 1 {
		for _, d := range ta.cgroups.Dirs() {
			for file, want := range map[string]string{"cpu.cfs_quota_us": "25000", "cpu.shares": "256", "memory.limit_in_bytes": strconv.Itoa(32 << 20), "pids.max": "16"} {
				if b, err := os.ReadFile(d + "/lim@4/" + file); err == nil && strings.TrimSpace(string(b)) != want {
					t.Errorf("%s = %s, want %s", file, b, want)
				}
			}
		}
	}
}

// newLoggedAgent is newTestAgent with the log in a buffer.
func newLoggedAgent(t *testing.T, cfg Config, opts agentOptions) (*testAgent, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	a, err := newAgent(cfg.withDefaults(), hclog.New(&hclog.LoggerOptions{Name: "agent", Output: buf}), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.close(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		t.Logf("agent log:\n%s", buf.String())
	})
	return &testAgent{agent: a, t: t, url: srv.URL}, buf
}

// Without cgroups the agent says so once, and finds escaped processes by
// their tag (a scan of /proc), as before.
func TestWithoutCgroupsTheTagStillWorks(t *testing.T) {
	cfg := Config{ID: "n1", DataDir: t.TempDir(), Token: testToken, StopGrace: 2 * time.Second}
	ta, log := newLoggedAgent(t, cfg, agentOptions{cgroupsOff: "forced off by the test"})
	if ta.cgroups != nil {
		t.Fatal("cgroups on although forced off")
	}
	m := marker(4)
	t.Cleanup(func() { killWithArg(m) })
	scans := procScans.Load()
	ta.mustStart(sh("esc", `setsid sleep `+m+` & sleep 1000`, 1, 1))
	waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withArg(m)) == 1 })
	if code, _, msg := ta.stop("esc", 1, 1); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, msg)
	}
	waitFor(t, 5*time.Second, "the escaped sleep killed", func() bool {
		for _, pid := range withArg(m) {
			reapIfChild(pid)
		}
		return len(withArg(m)) == 0
	})
	if procScans.Load() == scans {
		t.Error("the fallback did not scan /proc for the tag")
	}
	if n := strings.Count(log.String(), "cgroups unavailable"); n != 1 || !strings.Contains(log.String(), "forced off by the test") {
		t.Errorf("%d lines say cgroups are unavailable, want 1 with the reason:\n%s", n, log.String())
	}
	if _, err := os.Stat("/sys/fs/cgroup/freezer/" + cgroup.Root + "/" + cgroupName(cfg)); err == nil {
		t.Error("a cgroup was created although cgroups are off")
	}
}

// A new run of the agent kills and removes the cgroups that the previous
// run on its data dir left, processes that left the session included.
func TestCgroupsOfThePreviousRunAreKilled(t *testing.T) {
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: "n1", DataDir: t.TempDir(), Token: testToken, StopGrace: 2 * time.Second}
	prev, err := cgroup.Open(cgroup.Options{Name: cgroupName(cfg)})
	if err != nil {
		t.Skipf("cgroups are unavailable here: %v", err)
	}
	t.Cleanup(func() { _, _, _ = prev.KillAll(5 * time.Second); _ = prev.Remove() })
	g, err := prev.Create("old@1", cgroup.Limits{MemoryMB: 16})
	if err != nil {
		t.Fatal(err)
	}
	m := marker(5)
	t.Cleanup(func() { killWithArg(m) })
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	pid, err := g.ForkExec("/bin/sh", []string{"sh", "-c", `setsid sh -c "exec env -i sleep ` + m + `" & exec sleep 1000`},
		&syscall.ProcAttr{Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}, Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL); reapIfChild(pid) })
	waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withArg(m)) == 1 })

	ta, log := newLoggedAgent(t, cfg, agentOptions{})
	requireCgroups(t, ta)
	if left := withArg(m); len(left) > 0 || running(pid) {
		t.Fatalf("processes of the previous run survived the new start: %v, leader running %v", left, running(pid))
	}
	if names, _ := ta.cgroups.Groups(); len(names) != 0 {
		t.Fatalf("cgroups of the previous run left: %v", names)
	}
	if !strings.Contains(log.String(), "killed the workload cgroups left by the previous run") {
		t.Errorf("no word of the leftovers in the log:\n%s", log.String())
	}
}

// With cgroups the guard kills the cgroup of an exclusive instance when the
// lease lapses, even a process that cleared its environment.
func TestGuardKillsExclusiveCgroupsWhenTheLeaseLapses(t *testing.T) {
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	mgr, err := cgroup.Open(cgroup.Options{Name: "guard-test-" + strconv.Itoa(os.Getpid())})
	if err != nil {
		t.Skipf("cgroups are unavailable here: %v", err)
	}
	t.Cleanup(func() { _, _, _ = mgr.KillAll(5 * time.Second); _ = mgr.Remove() })
	const tag = instanceEnv + "=run:excl:7"
	g, err := mgr.Create(tagGroupName(tag), cgroup.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m := marker(6)
	t.Cleanup(func() { killWithArg(m) })
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	pid, err := g.ForkExec("/bin/sh", []string{"sh", "-c", `setsid sh -c "exec env -i sleep ` + m + `" & exec sleep 1000`},
		&syscall.ProcAttr{Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}, Sys: &syscall.SysProcAttr{Setpgid: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL); reapIfChild(pid) })
	waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withArg(m)) == 1 })

	gd, err := startGuard(null.Fd(), "run", mgr, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gd.close(context.Background()) })
	gd.announceExclusive(tag)
	gd.setLease(boottime() + 200*time.Millisecond)
	waitFor(t, 5*time.Second, "the exclusive cgroup killed", func() bool {
		reapIfChild(pid)
		return len(withArg(m)) == 0 && !running(pid)
	})
}

func TestTagGroupName(t *testing.T) {
	for tag, want := range map[string]string{
		instanceEnv + "=abc:w_1.x-y:12": "w_1.x-y@12",
		instanceEnv + "=abc:w:0":        "w@0",
		instanceEnv + "=abc:w":          "",
		instanceEnv + "=abc:w:x":        "",
		"OTHER=abc:w:1":                 "",
	} {
		if got := tagGroupName(tag); got != want {
			t.Errorf("tagGroupName(%q) = %q, want %q", tag, got, want)
		}
	}
}

// A killed agent binary takes along, through its guard, even a workload
// process that left its session and cleared its environment (only its
// cgroup knows it), and the guard removes the agent's cgroups.
func TestBinaryKilledAgentsCgroupsDieWithIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	cfg := Config{ID: "n-cg", DataDir: t.TempDir()}
	probe, err := cgroup.Open(cgroup.Options{Name: cgroupName(cfg)})
	if err != nil {
		t.Skipf("cgroups are unavailable here: %v", err)
	}
	t.Cleanup(func() { _, _, _ = probe.KillAll(5 * time.Second); _ = probe.Remove() })
	m := marker(7)
	t.Cleanup(func() { killWithArg(m) })

	p := startAgentProc(t, "--id", cfg.ID, "--data", cfg.DataDir, "--insecure")
	p.waitReady(t, "")
	code, out := p.call(t, http.MethodPost, "/workloads", "", api.StartRequest{ID: "leaky", Command: "sh",
		Args: []string{"-c", `setsid sh -c "exec env -i sleep ` + m + `" & sleep 1000`}, Generation: 1, Term: 1})
	if code != http.StatusCreated {
		t.Fatalf("start: %d %s", code, out)
	}
	waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withArg(m)) == 1 })
	if names, _ := probe.Groups(); !slices.Equal(names, []string{"leaky@1"}) {
		t.Fatalf("agent's cgroups: %v, want leaky@1", names)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	waitFor(t, 10*time.Second, "the escaped sleep to die with the agent", func() bool { return len(withArg(m)) == 0 })
	waitFor(t, 10*time.Second, "the guard to remove the agent's cgroups", func() bool {
		for _, d := range probe.Dirs() {
			if _, err := os.Stat(d); err == nil {
				return false
			}
		}
		return true
	})
}

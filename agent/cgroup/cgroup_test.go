package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// allocEnv makes the test binary a helper that allocates (and touches)
// that many MiB, then sleeps.
const allocEnv = "MO_CGROUP_TEST_ALLOC_MB"

func TestMain(m *testing.M) {
	if IsShim() {
		os.Exit(RunShim())
	}
	if mb := os.Getenv(allocEnv); mb != "" {
		os.Exit(allocate(mb))
	}
	// The test process adopts the orphans of the groups it kills.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	os.Exit(m.Run())
}

var sink [][]byte

func allocate(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 2
	}
	for range n {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		sink = append(sink, b)
	}
	fmt.Println("allocated", n, "MiB")
	time.Sleep(time.Minute)
	return 0
}

var names sync.Map

// openTest opens a parent group of its own for the test and removes it,
// with everything below it, when the test ends, whatever happened.
func openTest(t testing.TB, o Options) *Manager {
	t.Helper()
	if os.Geteuid() != 0 || cgroups.Mode() == cgroups.Unavailable {
		t.Skip("needs root and a cgroup file system")
	}
	o.Name = fmt.Sprintf("test-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
	if _, dup := names.LoadOrStore(o.Name, true); dup {
		o.Name += "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	m, err := Open(o)
	if err != nil {
		t.Fatalf("open cgroups: %v", err)
	}
	t.Cleanup(func() {
		if _, _, err := m.KillAll(5 * time.Second); err != nil {
			t.Errorf("kill all: %v", err)
		}
		if err := m.Remove(); err != nil {
			t.Errorf("remove: %v", err)
		}
		for _, d := range m.Dirs() {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("cgroup %s left behind", d)
			}
		}
		reapAll()
	})
	return m
}

// reapAll reaps every ended child of the test process.
func reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// proc is a process started in a group, with its output.
type proc struct {
	pid  int
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{} // reaped
	eof  chan struct{} // all output read
	ws   syscall.WaitStatus
}

// wait waits until the process is reaped and its output read.
func (p *proc) wait() {
	<-p.done
	<-p.eof
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs argv in g (argv[0] looked up as an absolute path by the
// caller), leading its own process group; it is killed and reaped when the
// test ends.
func start(t testing.TB, g *Group, env []string, argv ...string) *proc {
	t.Helper()
	p, err := startErr(g, env, argv...)
	if err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
	})
	return p
}

func startErr(g *Group, env []string, argv ...string) (*proc, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	pid, err := g.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{null.Fd(), w.Fd(), w.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	p := &proc{pid: pid, done: make(chan struct{}), eof: make(chan struct{})}
	go func() {
		defer close(p.eof)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				r.Close()
				return
			}
		}
	}()
	go func() {
		defer close(p.done)
		for {
			if _, err := syscall.Wait4(pid, &p.ws, 0, nil); !errors.Is(err, syscall.EINTR) {
				return
			}
		}
	}()
	return p, nil
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func pidsOf(t testing.TB, g *Group) []int {
	t.Helper()
	pids, err := g.Pids()
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && len(b) > i+2 && b[i+2] != 'Z'
}

// withMarker lists the live processes whose argv holds marker.
func withMarker(marker string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && slices.Contains(strings.Split(string(b), "\x00"), marker) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func sh() string {
	p, err := filepathLook("sh")
	if err != nil {
		panic(err)
	}
	return p
}

func filepathLook(name string) (string, error) {
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not in PATH", name)
}

func TestDetectsTheVersion(t *testing.T) {
	m := openTest(t, Options{})
	want := 1
	if cgroups.Mode() == cgroups.Unified {
		want = 2
	}
	if m.Version() != want {
		t.Fatalf("version %d in mode %v, want %d", m.Version(), cgroups.Mode(), want)
	}
	t.Logf("%s; controllers %v, missing %v", m, m.Controllers(), m.Missing())
}

// The command is in its group from its first instruction: its own first
// action is to print its cgroups. Its argv and environment are its own.
func TestCommandStartsInsideItsGroup(t *testing.T) {
	m := openTest(t, Options{})
	g, err := m.Create("w@1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, g, []string{"A=1", ShimEnv + "=1", "B=2"}, sh(), "-c", `cat /proc/$$/cgroup; echo "argv0=$0 args=$1 env=$(env | grep -c -e '^A=1$' -e '^B=2$') shim=${`+ShimEnv+`-none}"`, "me", "x")
	p.wait()
	out := p.output()
	if !strings.Contains(out, "argv0=me args=x env=2 shim=none") {
		t.Errorf("argv or environment not the command's own:\n%s", out)
	}
	for _, sub := range groupSubsystems(m) {
		if !containsLine(out, sub, "/"+Root+"/"+m.Options().Name+"/w@1") {
			t.Errorf("not in the group for %s:\n%s", sub, out)
		}
	}
}

// groupSubsystems are the /proc/<pid>/cgroup controller fields the groups
// use ("" for v2).
func groupSubsystems(m *Manager) []string {
	if m.Version() == 2 {
		return []string{""}
	}
	var out []string
	for _, s := range m.impl.(*v1).subs {
		out = append(out, string(s))
	}
	return out
}

// containsLine reports whether a /proc/<pid>/cgroup text has a line for
// controller sub whose path ends in suffix.
func containsLine(text, sub, suffix string) bool {
	for _, l := range strings.Split(text, "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && slices.Contains(strings.Split(f[1], ","), sub) && strings.HasSuffix(f[2], suffix) {
			return true
		}
	}
	return false
}

// A process that leaves its session and clears its environment is still in
// the group, and dies with it.
func TestKillTakesProcessesThatLeftTheSession(t *testing.T) {
	m := openTest(t, Options{})
	g, err := m.Create("esc@1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	marker := "4321.000" + strconv.Itoa(os.Getpid())
	start(t, g, nil, sh(), "-c", `setsid sh -c "exec env -i sleep `+marker+`" & exec sleep 1000`)
	waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withMarker(marker)) == 1 })
	if n := len(pidsOf(t, g)); n != 2 {
		t.Fatalf("%d processes in the group, want 2", n)
	}
	n, err := g.Kill(5 * time.Second)
	if err != nil || n != 2 {
		t.Fatalf("kill: %d, %v; want 2 killed", n, err)
	}
	if left := withMarker(marker); len(left) > 0 {
		t.Fatalf("escaped sleep %v survived the kill", left)
	}
	if err := g.Delete(); err != nil {
		t.Fatal(err)
	}
	if n, err := g.Kill(time.Second); n != 0 || err != nil {
		t.Fatalf("kill after delete: %d, %v", n, err)
	}
}

func TestLimitsAreWritten(t *testing.T) {
	m := openTest(t, Options{})
	if m.Version() != 1 {
		t.Skip("reads v1 files")
	}
	g, err := m.Create("lim@3", Limits{CPUMillicores: 500, MemoryMB: 64, Pids: 20})
	if err != nil {
		t.Fatal(err)
	}
	v := m.impl.(*v1)
	read := func(sub, file string) string {
		b, err := os.ReadFile(filepath.Join(v.dirOf[sub], g.Name(), file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	for _, c := range []struct{ sub, file, want string }{
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.shares", "512"},
		{"pids", "pids.max", "20"},
	} {
		if got := read(c.sub, c.file); got != c.want {
			t.Errorf("%s = %s, want %s", c.file, got, c.want)
		}
	}
	if v.memsw {
		if got := read("memory", "memory.memsw.limit_in_bytes"); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.memsw.limit_in_bytes = %s, want the memory limit", got)
		}
	}
}

// 64 MiB of memory for a process that wants 300: the OOM killer ends it.
func TestMemoryLimitEndsInOOMKill(t *testing.T) {
	m := openTest(t, Options{})
	g, err := m.Create("oom@1", Limits{MemoryMB: 64})
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	p := start(t, g, []string{allocEnv + "=300"}, exe)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the allocator still runs; output:\n%s", p.output())
	}
	if !p.ws.Signaled() || p.ws.Signal() != syscall.SIGKILL {
		t.Fatalf("allocator ended with %v, want SIGKILL; output:\n%s", p.ws, p.output())
	}
	if !g.OOMKilled() {
		t.Fatal("the OOM kill was not detected")
	}
}

func TestPidsLimitIsEnforced(t *testing.T) {
	m := openTest(t, Options{})
	if !slices.Contains(m.Controllers(), "pids") {
		t.Skip("no pids controller")
	}
	g, err := m.Create("pids@1", Limits{Pids: 8})
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, g, nil, sh(), "-c", `for i in $(seq 20); do sleep 1000 & done; echo all-forked; exec sleep 1000`)
	forkFailed := func() bool {
		out := strings.ToLower(p.output())
		return strings.Contains(out, "fork") && !strings.Contains(out, "all-forked")
	}
	waitFor(t, 10*time.Second, "a fork to fail", func() bool { return forkFailed() || strings.Contains(p.output(), "all-forked") })
	if !forkFailed() {
		t.Fatalf("20 forks in a group limited to 8:\n%s", p.output())
	}
	if n := len(pidsOf(t, g)); n > 8 {
		t.Fatalf("%d processes in a group limited to 8", n)
	}
}

// An exec failure comes back as syscall.ForkExec's errno; nothing is left.
func TestExecErrorsAreReported(t *testing.T) {
	m := openTest(t, Options{})
	g, err := m.Create("bad@1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	garbage := filepath.Join(dir, "garbage")
	_ = os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	_ = os.WriteFile(garbage, []byte("not a program"), 0o755)
	for path, want := range map[string]syscall.Errno{noexec: syscall.EACCES, garbage: syscall.ENOEXEC, filepath.Join(dir, "missing"): syscall.ENOENT} {
		_, err := startErr(g, nil, path)
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", filepath.Base(path), err, want)
		}
	}
	if n := len(pidsOf(t, g)); n != 0 {
		t.Fatalf("%d processes left after failed starts", n)
	}
}

// What a previous run left is killed and removed.
func TestKillAllRemovesEveryGroup(t *testing.T) {
	m := openTest(t, Options{})
	for i := range 3 {
		g, err := m.Create("left@"+strconv.Itoa(i), Limits{MemoryMB: 32})
		if err != nil {
			t.Fatal(err)
		}
		start(t, g, nil, sh(), "-c", "sleep 1000 & exec sleep 1000")
	}
	again, err := Open(m.Options())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the processes", func() bool {
		n := 0
		for i := range 3 {
			g, err := again.Load("left@" + strconv.Itoa(i))
			if err != nil {
				return false
			}
			n += len(pidsOf(t, g))
		}
		return n == 6
	})
	groups, procs, err := again.KillAll(5 * time.Second)
	if err != nil || groups != 3 || procs != 6 {
		t.Fatalf("kill all: %d groups, %d processes, %v; want 3, 6", groups, procs, err)
	}
	if names, _ := again.Groups(); len(names) != 0 {
		t.Fatalf("groups left: %v", names)
	}
}

// v2 on the unified hierarchy of a hybrid machine (it has no controllers,
// but membership, clone into a cgroup and cgroup.kill work as on v2).
func unifiedOrSkip(t *testing.T) string {
	const mount = "/sys/fs/cgroup/unified"
	var st unix.Statfs_t
	if cgroups.Mode() == cgroups.Unified {
		return DefaultMountpoint
	}
	if unix.Statfs(mount, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("no cgroup v2 hierarchy")
	}
	return mount
}

func TestV2ClonesIntoTheGroupAndKillsIt(t *testing.T) {
	m := openTest(t, Options{Version: 2, Mountpoint: unifiedOrSkip(t)})
	for _, shim := range []bool{false, true} {
		m.noClone.Store(shim)
		name := "v2@" + strconv.FormatBool(shim)
		g, err := m.Create(name, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		marker := "4322.000" + strconv.Itoa(os.Getpid())
		p := start(t, g, nil, sh(), "-c", `cat /proc/$$/cgroup; setsid sh -c "exec env -i sleep `+marker+`" & exec sleep 1000`)
		waitFor(t, 5*time.Second, "the escaped sleep", func() bool { return len(withMarker(marker)) == 1 })
		waitFor(t, 5*time.Second, "the shell's cgroup", func() bool { return strings.Contains(p.output(), "0::") })
		if !containsLine(p.output(), "", "/"+Root+"/"+m.Options().Name+"/"+name) {
			t.Errorf("shim=%v: not in the group:\n%s", shim, p.output())
		}
		if n, err := g.Kill(5 * time.Second); err != nil || n != 2 {
			t.Fatalf("shim=%v: kill: %d, %v", shim, n, err)
		}
		if left := withMarker(marker); len(left) > 0 {
			t.Fatalf("shim=%v: %v survived", shim, left)
		}
		if err := g.Delete(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBadNames(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b", "a\x00"} {
		if _, err := Open(Options{Name: n}); err == nil {
			t.Errorf("Open accepted name %q", n)
		}
	}
}

// BenchmarkKill50 measures the kill of a group of 50 processes, until the
// group is empty (setup excluded).
func BenchmarkKill50(b *testing.B) {
	m := openTest(b, Options{})
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		g, err := m.Create("bench@"+strconv.Itoa(i), Limits{})
		if err != nil {
			b.Fatal(err)
		}
		p := start(b, g, nil, sh(), "-c", `for i in $(seq 49); do sleep 1000 & done; exec sleep 1000`)
		waitFor(b, 30*time.Second, "50 processes", func() bool { return len(pidsOf(b, g)) == 50 })
		b.StartTimer()
		t0 := time.Now()
		n, err := g.Kill(10 * time.Second)
		total += time.Since(t0)
		b.StopTimer()
		if err != nil || n != 50 {
			b.Fatalf("kill: %d, %v", n, err)
		}
		<-p.done
		if err := g.Delete(); err != nil {
			b.Fatal(err)
		}
		reapAll()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/kill")
	b.Logf("cgroup v%d: killing 50 processes took %.2f ms on average over %d runs", m.Version(), float64(total.Microseconds())/1000/float64(b.N), b.N)
}

// BenchmarkStart measures a start in a group until the command runs
// (exec'd), through the shim and, for comparison, a plain fork and exec.
func BenchmarkStart(b *testing.B) {
	m := openTest(b, Options{})
	g, err := m.Create("start@1", Limits{})
	if err != nil {
		b.Fatal(err)
	}
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	attr := &syscall.ProcAttr{Files: []uintptr{null.Fd(), null.Fd(), null.Fd()}}
	run := func(b *testing.B, fork func() (int, error)) {
		for b.Loop() {
			pid, err := fork()
			if err != nil {
				b.Fatal(err)
			}
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, 0, nil)
		}
	}
	b.Run("shim", func(b *testing.B) {
		run(b, func() (int, error) { return g.forkShim("/bin/true", []string{"true"}, attr) })
	})
	b.Run("plain", func(b *testing.B) {
		run(b, func() (int, error) { return syscall.ForkExec("/bin/true", []string{"true"}, attr) })
	})
}

// The workload's environment takes effect in the command only: the dynamic
// loader of the shim (the agent's binary) never sees its LD_PRELOAD, which
// would run the workload's code before the shim is in the group.
func TestShimRunsWithoutTheWorkloadsEnvironment(t *testing.T) {
	m := openTest(t, Options{})
	g, err := m.Create("env@1", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := startErr(g, []string{"LD_PRELOAD=/nonexistent/mo-test-preload.so"}, sh(), "-c", "exit 0")
	if err != nil {
		t.Fatal(err)
	}
	p.wait()
	if n := strings.Count(p.output(), "mo-test-preload.so"); n != 1 {
		t.Fatalf("the loader complained %d times, want once (the command's, not the shim's):\n%s", n, p.output())
	}
}

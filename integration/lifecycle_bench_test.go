package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// Measurements of the workload lifecycle on agents that run alone (no
// replicas): the workloads are started through each agent's own API, as a
// leader would. MO_BENCH=1 runs them; each prints a table.

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat.
const clockTicks = 100

// benchEnvInt reads a positive integer from the environment, or def.
func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// startLoneAgent starts an agent that registers nowhere and waits until its
// API answers.
func (tc *testCluster) startLoneAgent(t testing.TB, id string, flags ...string) *agentProc {
	t.Helper()
	a := &agentProc{id: id, listen: addr(freePort(t))}
	a.data = filepath.Join(tc.dir, id)
	tc.agents = append(tc.agents, a)
	tc.startAgent(a, flags...)
	return a
}

// waitAgentsUp waits until every agent answers GET /status.
func (tc *testCluster) waitAgentsUp(t testing.TB, as []*agentProc, d time.Duration) {
	t.Helper()
	for _, a := range as {
		waitFor(t, d, "agent "+a.id+" answering", func() bool {
			_, err := tc.agentStatus(a)
			return err == nil
		})
	}
}

// startOnAgent starts generation 1 of a workload on an agent, as a leader of
// term 1 would, and returns its pid.
func (tc *testCluster) startOnAgent(a *agentProc, id, command string, args []string, spec api.Spec) (int, error) {
	spec.Normalize()
	req := api.StartRequest{ID: id, Name: "bench", Command: command, Args: args, Generation: 1, Term: 1, Spec: spec}
	code, b, err := tc.c.call("POST", a.listen, "/workloads", req)
	if err != nil {
		return 0, err
	}
	if code != http.StatusCreated && code != http.StatusOK {
		return 0, fmt.Errorf("start %s on %s: %d %s", id, a.id, code, b)
	}
	var resp api.StartResponse
	if err := jsonUnmarshal(b, &resp); err != nil {
		return 0, err
	}
	return resp.PID, nil
}

// procTimes are a process's CPU times from /proc/<pid>/stat, in ticks: its
// own, and those of its children it has reaped.
type procTimes struct{ self, children int64 }

func readProcTimes(pid int) (procTimes, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procTimes{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procTimes{}, fmt.Errorf("pid %d: unreadable stat", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is the state, field 3
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("pid %d: short stat", pid)
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	return procTimes{self: n(11) + n(12), children: n(13) + n(14)}, nil // utime stime cutime cstime
}

// startTime is a process's start time in ticks after boot (field 22), to
// tell it from a later process with the same pid; 0 if it is gone.
func startTime(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseInt(f[19], 10, 64)
	return v
}

// childrenOf lists the processes whose parent is one of pids.
func childrenOf(pids map[int]bool) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			if pp, _ := strconv.Atoi(f[1]); pids[pp] {
				out = append(out, pid)
			}
		}
	}
	return out
}

// reapLater kills, when the test ends, each of pids that is still the
// process it was now (same start time).
func reapLater(t testing.TB, pids []int) {
	born := map[int]int64{}
	for _, p := range pids {
		born[p] = startTime(p)
	}
	t.Cleanup(func() {
		for p, st := range born {
			if st != 0 && startTime(p) == st {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
}

// B1: what health checks cost an agent. 100 workloads without a check, with
// an exec check (true) every second, and with an http check every second;
// over 30 s, the CPU of the agent itself, of the children it reaped (the
// exec checks' processes) and of the workloads themselves (the HTTP servers
// answering), in percent of one core.
func TestBenchLifecycleCheckCPU(t *testing.T) {
	requireBench(t)
	n := benchEnvInt("MO_BENCH_WORKLOADS", 100)
	window := time.Duration(benchEnvInt("MO_BENCH_SECONDS", 30)) * time.Second
	type row struct {
		mode                          string
		agent, reaped, workloads, all float64
		checks                        float64
	}
	var rows []row
	modes := []struct {
		name    string
		command string
		args    []string
		spec    api.Spec
	}{
		{"no checks (sleep)", "sleep", []string{"100000"}, api.Spec{}},
		{"exec check `true` every 1s (sleep)", "sleep", []string{"100000"},
			api.Spec{Check: &api.Check{Type: api.CheckExec, Command: []string{"true"}, Interval: api.Duration(time.Second), Grace: api.Duration(time.Second)}}},
		{"http check every 1s (testprog http)", testprog(), []string{"http"},
			api.Spec{Ports: []string{"http"}, Check: &api.Check{Type: api.CheckHTTP, Port: "http", Interval: api.Duration(time.Second), Grace: api.Duration(time.Second)}}},
	}
	for mi, m := range modes {
		tc := newTestCluster(t)
		a := tc.startLoneAgent(t, fmt.Sprintf("cpu%d", mi), "--log-level", "info")
		tc.waitAgentsUp(t, []*agentProc{a}, 20*time.Second)
		pids := make([]int, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, 8)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				pid, err := tc.startOnAgent(a, fmt.Sprintf("w%d-%d", mi, i), m.command, m.args, m.spec)
				pids[i] = pid
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		reapLater(t, pids)
		want := api.HealthUnknown
		if m.spec.Check != nil {
			want = api.HealthHealthy
		}
		waitFor(t, 60*time.Second, fmt.Sprintf("%d workloads running, %s", n, want), func() bool {
			st, err := tc.agentStatus(a)
			if err != nil {
				return false
			}
			k := 0
			for _, w := range st.Workloads {
				if w.State == api.InstanceRunning && w.Health == want {
					k++
				}
			}
			return k == n
		})
		time.Sleep(2 * time.Second) // the start-up burst is over
		wl := func() int64 {
			var sum int64
			for _, p := range pids {
				if pt, err := readProcTimes(p); err == nil {
					sum += pt.self + pt.children
				}
			}
			return sum
		}
		checks := func() float64 {
			mm := tc.scrape(a.listen)
			return mm[`mo_agent_health_checks_total{result="ok"}`] + mm[`mo_agent_health_checks_total{result="fail"}`]
		}
		t0, err := readProcTimes(a.proc.pid())
		if err != nil {
			t.Fatal(err)
		}
		w0, c0, start := wl(), checks(), time.Now()
		time.Sleep(window)
		t1, err := readProcTimes(a.proc.pid())
		if err != nil {
			t.Fatal(err)
		}
		w1, c1, el := wl(), checks(), time.Since(start).Seconds()
		pct := func(ticks int64) float64 { return float64(ticks) / clockTicks / el * 100 }
		r := row{mode: m.name, agent: pct(t1.self - t0.self), reaped: pct(t1.children - t0.children), workloads: pct(w1 - w0), checks: (c1 - c0) / el}
		r.all = r.agent + r.reaped + r.workloads
		rows = append(rows, r)
		t.Logf("%s: agent %.1f%%, reaped %.1f%%, workloads %.1f%%, %.0f checks/s", r.mode, r.agent, r.reaped, r.workloads, r.checks)
		a.proc.kill()
		waitFor(t, 30*time.Second, "the workloads gone with their agent", func() bool {
			for _, p := range pids {
				if pidAlive(p) {
					return false
				}
			}
			return true
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "B1: agent CPU with %d workloads over %s, in %% of one core (USER_HZ ticks of /proc/<pid>/stat)\n", n, window)
	line := func(cols ...any) { fmt.Fprintf(&b, "%-38s %12s %16s %12s %8s %9s\n", cols...) }
	line("mode", "agent", "reaped children", "workloads", "total", "checks/s")
	line("", "utime+stime", "cutime+cstime", "utime+stime", "", "")
	for _, r := range rows {
		line(r.mode, fmt.Sprintf("%.1f%%", r.agent), fmt.Sprintf("%.1f%%", r.reaped), fmt.Sprintf("%.1f%%", r.workloads),
			fmt.Sprintf("%.1f%%", r.all), fmt.Sprintf("%.0f", r.checks))
	}
	fmt.Printf("\n%s", b.String())
}

// B2: many agents killed at once, each running one workload: how long until
// every workload process is gone, and what that does to the machine's load.
// MO_BENCH_AGENTS sets the number of agents (default 200).
func TestBenchLifecycleMassAgentKill(t *testing.T) {
	requireBench(t)
	n := benchEnvInt("MO_BENCH_AGENTS", 200)
	window := time.Duration(benchEnvInt("MO_BENCH_SECONDS", 30)) * time.Second
	tc := newTestCluster(t)
	marker := fmt.Sprintf("100000.%d%06d", os.Getpid()%1000, time.Now().UnixNano()%1000000)
	agents := make([]*agentProc, n)
	began := time.Now()
	for i := range n {
		agents[i] = tc.startLoneAgent(t, fmt.Sprintf("m%d", i), "--log-level", "warn")
	}
	tc.waitAgentsUp(t, agents, 120*time.Second)
	upIn := time.Since(began)
	pids := make([]int, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make(chan error, n)
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			pid, err := tc.startOnAgent(a, fmt.Sprintf("k%d", i), "sleep", []string{marker}, api.Spec{})
			pids[i] = pid
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	reapLater(t, pids)
	agentPIDs := map[int]bool{}
	for _, a := range agents {
		agentPIDs[a.proc.pid()] = true
	}
	guards := childrenOf(agentPIDs) // the workloads and each agent's guard
	reapLater(t, guards)
	waitFor(t, 30*time.Second, "every workload running", func() bool { return len(pidsWithArg(marker)) == n })
	time.Sleep(3 * time.Second) // let the start-up load settle a little
	loadBefore, _ := loadavg()

	// Kill them all at once: SIGKILL to every agent, back to back.
	killStart := time.Now()
	for _, a := range agents {
		_ = syscall.Kill(a.proc.pid(), syscall.SIGKILL)
	}
	killSpread := time.Since(killStart)
	type sample struct {
		at       time.Duration
		live     int
		load1    float64
		runnable int
	}
	var samples []sample
	gone := time.Duration(-1)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		at := time.Since(killStart)
		live := 0
		for _, p := range pids {
			if pidAlive(p) {
				live++
			}
		}
		if live == 0 {
			live = len(pidsWithArg(marker)) // nothing else with the marker either
		}
		l1, run := loadavg()
		samples = append(samples, sample{at: at, live: live, load1: l1, runnable: run})
		if live == 0 && gone < 0 {
			gone = at
		}
		if at >= window {
			break
		}
		<-tick.C
	}
	peak, peakAt, peakRun := 0.0, time.Duration(0), 0
	for _, s := range samples {
		if s.load1 > peak {
			peak, peakAt = s.load1, s.at
		}
		peakRun = max(peakRun, s.runnable)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "B2: %d agents (no replicas), one workload each, all SIGKILLed at once (sampled every 200ms for %s)\n", n, window)
	fmt.Fprintf(&b, "  agents up in                      %s\n", upIn.Round(time.Millisecond))
	fmt.Fprintf(&b, "  SIGKILL sent to all within        %s\n", killSpread.Round(time.Microsecond))
	if gone >= 0 {
		fmt.Fprintf(&b, "  every workload process gone after %s\n", gone.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "  workload processes still alive after %s: %d\n", window, samples[len(samples)-1].live)
	}
	fmt.Fprintf(&b, "  1-min load average before kill    %.2f\n", loadBefore)
	fmt.Fprintf(&b, "  peak 1-min load average           %.2f (at %s)\n", peak, peakAt.Round(time.Second))
	fmt.Fprintf(&b, "  peak runnable tasks (loadavg 4th) %d\n", peakRun)
	fmt.Fprintf(&b, "  live workload processes:")
	for _, s := range samples {
		if s.at < 3*time.Second || s.live > 0 {
			fmt.Fprintf(&b, " %s:%d", s.at.Round(100*time.Millisecond), s.live)
		}
		if s.live == 0 {
			break
		}
	}
	fmt.Fprintln(&b)
	fmt.Printf("\n%s", b.String())
	if gone < 0 {
		t.Errorf("workload processes outlived their agents by more than %s", window)
	}
	// Nothing of it may be left: the guards exit once their agent is gone.
	waitFor(t, 30*time.Second, "every guard gone", func() bool {
		for _, p := range guards {
			if pidAlive(p) {
				return false
			}
		}
		return true
	})
}

// loadavg is the 1-minute load average and the number of tasks runnable
// now, from /proc/loadavg.
func loadavg() (float64, int) {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0, 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	run, _, _ := strings.Cut(f[3], "/")
	n, _ := strconv.Atoi(run)
	return v, n
}

// B3: an HTTP server SIGSTOPped at a random point of its check cycle
// (interval 1s, timeout 500ms, 2 failures, restart delay 200ms): the time
// until its agent runs a new process, and until that one is healthy.
func TestBenchLifecycleHangToRestart(t *testing.T) {
	requireBench(t)
	trials := benchEnvInt("MO_BENCH_TRIALS", 10)
	tc := newTestCluster(t)
	a := tc.startLoneAgent(t, "hang", "--log-level", "info")
	tc.waitAgentsUp(t, []*agentProc{a}, 20*time.Second)
	spec := api.Spec{Ports: []string{"http"}, Check: &api.Check{Type: api.CheckHTTP, Port: "http", Interval: api.Duration(time.Second),
		Timeout: api.Duration(500 * time.Millisecond), Failures: 2, Grace: api.Duration(time.Second)},
		Restart: &api.RestartPolicy{Attempts: 1000, Delay: api.Duration(200 * time.Millisecond), MaxDelay: api.Duration(200 * time.Millisecond)}}
	if _, err := tc.startOnAgent(a, "hang", testprog(), []string{"http"}, spec); err != nil {
		t.Fatal(err)
	}
	var toRestart, toHealthy []time.Duration
	for i := range trials {
		var cur api.AgentWorkload
		waitFor(t, 20*time.Second, "the server healthy", func() bool {
			var ok bool
			cur, ok = tc.lcInstance(a, "hang")
			return ok && cur.State == api.InstanceRunning && cur.Health == api.HealthHealthy
		})
		reapLater(t, []int{cur.PID})
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second)))) // a random point of the cycle
		if err := syscall.Kill(cur.PID, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		hung := time.Now()
		var next api.AgentWorkload
		waitFor(t, 20*time.Second, "a new pid", func() bool {
			var ok bool
			next, ok = tc.lcInstance(a, "hang")
			return ok && next.State == api.InstanceRunning && next.PID > 0 && next.PID != cur.PID
		})
		toRestart = append(toRestart, time.Since(hung))
		reapLater(t, []int{next.PID})
		waitFor(t, 20*time.Second, "the new pid healthy", func() bool {
			in, ok := tc.lcInstance(a, "hang")
			return ok && in.PID == next.PID && in.Health == api.HealthHealthy
		})
		toHealthy = append(toHealthy, time.Since(hung))
		t.Logf("trial %d: new pid after %s, healthy after %s", i+1, toRestart[i].Round(time.Millisecond), toHealthy[i].Round(time.Millisecond))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "B3: HTTP server SIGSTOPped at a random point of its check cycle (check every 1s, timeout 500ms, 2 failures; restart delay 200ms), %d trials\n", trials)
	fmt.Fprintf(&b, "%-28s %9s %9s %9s %9s\n", "measurement", "min", "median", "p99", "max")
	for _, r := range []struct {
		name string
		ds   []time.Duration
	}{{"hang → new pid (restarted)", toRestart}, {"hang → healthy again", toHealthy}} {
		fmt.Fprintf(&b, "%-28s %9s %9s %9s %9s\n", r.name, roundDur(percentile(r.ds, 0)), roundDur(percentile(r.ds, 50)),
			roundDur(percentile(r.ds, 99)), roundDur(percentile(r.ds, 100)))
	}
	fmt.Printf("\n%s", b.String())
}

package health

// Simulated scale measurements: 1,000 agents are 1,000 HTTP servers on
// 127.0.0.1 listeners inside one test process, answering GET /status from a
// precomputed body. They measure the monitor and the HTTP stack, not real
// agents or a real network.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

const simToken = "simulated-token"

// farm is a set of simulated agents, one HTTP server and listener each.
type farm struct {
	servers []*http.Server
	addrs   []string
}

func simNodeID(i int) string { return fmt.Sprintf("a%04d", i) }

func startFarm(tb testing.TB, n int) *farm {
	tb.Helper()
	f := &farm{}
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.close()
			tb.Fatalf("listener %d: %v (ulimit -n?)", i, err)
		}
		body := []byte(fmt.Sprintf(`{"node_id":%q,"cpu_usage":12.5,"memory_usage":40.1,"workloads":[]}`, simNodeID(i)))
		mux := http.NewServeMux()
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})
		srv := &http.Server{Handler: api.RequireToken(simToken, mux), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		f.servers = append(f.servers, srv)
		f.addrs = append(f.addrs, ln.Addr().String())
	}
	return f
}

// kill closes agent i's listener and connections, as the death of its process would.
func (f *farm) kill(i int) { _ = f.servers[i].Close() }

func (f *farm) close() {
	for _, s := range f.servers {
		_ = s.Close()
	}
}

// simStore is an FSM-backed store holding the simulated agents.
func simStore(tb testing.TB, addrs []string) *fakeStore {
	s := &fakeStore{f: fsm.New(), hidden: map[string]bool{}}
	for i, a := range addrs {
		s.mustApply(tb, &fsm.RegisterNode{At: time.Now(), ID: simNodeID(i), Address: a})
	}
	return s
}

func startMonitor(tb testing.TB, m *Monitor) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	eventually(tb, "Run started", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.run != nil
	})
	return func() { cancel(); <-done }
}

// BenchmarkSimulatedRound1000Agents times one full round (CheckNow) over
// 1,000 simulated agents with the real HTTPChecker and default settings.
func BenchmarkSimulatedRound1000Agents(b *testing.B) {
	const n = 1000
	f := startFarm(b, n)
	defer f.close()
	store := simStore(b, f.addrs)
	m := New(Config{Interval: time.Hour, Logger: hclog.NewNullLogger()}, store, NewHTTPChecker(simToken, DefaultTimeout, nil))
	stop := startMonitor(b, m)
	defer stop()

	began := time.Now()
	if err := m.CheckNow(context.Background()); err != nil { // the first round dials every agent
		b.Fatal(err)
	}
	cold := time.Since(began)
	b.ResetTimer()
	for b.Loop() {
		if err := m.CheckNow(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cold.Microseconds())/1000, "cold-round-ms")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "round-ms")
	for _, h := range m.Snapshot() {
		if h.Status != api.NodeOnline || !h.Answered {
			b.Fatalf("node %s: %+v", h.NodeID, h)
		}
	}
}

// TestSimulatedAgentFarmProcess is the child process of TestSimulatedScale:
// it serves the simulated agents and obeys "kill I" and "quit" on stdin.
func TestSimulatedAgentFarmProcess(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HEALTH_AGENT_FARM"))
	if n == 0 {
		t.Skip("child process of TestSimulatedScale")
	}
	f := startFarm(t, n)
	defer f.close()
	for i, a := range f.addrs {
		fmt.Printf("addr %d %s\n", i, a)
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 2 && fields[0] == "kill":
			i, _ := strconv.Atoi(fields[1])
			f.kill(i)
			fmt.Printf("killed %d\n", i)
		case len(fields) == 1 && fields[0] == "quit":
			fmt.Printf("cpu %f\n", cpuSeconds())
			return
		}
	}
}

// cpuSeconds is this process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	if i < 0 {
		i = 0
	}
	return sorted[i]
}

// TestSimulatedScale runs the monitor with the default settings for 60 s
// against 1,000 simulated agents served by a child process (so that this
// process's CPU is the monitor's), kills 20 of them at random times, and
// reports round time, CPU and detection latency. HEALTH_SCALE_BENCH=1 runs it.
func TestSimulatedScale(t *testing.T) {
	if os.Getenv("HEALTH_SCALE_BENCH") != "1" {
		t.Skip("set HEALTH_SCALE_BENCH=1 to run the 60 s simulated scale test")
	}
	const (
		agents   = 1000
		kills    = 20
		duration = 60 * time.Second
	)

	child := exec.Command(os.Args[0], "-test.run=^TestSimulatedAgentFarmProcess$", "-test.count=1")
	child.Env = append(os.Environ(), "HEALTH_AGENT_FARM="+strconv.Itoa(agents), "HEALTH_SCALE_BENCH=")
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	lines := make(chan string, 2*agents)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("agent farm exited")
			}
			return l
		case <-time.After(30 * time.Second):
			t.Fatal("agent farm silent")
		}
		return ""
	}
	addrs := make([]string, agents)
	for l := next(); l != "ready"; l = next() {
		var i int
		var a string
		if _, err := fmt.Sscanf(l, "addr %d %s", &i, &a); err == nil && i < agents {
			addrs[i] = a
		}
	}

	store := simStore(t, addrs)
	var mu sync.Mutex
	killedAt := map[string]time.Time{}
	detected := map[string]time.Duration{}
	var falsePositives []string
	var rounds []time.Duration
	m := New(Config{
		Logger: hclog.New(&hclog.LoggerOptions{Name: "health", Level: hclog.Warn, Output: os.Stderr}),
		OnChange: func(changes []fsm.NodeStatusChange) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range changes {
				k, killed := killedAt[c.ID]
				switch {
				case !killed:
					falsePositives = append(falsePositives, c.ID+"="+c.Status)
				case c.Status == api.NodeOffline:
					if _, seen := detected[c.ID]; !seen {
						detected[c.ID] = now.Sub(k)
					}
				}
			}
		},
	}, store, NewHTTPChecker(simToken, DefaultTimeout, nil))
	m.roundHook = func(d time.Duration) {
		mu.Lock()
		rounds = append(rounds, d)
		mu.Unlock()
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	victims := rng.Perm(agents)[:kills]
	offsets := make([]time.Duration, kills)
	for i := range offsets { // spread over the run, leaving time to detect the last one
		offsets[i] = 2*time.Second + time.Duration(rng.Int64N(int64(duration-10*time.Second)))
	}
	sort.Slice(offsets, func(i, j int) bool { return offsets[i] < offsets[j] })

	cpu0, wall0 := cpuSeconds(), time.Now()
	stop := startMonitor(t, m)
	for k, v := range victims {
		time.Sleep(time.Until(wall0.Add(offsets[k])))
		id := simNodeID(v)
		mu.Lock()
		killedAt[id] = time.Now()
		mu.Unlock()
		if _, err := fmt.Fprintf(stdin, "kill %d\n", v); err != nil {
			t.Fatal(err)
		}
		if l := next(); l != fmt.Sprintf("killed %d", v) {
			t.Fatalf("farm answered %q", l)
		}
	}
	time.Sleep(time.Until(wall0.Add(duration)))
	cpu1, wall1 := cpuSeconds(), time.Now()
	eventually(t, "every kill detected", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(detected) == kills
	})
	stop()
	if _, err := io.WriteString(stdin, "quit\n"); err != nil {
		t.Fatal(err)
	}
	farmCPU := -1.0
	for l := next(); ; l = next() {
		if _, err := fmt.Sscanf(l, "cpu %g", &farmCPU); err == nil {
			break
		}
	}

	mu.Lock()
	defer mu.Unlock()
	lat := make([]time.Duration, 0, kills)
	for _, d := range detected {
		lat = append(lat, d)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	rs := append([]time.Duration(nil), rounds...)
	sort.Slice(rs, func(i, j int) bool { return rs[i] < rs[j] })
	wall := wall1.Sub(wall0).Seconds()
	monCPU := cpu1 - cpu0
	t.Logf("SIMULATED: %d agents on 127.0.0.1 listeners in a child process, defaults (interval %v, timeout %v, threshold %d, confirm %v, concurrency %d)",
		agents, DefaultInterval, DefaultTimeout, DefaultFailureThreshold, DefaultConfirmDelay, DefaultConcurrency)
	t.Logf("nproc=%d GOMAXPROCS=%d wall=%.1fs", runtime.NumCPU(), runtime.GOMAXPROCS(0), wall)
	t.Logf("full rounds: %d, time p50=%v p99=%v max=%v (first round, with dials: %v)",
		len(rs), percentile(rs, 0.5), percentile(rs, 0.99), rs[len(rs)-1], rounds[0])
	t.Logf("monitor process CPU: %.2fs over %.1fs = %.2f%% of one core (%.4f%% per node); agent farm CPU: %.2fs",
		monCPU, wall, 100*monCPU/wall, 100*monCPU/wall/agents, farmCPU)
	t.Logf("detection latency (kill -> offline committed), %d kills: p50=%v p99=%v max=%v min=%v",
		len(lat), percentile(lat, 0.5), percentile(lat, 0.99), lat[len(lat)-1], lat[0])
	if len(falsePositives) > 0 {
		t.Errorf("status changes of live agents: %v", falsePositives)
	}
	if p99 := percentile(lat, 0.99); p99 > 5*time.Second {
		t.Errorf("detection p99 %v over 5s", p99)
	}
}

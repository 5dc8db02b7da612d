package agent

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// discardWriter is a reusable http.ResponseWriter that keeps nothing.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// BenchmarkStatus measures GET /status with 20 running workloads: the
// handler alone, and the whole stack (token check, router, handler) without
// the network.
func BenchmarkStatus(b *testing.B) {
	ta := newTestAgent(b)
	for i := range 20 {
		w, _, err := ta.sup.Start(api.StartRequest{ID: "w" + strconv.Itoa(i), Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 1})
		if err != nil {
			b.Fatal(err)
		}
		pid := w.PID
		b.Cleanup(func() { killGroup(b, pid) })
	}
	ta.agent.status.setUsage(12.5, 40.2)
	if n := len(ta.agent.status.Status().Workloads); n != 20 {
		b.Fatalf("%d workloads in the status", n)
	}
	req, _ := http.NewRequest(http.MethodGet, "/status", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	srv := &server{sup: ta.sup, status: ta.agent.status, log: ta.log}

	b.Run("handler", func(b *testing.B) {
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			srv.handleStatus(w, req, nil)
		}
		b.ReportMetric(float64(w.n/b.N), "bytes/op")
	})
	b.Run("token+router+handler", func(b *testing.B) {
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			ta.handler.ServeHTTP(w, req)
		}
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	})
}

// TestIdleCPU runs the real agent with 20 sleep workloads for 60 s, with a
// health check (GET /status) every 3 s as the leader would, and prints the
// agent's CPU use in percent of one core. Opt in with AGENT_IDLE_BENCH=1.
func TestIdleCPU(t *testing.T) {
	if os.Getenv("AGENT_IDLE_BENCH") != "1" {
		t.Skip("set AGENT_IDLE_BENCH=1 to run the 60 s idle CPU measurement")
	}
	window := 60 * time.Second
	if v := os.Getenv("AGENT_IDLE_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("AGENT_IDLE_SECONDS=%q", v)
		}
		window = time.Duration(n) * time.Second
	}
	p := startAgentProc(t, "--id", "idle", "--token", testToken, "--restart-grace", "0") // its SIGTERM at the end stops the workloads
	p.waitReady(t, testToken)
	for i := range 20 {
		p.startSleep(t, testToken, "w"+strconv.Itoa(i))
	}
	time.Sleep(2 * time.Second) // let start-up work settle before measuring

	pid := p.cmd.Process.Pid
	before := cpuTicks(t, pid)
	begin := time.Now()
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	for time.Since(begin) < window {
		<-tick.C
		if code, _ := p.call(t, http.MethodGet, "/status", testToken, nil); code != http.StatusOK {
			t.Fatalf("health check: %d", code)
		}
	}
	elapsed := time.Since(begin)
	used := cpuTicks(t, pid) - before
	const userHZ = 100 // USER_HZ, the unit of utime and stime, on every mainstream Linux
	pct := float64(used) / userHZ / elapsed.Seconds() * 100
	var rss string
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "Threads:") {
				rss += strings.Join(strings.Fields(l), " ") + " "
			}
		}
	}
	t.Logf("agent idle with 20 workloads: %.3f%% of one core over %s (%d ticks of 10ms); %s", pct, elapsed.Round(time.Second), used, rss)
	fmt.Printf("IDLE_CPU_PERCENT=%.3f window=%s %s\n", pct, elapsed.Round(time.Second), rss)

	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if p.err != nil {
		t.Errorf("agent exit after SIGTERM: %v", p.err)
	}
}

// cpuTicks is utime+stime of pid, in clock ticks.
func cpuTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	utime, _ := strconv.ParseUint(f[11], 10, 64)
	stime, _ := strconv.ParseUint(f[12], 10, 64)
	return utime + stime
}

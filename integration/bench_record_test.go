package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/benchrow"
)

// benchRecord is one line of the file named by MO_BENCH_OUT, which `make
// bench` (scripts/bench.sh) gathers into bench.json.
type benchRecord = benchrow.Row

var recordMu sync.Mutex

// recordBench appends r as one JSON line to $MO_BENCH_OUT, when set.
func recordBench(t testing.TB, r benchRecord) {
	t.Helper()
	path := os.Getenv("MO_BENCH_OUT")
	if path == "" {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	recordMu.Lock()
	defer recordMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

// benchInt is the integer in env variable name, or def.
func benchInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// recordDurations records a duration row against a p99 bound.
func recordDurations(t testing.TB, name, target string, ds []time.Duration, p99Max time.Duration, note string) {
	p99 := percentile(ds, 99)
	recordBench(t, benchRecord{Name: name, Unit: "ms", Target: target, Median: ms(percentile(ds, 50)),
		P99: ms(p99), N: len(ds), OK: len(ds) > 0 && p99 < p99Max, Note: note})
}

// recordAgentFailover records the agent kill row from the TLS-off trials.
func recordAgentFailover(t testing.TB, rec [2][]time.Duration) {
	recordDurations(t, "agent kill -9 -> its workloads running elsewhere", "p99 < 1s", rec[0], time.Second,
		fmt.Sprintf("TLS off; TLS on median %s", roundDur(percentile(rec[1], 50))))
}

// submitLoad runs clients concurrent submitters against address for window
// and returns the acknowledged submissions, their latencies, the ones not
// acknowledged and the time it took.
func submitLoad(tc *testCluster, address string, clients int, window time.Duration) (int64, []time.Duration, int64, time.Duration) {
	var n, failed atomic.Int64
	var lat []time.Duration
	var mu sync.Mutex
	start := time.Now()
	stop := start.Add(window)
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := tc.newClient(tc.token)
			var mine []time.Duration
			for time.Now().Before(stop) {
				s := time.Now()
				code, _, err := c.call("POST", address, "/workloads", api.SubmitRequest{Name: "load", Command: "true"})
				if err == nil && code == http.StatusCreated {
					n.Add(1)
					mine = append(mine, time.Since(s))
				} else {
					failed.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return n.Load(), lat, failed.Load(), time.Since(start)
}

// preload submits total pending workloads (no agents, so none is placed)
// with parallel submissions of up to 1,000 each.
func preload(t *testing.T, tc *testCluster, address string, total int) {
	t.Helper()
	const per, workers = 1000, 4
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := tc.newClient(tc.token)
			c.http.Timeout = 60 * time.Second
			for n := range jobs {
				code, b, err := c.call("POST", address, "/workloads", api.SubmitRequest{Name: "pre", Command: "true", Count: intp(n)})
				if err != nil || code != http.StatusCreated {
					failed.Add(1)
					t.Logf("preload: %d %s %v", code, b, err)
				}
			}
		}()
	}
	for left := total; left > 0; left -= per {
		jobs <- min(per, left)
	}
	close(jobs)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("preload: %d submissions failed", failed.Load())
	}
}

// Write rate as the state grows: 64 clients through the leader, no agents
// (every workload stays pending), measured at 0, 10,000 and 100,000
// workloads already in the state. Plaintext.
func TestBenchWriteRateVsSize(t *testing.T) {
	requireBench(t)
	tc := newPlainTestCluster(t)
	tc.startReplicas(3)
	clients := benchInt("MO_BENCH_CLIENTS", 64)
	window := time.Duration(benchInt("MO_BENCH_RATE_WINDOW_MS", 3000)) * time.Millisecond
	sizes := []int{0, 10000, 100000}
	var rates []float64
	var total int
	for _, size := range sizes {
		l := tc.leader()
		// The state holds what earlier windows submitted as well.
		if size > total {
			preload(t, tc, l.http, size-total)
			total = size
		}
		acked, lat, failed, took := submitLoad(tc, l.http, clients, window)
		rate := float64(acked) / took.Seconds()
		total += int(acked)
		rates = append(rates, rate)
		fmt.Printf("write rate at %d workloads: %.0f/s (p99 %s, %d failed)\n", size, rate, roundDur(percentile(lat, 99)), failed)
	}
	lo, hi := rates[0], rates[0]
	for _, r := range rates {
		lo, hi = min(lo, r), max(hi, r)
	}
	spread := (hi - lo) / hi
	for i, size := range sizes {
		recordBench(t, benchRecord{Name: fmt.Sprintf("write rate at %d workloads (%d clients, no agents)", size, clients),
			Unit: "/s", Target: "flat within 10%", Median: rates[i], N: 1, OK: spread <= 0.10,
			Note: fmt.Sprintf("spread %.0f%% (max-min)/max, %s window", spread*100, window)})
	}
}

// GET /status on a real agent running about 100 workloads: time per request
// over one kept connection. Plaintext.
func TestBenchAgentStatus(t *testing.T) {
	requireBench(t)
	tc := newPlainTestCluster(t)
	tc.startReplicas(3)
	tc.startAgents(1)
	tc.submitSleepers(100)
	a := tc.agents[0]
	c := tc.newClient(tc.token)
	n := benchInt("MO_BENCH_STATUS_GETS", 2000)
	ds := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		s := time.Now()
		code, _, err := c.call("GET", a.listen, "/status", nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /status: %d %v", code, err)
		}
		ds = append(ds, time.Since(s))
	}
	fmt.Printf("agent GET /status with 100 workloads: median %s, p99 %s over %d\n", roundDur(percentile(ds, 50)), roundDur(percentile(ds, 99)), n)
	recordDurations(t, "agent GET /status, ~100 workloads (real agent)", "report", ds, time.Hour, "client-side round trip over one connection, 127.0.0.1")
}

package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// Bounded state: submit and stop MO_BENCH_GC_WORKLOADS (100,000) workloads
// on a cluster of three replicas without agents, then let the garbage
// collection (--gc-after) remove them, and report, before and after: the
// state size, the time to write it as a snapshot (the FSM snapshot is the
// state-file JSON) and to restore it, and the leader's RSS and Go heap.
func TestBenchBoundedState(t *testing.T) {
	requireBench(t)
	n := benchEnvInt("MO_BENCH_GC_WORKLOADS", 100000)
	// The collection is forced once every stop is in (POST /gc with
	// older_than=0s), so that "before GC" holds them all.
	tc := newTestCluster(t, "--gc-after", "1h")
	tc.startReplicas(3)
	ld := tc.leader()
	pid := ld.proc.pid()
	empty := measureState(t, tc, ld.http, pid)

	// Submit in batches of 1000 (one raft entry each), 8 at a time.
	start := time.Now()
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := 0; i < n; i += api.MaxJobCount {
		count := min(api.MaxJobCount, n-i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := tc.submit(ld.http, api.SubmitRequest{Name: "gc", Command: "sleep", Args: []string{"600"}, Count: &count})
			if err != nil {
				t.Errorf("submit: %v", err)
				return
			}
			mu.Lock()
			ids = append(ids, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	submitted := time.Since(start)
	full := measureState(t, tc, ld.http, pid)

	// Stop every one, 32 at a time.
	start = time.Now()
	var next atomic.Int64
	var failed, retried atomic.Int64
	var lastErr atomic.Value
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				// Under this load a stop may time out or meet a leader
				// that is briefly busy (503, or 502 outcome unknown): a stop
				// is idempotent, so retry it a few times.
				ok := false
				for attempt := 0; attempt < 20 && !ok; attempt++ {
					code, b, err := tc.c.call("DELETE", ld.http, "/workloads/"+ids[i], nil)
					ok = err == nil && code == http.StatusOK
					if !ok {
						retried.Add(1)
						lastErr.Store(fmt.Sprintf("%d %s %v", code, b, err))
						time.Sleep(100 * time.Millisecond)
					}
				}
				if !ok {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	stopped := time.Since(start)
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d stops failed 20 times; the last error: %v", f, lastErr.Load())
	}
	if r := retried.Load(); r > 0 {
		t.Logf("%d stops were retried (the last error: %v)", r, lastErr.Load())
	}
	before := measureState(t, tc, ld.http, pid)

	start = time.Now()
	var res api.GCResponse
	if code, b, err := tc.c.call("POST", ld.http, "/gc?older_than=0s", nil); err != nil || code != http.StatusOK {
		t.Fatalf("POST /gc: %d %s %v", code, b, err)
	} else if err := json.Unmarshal(b, &res); err != nil || res.Workloads != n {
		t.Fatalf("POST /gc removed %+v (%v), want %d workloads", res, err, n)
	}
	collected := time.Since(start)
	after := measureState(t, tc, ld.http, pid)
	// The Go runtime collects at least every 2 minutes and then gives
	// memory back to the system: the settled figures.
	time.Sleep(150 * time.Second)
	settled := measureState(t, tc, ld.http, pid)

	fmt.Printf("\nBounded state: %d workloads submitted in %s (%.0f/s) and stopped in %s (%.0f/s), on 3 replicas without agents; one forced collection (POST /gc?older_than=0s) removed them in %s\n",
		n, submitted.Round(time.Millisecond), float64(n)/submitted.Seconds(), stopped.Round(time.Millisecond), float64(n)/stopped.Seconds(), collected.Round(time.Millisecond))
	fmt.Printf("%-26s %12s %12s %12s %12s %12s\n", "", "state", "snapshot", "restore", "leader RSS", "leader heap")
	for _, row := range []struct {
		name string
		m    stateMeasure
	}{{"empty", empty}, {"100k pending", full}, {"100k stopped, before GC", before}, {"after GC", after}, {"2.5 min after GC", settled}} {
		fmt.Printf("%-26s %12s %12s %12s %12s %12s\n", row.name, mib(row.m.bytes), roundDur(row.m.snapshot), roundDur(row.m.restore), mib(row.m.rss), mib(row.m.heap))
	}
	if after.bytes*10 > before.bytes {
		t.Errorf("the state did not shrink after GC: %d bytes before, %d after", before.bytes, after.bytes)
	}
}

// stateMeasure is one row of the bounded-state table.
type stateMeasure struct {
	bytes, rss, heap  int64
	snapshot, restore time.Duration
}

// measureState fetches the state (GET /state: the snapshot's JSON), times
// its restore (parse) and snapshot (marshal) here, three times each, and
// reads the leader's RSS and Go heap.
func measureState(t *testing.T, tc *testCluster, address string, pid int) stateMeasure {
	t.Helper()
	code, body, err := tc.c.call("GET", address, "/state", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /state: %d %v", code, err)
	}
	m := stateMeasure{bytes: int64(len(body)), snapshot: time.Hour, restore: time.Hour}
	for range 3 {
		t0 := time.Now()
		st, err := fsm.ParseState(body)
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		m.restore = min(m.restore, time.Since(t0))
		t0 = time.Now()
		if _, err := st.Marshal(); err != nil {
			t.Fatal(err)
		}
		m.snapshot = min(m.snapshot, time.Since(t0))
	}
	m.rss = rssOf(pid)
	_, metrics, err := tc.c.call("GET", address, "/metrics", nil)
	if err == nil {
		m.heap = metricValue(metrics, "go_memstats_heap_inuse_bytes")
	}
	return m
}

// rssOf reads VmRSS of a process, in bytes.
func rssOf(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// metricValue is the value of an unlabelled metric in Prometheus text.
func metricValue(text []byte, name string) int64 {
	for _, line := range strings.Split(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}

// mib formats bytes as MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

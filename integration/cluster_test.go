package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func intp(n int) *int { return &n }

// The CLI pointed at each replica in turn submits and lists the same workloads.
func TestCLIOnEveryReplica(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	var all []string
	for _, r := range tc.replicas {
		out, errOut, code := tc.cli("submit", "--addr", r.http, "--name", "via-"+r.id, "--count", "2", "--", "sleep", "600")
		if code != 0 {
			t.Fatalf("submit via %s: exit %d: %s", r.id, code, errOut)
		}
		ids := strings.Fields(out)
		if len(ids) != 2 || !strings.HasPrefix(ids[0], "workload_") {
			t.Fatalf("submit via %s printed %q", r.id, out)
		}
		all = append(all, ids...)
	}
	for _, r := range tc.replicas {
		out, errOut, code := tc.cli("workloads", "--addr", r.http, "--json")
		if code != 0 {
			t.Fatalf("workloads via %s: exit %d: %s", r.id, code, errOut)
		}
		var list api.WorkloadList
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range list.Workloads {
			got = append(got, w.ID)
		}
		sort.Strings(got)
		want := append([]string(nil), all...)
		sort.Strings(want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("workloads via %s = %v, want %v", r.id, got, want)
		}
		// The table form shows them too.
		table, _, _ := tc.cli("workloads", "--addr", r.http)
		for _, id := range all {
			if !strings.Contains(table, id) {
				t.Fatalf("table via %s lacks %s:\n%s", r.id, id, table)
			}
		}
	}
	// workload, stop and cluster answer from a follower.
	f := tc.followers()[0]
	out, _, code := tc.cli("workload", "--addr", f.http, all[0])
	if code != 0 || !strings.Contains(out, all[0]) || !strings.Contains(out, "pending") {
		t.Fatalf("workload via follower: exit %d\n%s", code, out)
	}
	if _, errOut, code := tc.cli("stop", "--addr", f.http, all[0]); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	var w api.Workload
	if err := tc.c.getJSON(f.http, "/workloads/"+all[0], &w); err != nil || w.State != api.StateStopped {
		t.Fatalf("after stop: %+v %v", w, err)
	}
	out, _, code = tc.cli("cluster", "--addr", f.http)
	if code != 0 || strings.Count(out, "follower") != 2 || !strings.Contains(out, "leader") {
		t.Fatalf("cluster via follower: exit %d\n%s", code, out)
	}
	if _, _, code := tc.cli("workload", "--addr", f.http, "workload_0_0"); code != 1 {
		t.Fatalf("unknown workload: exit %d, want 1", code)
	}
	if _, _, code := tc.cli("submit", "--addr", f.http, "--", "sleep", "1"); code != 2 {
		t.Fatalf("submit without --name: exit %d, want 2", code)
	}
	if _, _, code := tc.cli("nosuchcommand"); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
}

// kill -9 of the leader during a stream of concurrent submissions: a new
// leader accepts writes again, and every acknowledged submission is present
// afterwards on all three replicas. Repeated for several kills in a row.
func TestLeaderKillDuringSubmissions(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)

	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			c := newClient(tc.token)
			c.http.Timeout = 3 * time.Second
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := tc.replicas[(g+i)%len(tc.replicas)]
				code, b, err := c.call("POST", r.http, "/workloads", api.SubmitRequest{Name: fmt.Sprintf("g%d-%d", g, i), Command: "true"})
				if err != nil || code != http.StatusCreated {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				var resp api.SubmitResponse
				if json.Unmarshal(b, &resp) == nil {
					mu.Lock()
					for _, id := range resp.IDs {
						acked[id] = true
					}
					mu.Unlock()
				}
			}
		}(g)
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	for kill := 0; kill < 3; kill++ {
		before := count()
		waitFor(t, 20*time.Second, "submissions flowing", func() bool { return count() > before+20 })
		l := tc.leader()
		l.proc.kill()
		killed := time.Now()
		atKill := count()
		waitFor(t, 20*time.Second, "writes accepted by a new leader", func() bool { return count() > atKill+5 })
		t.Logf("kill %d of %s: writes flowing again after %s", kill+1, l.id, time.Since(killed).Round(time.Millisecond))
		tc.startReplica(l)
		tc.waitMembers(3)
	}
	close(stop)
	wg.Wait()

	want := count()
	t.Logf("%d acknowledged submissions", want)
	for _, r := range tc.replicas {
		waitFor(t, 20*time.Second, "replica "+r.id+" to hold every acknowledged workload", func() bool {
			st, err := tc.stateOf(r.http)
			if err != nil {
				return false
			}
			wl, _ := st["workloads"].(map[string]any)
			mu.Lock()
			defer mu.Unlock()
			for id := range acked {
				if _, ok := wl[id]; !ok {
					return false
				}
			}
			return true
		})
	}
}

// Stop all three, start them again on their data dirs: GET /state is the same.
func TestRestartAllKeepsState(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	if _, err := tc.submit(tc.replicas[1].http, api.SubmitRequest{Name: "keep", Command: "sleep", Args: []string{"600"}, Count: intp(5), Env: map[string]string{"A": "1"}}); err != nil {
		t.Fatal(err)
	}
	// With no node the leader records why the workloads wait; let that
	// settle before the state is taken.
	waitFor(t, 20*time.Second, "the wait reasons", func() bool {
		var l api.WorkloadList
		if tc.c.getJSON(tc.leader().http, "/workloads", &l) != nil || len(l.Workloads) != 5 {
			return false
		}
		for _, w := range l.Workloads {
			if w.Reason == "" {
				return false
			}
		}
		return true
	})
	var before []byte
	waitFor(t, 10*time.Second, "state on the leader", func() bool {
		code, b, err := tc.c.call("GET", tc.leader().http, "/state", nil)
		before = b
		return err == nil && code == http.StatusOK
	})
	for _, r := range tc.replicas {
		if err := r.proc.term(15 * time.Second); err != nil {
			t.Fatalf("stopping %s: %v", r.id, err)
		}
	}
	// The leader wrote the state file on clean shutdown, mode 0600.
	found := false
	for _, r := range tc.replicas {
		fi, err := os.Stat(filepath.Join(r.data, "orchestrator_state.json"))
		if err == nil {
			found = true
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("state file mode %v, want 0600", fi.Mode().Perm())
			}
		}
		di, err := os.Stat(r.data)
		if err != nil || di.Mode().Perm() != 0o700 {
			t.Fatalf("data dir %s mode %v (%v), want 0700", r.data, di.Mode().Perm(), err)
		}
	}
	if !found {
		t.Fatal("no state file written on clean shutdown")
	}
	for _, r := range tc.replicas {
		tc.startReplica(r) // neither --bootstrap nor --join
	}
	tc.waitMembers(3)
	var after []byte
	waitFor(t, 20*time.Second, "the same state after the restart", func() bool {
		code, b, err := tc.c.call("GET", tc.replicas[2].http, "/state", nil)
		after = b
		return err == nil && code == http.StatusOK && bytes.Equal(b, before)
	})
	_ = after
}

// remove of a dead replica and join of a fresh one leaves a working cluster.
func TestRemoveDeadAndJoinFresh(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	dead := tc.followers()[0]
	dead.proc.kill()
	l := tc.leader()
	code, b, err := tc.c.call("POST", tc.followers()[0].http, "/cluster/remove", api.RemoveRequest{ID: dead.id})
	if err != nil || code != http.StatusOK {
		t.Fatalf("remove: %d %s %v", code, b, err)
	}
	if code, _, _ := tc.c.call("POST", l.http, "/cluster/remove", api.RemoveRequest{ID: "nope"}); code != http.StatusNotFound {
		t.Fatalf("remove of an unknown replica: %d, want 404", code)
	}
	st, _ := tc.status(l.http)
	if len(st.Replicas) != 2 {
		t.Fatalf("after remove: %+v", st.Replicas)
	}
	fresh := &replica{id: "s4", http: addr(freePort(t)), raft: addr(freePort(t)), data: filepath.Join(tc.dir, "s4")}
	var live []string
	for _, r := range tc.replicas {
		if r != dead {
			live = append(live, r.http)
		}
	}
	tc.replicas = append(tc.replicas, fresh)
	tc.startReplica(fresh, "--join", strings.Join(live, ","))
	tc.waitMembers(3)
	// It works: a write through the newcomer lands everywhere, and the
	// cluster survives losing the old leader.
	ids, err := tc.submit(fresh.http, api.SubmitRequest{Name: "after-join", Command: "true"})
	if err != nil {
		t.Fatal(err)
	}
	tc.leader().proc.kill()
	waitFor(t, 20*time.Second, "a write after the leader loss", func() bool {
		for _, r := range tc.replicas {
			if r.proc.alive() {
				if _, err := tc.submit(r.http, api.SubmitRequest{Name: "after-loss", Command: "true"}); err == nil {
					return true
				}
			}
		}
		return false
	})
	var w api.Workload
	if err := tc.c.getJSON(fresh.http, "/workloads/"+ids[0], &w); err != nil {
		t.Fatal(err)
	}
}

// With no leader (a majority down), a replica answers 503 with Retry-After,
// and the CLI says so and exits 1.
func TestNoLeaderAnswers503(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	survivor := tc.followers()[0]
	for _, r := range tc.replicas {
		if r != survivor {
			r.proc.kill()
		}
	}
	waitFor(t, 20*time.Second, "503 with Retry-After from the survivor", func() bool {
		req, _ := http.NewRequest("POST", tc.c.url(survivor.http, "/workloads"), strings.NewReader(`{"name":"x","command":"true"}`))
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := tc.c.http.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var e api.Error
		return resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" &&
			json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != ""
	})
	_, errOut, code := tc.cli("workloads", "--addr", survivor.http, "--timeout", "2s")
	if code != 1 || errOut == "" {
		t.Fatalf("CLI with no leader: exit %d, stderr %q", code, errOut)
	}
}

// SIGTERM on the leader hands leadership over before it shuts down: another
// replica leads at once, without waiting for an election timeout.
func TestLeaderSIGTERMTransfersLeadership(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	l := tc.leader()
	if err := l.proc.term(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(l.proc.log)
	if !strings.Contains(string(b), "transferring leadership") || strings.Contains(string(b), "leadership transfer failed") {
		t.Fatalf("no clean leadership transfer in the log:\n%s", b)
	}
	nl := tc.leader()
	if nl == l {
		t.Fatal("the stopped replica still leads")
	}
	if _, err := tc.submit(nl.http, api.SubmitRequest{Name: "after-transfer", Command: "true"}); err != nil {
		t.Fatal(err)
	}
}

// Three replicas started at the same moment in any order form one cluster:
// the joiners start first and retry until the bootstrapping one is up.
func TestReplicasStartInAnyOrder(t *testing.T) {
	tc := newTestCluster(t)
	for i := 1; i <= 3; i++ {
		tc.replicas = append(tc.replicas, &replica{
			id: fmt.Sprintf("s%d", i), http: addr(freePort(t)), raft: addr(freePort(t)),
			data: filepath.Join(tc.dir, fmt.Sprintf("s%d", i)),
		})
	}
	join := strings.Join(tc.httpAddrs(), ",")
	tc.startReplica(tc.replicas[2], "--join", join)
	tc.startReplica(tc.replicas[1], "--join", join)
	tc.startReplica(tc.replicas[0], "--bootstrap")
	tc.waitMembers(3)
	if _, err := tc.submit(tc.replicas[2].http, api.SubmitRequest{Name: "any-order", Command: "true"}); err != nil {
		t.Fatal(err)
	}
}

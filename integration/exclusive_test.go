package integration

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// instanceSampler counts, every 50 ms, the processes that the test's agents
// started as instances of each watched workload (their children whose
// environment carries the agents' MO_INSTANCE tag), whatever state the agent
// is in, and keeps the peak of each count.
type instanceSampler struct {
	ids  []string
	tc   *testCluster
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak map[string]int
	last map[string]int
	seen map[string][]string // the instances seen together at a peak over 1
}

func startInstanceSampler(tc *testCluster, ids []string) *instanceSampler {
	s := &instanceSampler{ids: ids, tc: tc, stop: make(chan struct{}), done: make(chan struct{}), peak: map[string]int{}, last: map[string]int{}, seen: map[string][]string{}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			counts, who := countTagged(ids, s.agentPIDs())
			s.mu.Lock()
			for id, n := range counts {
				if n > 1 && n > s.peak[id] {
					s.seen[id] = who[id]
				}
				s.peak[id] = max(s.peak[id], n)
			}
			s.last = counts
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// agentPIDs returns the pids of the test's agents.
func (s *instanceSampler) agentPIDs() map[int]bool {
	out := map[int]bool{}
	for _, a := range s.tc.agents {
		if a.proc != nil {
			out[a.proc.pid()] = true
		}
	}
	return out
}

// finish stops sampling and returns the peaks.
func (s *instanceSampler) finish() map[string]int {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// current returns the latest counts.
func (s *instanceSampler) current() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// countTagged counts the live main processes of each workload's instances
// (a child of one of the agents tagged with the workload), and names them
// ("pid tag").
func countTagged(ids []string, agents map[int]bool) (map[string]int, map[string][]string) {
	out := make(map[string]int, len(ids))
	who := map[string][]string{}
	entries, _ := os.ReadDir("/proc")
	tags := map[int]string{}
	full := map[int]string{}
	parents := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil || zombie(stat) {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("MO_INSTANCE=")); ok {
				// run:id:generation
				parts := bytes.Split(v, []byte(":"))
				if len(parts) == 3 {
					tags[pid] = string(parts[1])
					full[pid] = string(v)
					parents[pid] = ppidOf(stat)
				}
			}
		}
	}
	for pid, id := range tags {
		// An instance's main process is a child of its agent's monitor for
		// it, a child of the agent (or, from an older agent, of the agent).
		if agents[parents[pid]] || agents[parentOf(parents[pid])] {
			out[id]++
			who[id] = append(who[id], strconv.Itoa(pid)+" "+full[pid])
		}
	}
	for _, id := range ids {
		out[id] += 0
	}
	return out, who
}

// parentOf returns the parent pid of pid, or 0.
func parentOf(pid int) int {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	return ppidOf(stat)
}

// ppidOf reads the parent pid from /proc/PID/stat.
func ppidOf(stat []byte) int {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(string(f[1]))
	return n
}

// The node of exclusive workloads is paused (SIGSTOP: its sockets stay open,
// it answers nothing): at no 50 ms sample do two instances of one workload
// run, they run elsewhere within 10 s, and once the node is back nothing is
// started there again and each still runs once.
func TestExclusiveWorkloadsOfAPausedNode(t *testing.T) {
	tc := startFullCluster(t)
	out, errOut, code := tc.cli("submit", "--name", "solo", "--count", "6", "--exclusive", "--", "sleep", "600")
	if code != 0 {
		t.Fatalf("submit --exclusive: exit %d: %s", code, errOut)
	}
	ids := strings.Fields(out)
	waitFor(t, 30*time.Second, "every workload running", func() bool { return allRunning(tc.workloads(), ids) })
	for _, w := range tc.workloads() {
		if !w.Exclusive {
			t.Fatalf("workload %s does not show exclusive", w.ID)
		}
	}
	if out, _, _ := tc.cli("workloads"); !strings.Contains(out, "EXCLUSIVE") || strings.Count(out, " yes ") != 6 {
		t.Fatalf("scheduler workloads does not show the exclusive workloads:\n%s", out)
	}
	if out, _, _ := tc.cli("workload", ids[0]); !regexp.MustCompile(`Exclusive:\s+yes`).MatchString(out) {
		t.Fatalf("scheduler workload does not say exclusive:\n%s", out)
	}
	victim := tc.agentByID(nodesOf(tc.workloads(), ids)[ids[0]])
	var moving []string
	for id, n := range nodesOf(tc.workloads(), ids) {
		if n == victim.id {
			moving = append(moving, id)
		}
	}
	s := startInstanceSampler(tc, ids)
	syscall.Kill(victim.proc.pid(), syscall.SIGSTOP)
	paused := time.Now()
	defer syscall.Kill(victim.proc.pid(), syscall.SIGCONT)
	waitFor(t, 20*time.Second, "its exclusive workloads running elsewhere", func() bool { return tc.runningAway(moving, victim.id) })
	moved := time.Since(paused)
	t.Logf("%d exclusive workloads running elsewhere %.2fs after the pause", len(moving), moved.Seconds())
	if moved > 10*time.Second {
		t.Errorf("exclusive workloads took %v to run elsewhere, want under 10 s", moved)
	}
	syscall.Kill(victim.proc.pid(), syscall.SIGCONT)
	waitFor(t, 20*time.Second, "the node online again", func() bool { return tc.countNodes(api.NodeOnline) == 3 })
	waitFor(t, 10*time.Second, "one instance of each", func() bool {
		for _, id := range ids {
			if s.current()[id] != 1 {
				return false
			}
		}
		return true
	})
	// The agent does not start the stopped instances again on its own.
	st, err := tc.agentStatus(victim)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range st.Workloads {
		if w.State == api.InstanceRunning {
			for _, id := range moving {
				if w.ID == id {
					t.Errorf("%s runs on %s again after the pause", id, victim.id)
				}
			}
		}
	}
	for id, n := range s.finish() {
		if n > 1 {
			t.Errorf("exclusive workload %s had %d instances running at once: %v", id, n, s.seen[id])
		}
	}
}

// zombie reports whether /proc/PID/stat shows a zombie.
func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// Leader failovers never let a lease lapse: with the leader killed three
// times in a row, every exclusive instance keeps running with the same pid.
func TestExclusiveWorkloadsKeepRunningThroughLeaderFailovers(t *testing.T) {
	tc := startFullCluster(t)
	var ids []string
	waitFor(t, 20*time.Second, "a submission", func() bool {
		var err error
		ids, err = tc.submit(tc.leader().http, api.SubmitRequest{Name: "solo", Command: "sleep", Args: []string{"600"}, Count: intp(3), Exclusive: true})
		return err == nil
	})
	waitFor(t, 30*time.Second, "every workload running", func() bool { return allRunning(tc.workloads(), ids) })
	pids := map[string]int{}
	for _, w := range tc.workloads() {
		pids[w.ID] = w.PID
	}
	s := startInstanceSampler(tc, ids)
	for round := 0; round < 3; round++ {
		l := tc.leader()
		l.proc.kill()
		killed := time.Now()
		waitFor(t, 20*time.Second, "a new leader", func() bool { return tc.leader() != l })
		t.Logf("round %d: new leader %s after %.2fs", round, tc.leader().id, time.Since(killed).Seconds())
		tc.startReplica(l)
		// Longer than a lease: a lapse would show now.
		deadline := time.Now().Add(8 * time.Second)
		for time.Now().Before(deadline) {
			for _, id := range ids {
				if s.current()[id] != 1 {
					t.Fatalf("round %d: exclusive workload %s has %d instances running", round, id, s.current()[id])
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, w := range tc.workloads() {
		if pids[w.ID] != w.PID || w.State != api.StateRunning {
			t.Errorf("%s: %s pid %d, want still running as pid %d", w.ID, w.State, w.PID, pids[w.ID])
		}
	}
	for id, n := range s.finish() {
		if n != 1 {
			t.Errorf("exclusive workload %s peaked at %d instances, want 1: %v", id, n, s.seen[id])
		}
	}
}

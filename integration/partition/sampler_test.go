package partition

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// labEnv carries the lab's tag in every workload it submits, for the sampler and for cleanup.
const labEnv = "MO_LAB"

// instanceEnv is the agent's RUN:WORKLOAD:GENERATION tag in every workload process's environment.
const instanceEnv = "MO_INSTANCE"

// sampleEvery is the sampler's period.
const sampleEvery = 50 * time.Millisecond

// labProc is one process of a lab workload found in /proc.
type labProc struct {
	pid      int
	tag      string // the MO_LAB value
	instance string // the MO_INSTANCE value
	workload string
	netns    uint64
}

// matchTag reports whether a MO_LAB value belongs to prefix (a run or a lab).
func matchTag(value, prefix string) bool {
	return value == prefix || strings.HasPrefix(value, prefix+"_")
}

// envValue returns the value of NAME in a NUL-separated environment block.
func envValue(env []byte, name string) string {
	key := []byte(name + "=")
	for len(env) > 0 {
		entry := env
		if i := bytes.IndexByte(env, 0); i >= 0 {
			entry, env = env[:i], env[i+1:]
		} else {
			env = nil
		}
		if bytes.HasPrefix(entry, key) {
			return string(entry[len(key):])
		}
	}
	return ""
}

// scanProc lists the live processes, in any namespace, whose MO_LAB belongs to prefix.
func scanProc(prefix string) []labProc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []labProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || len(env) == 0 { // gone, or a zombie
			continue
		}
		tag := envValue(env, labEnv)
		if tag == "" || !matchTag(tag, prefix) {
			continue
		}
		p := labProc{pid: pid, tag: tag, instance: envValue(env, instanceEnv)}
		if i, j := strings.IndexByte(p.instance, ':'), strings.LastIndexByte(p.instance, ':'); i >= 0 && j > i {
			p.workload = p.instance[i+1 : j]
		}
		if link, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err == nil {
			link = strings.TrimSuffix(strings.TrimPrefix(link, "net:["), "]")
			p.netns, _ = strconv.ParseUint(link, 10, 64)
		}
		out = append(out, p)
	}
	return out
}

// killTagged sends SIGKILL to every process of the run or lab prefix.
func killTagged(prefix string) {
	for round := 0; round < 3; round++ {
		ps := scanProc(prefix)
		if len(ps) == 0 {
			return
		}
		for _, p := range ps {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// snapshot is one sample: the instances of each workload that run.
type snapshot struct {
	at    time.Time
	count map[string]int      // workload → distinct running instances
	where map[string][]string // workload → the node of each instance (sorted)
}

// window is what the sampler saw since its last reset.
type window struct {
	start      time.Time
	samples    int
	maxGap     time.Duration
	peak       map[string]int       // workload → most instances at one sample (/proc)
	firstMulti map[string]time.Time // workload → first sample with two or more
	agentPeak  map[string]int       // workload → most running instances summed over the agents' GET /status
	agentPolls int
	agentFails map[string]int // node → failed GET /status
}

// sampler counts every 50 ms the running instances of each workload, from /proc and from the agents.
type sampler struct {
	l    *lab
	quit chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	last     snapshot
	lastAt   time.Time
	w        window
	byInode  map[uint64]string
	stopOnce sync.Once
}

func newWindow() window {
	return window{start: time.Now(), peak: map[string]int{}, firstMulti: map[string]time.Time{},
		agentPeak: map[string]int{}, agentFails: map[string]int{}}
}

// newSampler starts sampling the lab.
func newSampler(l *lab) *sampler {
	s := &sampler{l: l, quit: make(chan struct{}), w: newWindow(), byInode: map[uint64]string{}}
	for _, a := range l.agents {
		s.byInode[a.h.ino] = a.id
	}
	s.sampleProc()
	s.wg.Add(2)
	go s.loop(s.sampleProc)
	go s.loop(s.sampleAgents)
	return s
}

// loop calls f every sampleEvery until stop.
func (s *sampler) loop(f func()) {
	defer s.wg.Done()
	tk := time.NewTicker(sampleEvery)
	defer tk.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-tk.C:
			f()
		}
	}
}

// stop ends sampling.
func (s *sampler) stop() {
	s.stopOnce.Do(func() { close(s.quit); s.wg.Wait() })
}

// sampleProc takes one /proc sample.
func (s *sampler) sampleProc() {
	snap := snapshot{at: time.Now(), count: map[string]int{}, where: map[string][]string{}}
	seen := map[string]bool{}
	for _, p := range scanProc(s.l.tag) {
		if p.workload == "" || seen[p.instance] {
			continue
		}
		seen[p.instance] = true
		snap.count[p.workload]++
		node := s.byInode[p.netns]
		if node == "" {
			node = "?"
		}
		snap.where[p.workload] = append(snap.where[p.workload], node)
	}
	for _, w := range snap.where {
		sort.Strings(w)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastAt.IsZero() && snap.at.Sub(s.lastAt) > s.w.maxGap && !s.lastAt.Before(s.w.start) {
		s.w.maxGap = snap.at.Sub(s.lastAt)
	}
	s.last, s.lastAt = snap, snap.at
	s.w.samples++
	for id, n := range snap.count {
		if n > s.w.peak[id] {
			s.w.peak[id] = n
		}
		if n > 1 {
			if _, ok := s.w.firstMulti[id]; !ok {
				s.w.firstMulti[id] = snap.at
			}
		}
	}
}

// sampleAgents asks every agent for its instances, at once, briefly.
func (s *sampler) sampleAgents() {
	type answer struct {
		node string
		st   api.AgentStatus
		err  error
	}
	ch := make(chan answer, len(s.l.agents))
	for _, a := range s.l.agents {
		go func(a *agentNode) {
			var st api.AgentStatus
			code, b, err := s.l.call(300*time.Millisecond, "GET", a.addr, "/status", nil)
			if err == nil && code != 200 {
				err = fmt.Errorf("status %d", code)
			}
			if err == nil {
				err = json.Unmarshal(b, &st)
			}
			ch <- answer{a.id, st, err}
		}(a)
	}
	count := map[string]int{}
	failed := map[string]int{}
	for range s.l.agents {
		a := <-ch
		if a.err != nil {
			failed[a.node]++
			continue
		}
		for _, w := range a.st.Workloads {
			if w.State == api.InstanceRunning {
				count[w.ID]++
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w.agentPolls++
	for n, k := range failed {
		s.w.agentFails[n] += k
	}
	for id, n := range count {
		if n > s.w.agentPeak[id] {
			s.w.agentPeak[id] = n
		}
	}
}

// latest returns the newest /proc sample.
func (s *sampler) latest() snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// reset starts a new window and returns the old one.
func (s *sampler) reset() window {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.w
	s.w = newWindow()
	return old
}

// report returns the current window's peaks as a table, one workload a line.
func (w window) report(ids []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sampler: %d samples over %s (every %s, longest gap %s), %d agent polls",
		w.samples, time.Since(w.start).Round(time.Millisecond), sampleEvery, w.maxGap.Round(time.Millisecond), w.agentPolls)
	var fails []string
	for n, k := range w.agentFails {
		fails = append(fails, fmt.Sprintf("%s %d", n, k))
	}
	sort.Strings(fails)
	if len(fails) > 0 {
		fmt.Fprintf(&b, "; unanswered agent polls: %s", strings.Join(fails, ", "))
	}
	b.WriteString("\n  workload                       peak(/proc)  peak(agents)")
	for _, id := range ids {
		fmt.Fprintf(&b, "\n  %-30s %11d  %12d", id, w.peak[id], w.agentPeak[id])
	}
	return b.String()
}

// doubles lists the workloads of ids seen with two or more instances in one sample, and when first.
func (w window) doubles(ids []string) []string {
	var out []string
	for _, id := range ids {
		if w.peak[id] > 1 {
			out = append(out, fmt.Sprintf("%s (peak %d, first at +%s)", id, w.peak[id], w.firstMulti[id].Sub(w.start).Round(time.Millisecond)))
		}
	}
	return out
}

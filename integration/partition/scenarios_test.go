package partition

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// ms rounds a duration for the log.
func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// watch records the first change of each workload and node seen in the leader's view.
type watch struct {
	from     time.Time
	mu       sync.Mutex
	changes  []string
	seen     map[string]bool
	offline  map[string]time.Duration
	degraded map[string]time.Duration
}

func newWatch(from time.Time) *watch {
	return &watch{from: from, seen: map[string]bool{}, offline: map[string]time.Duration{}, degraded: map[string]time.Duration{}}
}

// look takes one look at the leader's workloads and nodes.
func (w *watch) look(l *lab, want map[string]api.Workload) {
	now := time.Since(w.from)
	if ws, err := l.workloads(); err == nil {
		cur := map[string]api.Workload{}
		for _, x := range ws {
			cur[x.ID] = x
		}
		for _, d := range stillPlaced(want, cur) {
			w.mu.Lock()
			if !w.seen[d] {
				w.seen[d] = true
				w.changes = append(w.changes, fmt.Sprintf("+%s %s", ms(now), d))
			}
			w.mu.Unlock()
		}
	}
	if ns, err := l.nodes(); err == nil {
		w.mu.Lock()
		for _, n := range ns {
			m := map[string]map[string]time.Duration{api.NodeOffline: w.offline, api.NodeDegraded: w.degraded}[n.Status]
			if _, ok := m[n.ID]; m != nil && !ok {
				m[n.ID] = now
			}
		}
		w.mu.Unlock()
	}
}

// run looks until d has passed since from.
func (w *watch) run(l *lab, want map[string]api.Workload, d time.Duration) {
	for time.Since(w.from) < d {
		w.look(l, want)
		time.Sleep(200 * time.Millisecond)
	}
}

// nodeTimes formats node → time since the watch began.
func nodeTimes(m map[string]time.Duration) string {
	var out []string
	for n, d := range m {
		out = append(out, fmt.Sprintf("%s at +%s", n, ms(d)))
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// allReplicasHold waits until every replica's own copy (a stale read) holds every listed workload.
func (l *lab) allReplicasHold(ids []string, d time.Duration) {
	l.t.Helper()
	var why string
	ok := poll(d, func() bool {
		for _, r := range l.replicas {
			ws, err := l.workloadsVia(r.http, "?stale=true")
			if err != nil {
				why = fmt.Sprintf("%s: %v", r.id, err)
				return false
			}
			have := map[string]bool{}
			for _, w := range ws {
				have[w.ID] = true
			}
			var missing []string
			for _, id := range ids {
				if !have[id] {
					missing = append(missing, id)
				}
			}
			if len(missing) > 0 {
				why = fmt.Sprintf("replica %s lacks %d acknowledged writes: %v", r.id, len(missing), missing)
				return false
			}
		}
		return true
	})
	if !ok {
		l.t.Errorf("after the heal, within %s: %s", d, why)
		return
	}
	l.t.Logf("every replica holds all %d acknowledged writes (stale reads)", len(ids))
}

// Scenario a: an agent cut from all replicas; its work moves, exclusive work never runs twice.
func TestAgentCutFromReplicas(t *testing.T) {
	needLab(t)
	t.Run("default", func(t *testing.T) { agentCutFromReplicas(t, false) })
	t.Run("exclusive", func(t *testing.T) { agentCutFromReplicas(t, true) })
}

func agentCutFromReplicas(t *testing.T, exclusive bool) {
	l := newLab(t, 3)
	ids := l.mustSubmit(l.sleepers("cut-agent", 6, exclusive))
	victim, theirs := l.busiestAgent(ids)
	before := l.placement()
	l.s.reset()
	if err := l.net.isolate(victim.h.role, roles(l.replicas, nil)); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	t.Logf("cut %s from all 3 replicas; it runs %d of the %d workloads: %v", victim.id, len(theirs), len(ids), theirs)

	elsewhere := map[string]time.Duration{} // first sample with an instance on another node
	goneHere := map[string]time.Duration{}  // first sample without one on the victim
	poll(30*time.Second, func() bool {
		snap := l.s.latest()
		for _, id := range theirs {
			here := false
			for _, n := range snap.where[id] {
				if n == victim.id {
					here = true
				} else if _, ok := elsewhere[id]; !ok && n != "?" {
					elsewhere[id] = snap.at.Sub(cutAt)
				}
			}
			if _, ok := goneHere[id]; !ok && !here {
				goneHere[id] = snap.at.Sub(cutAt)
			}
		}
		return len(elsewhere) == len(theirs) && (!exclusive || len(goneHere) == len(theirs))
	})
	cutWin := l.s.reset()
	t.Log(cutWin.report(ids))
	var slowest time.Duration
	for _, id := range theirs {
		d, ok := elsewhere[id]
		if !ok {
			t.Errorf("%s never ran elsewhere within 30s of cutting %s from the replicas", id, victim.id)
			continue
		}
		if d > slowest {
			slowest = d
		}
		stopped := "still running on " + victim.id
		if g, ok := goneHere[id]; ok {
			stopped = fmt.Sprintf("stopped on %s after %s", victim.id, ms(g))
		}
		t.Logf("%s: running elsewhere %s after the cut, %s", id, ms(d), stopped)
	}
	t.Logf("time until the last copy ran elsewhere: %s", ms(slowest))

	var others []string
	for _, id := range ids {
		if before[id].Node != victim.id {
			others = append(others, id)
		}
	}
	for _, id := range others {
		if cutWin.peak[id] > 1 {
			t.Errorf("%s, not on the cut agent, had %d instances at once", id, cutWin.peak[id])
		}
	}
	if exclusive {
		if d := cutWin.doubles(ids); len(d) > 0 {
			t.Errorf("exclusive workloads had two instances at the same moment (/proc, every %s): %s", sampleEvery, strings.Join(d, "; "))
		}
		if slowest > 10*time.Second {
			t.Errorf("an exclusive workload took %s to run elsewhere after the cut; the target is 10s", ms(slowest))
		}
	} else {
		for _, id := range theirs {
			if cutWin.peak[id] > 2 {
				t.Errorf("%s had %d instances at once; a cut leaves at most the old and the new", id, cutWin.peak[id])
			}
		}
	}

	want := l.placement()
	for _, id := range theirs {
		if want[id].Node == victim.id {
			t.Errorf("the leader still places %s on the cut agent %s", id, victim.id)
		}
	}
	l.settle(want)
	healWin := l.s.reset()
	t.Log("after the heal, " + healWin.report(ids))
	if exclusive {
		if d := healWin.doubles(ids); len(d) > 0 {
			t.Errorf("after the heal, exclusive workloads had two instances at the same moment: %s", strings.Join(d, "; "))
		}
	}
}

// Scenario b: the leader cut from its agents only (followers reach them): nothing moves, nothing runs twice.
func TestLeaderCutFromAgents(t *testing.T) {
	needLab(t)
	for _, n := range []int{3, 4, 5} {
		t.Run(fmt.Sprintf("agents=%d", n), func(t *testing.T) { leaderCutFromAgents(t, n) })
	}
}

func leaderCutFromAgents(t *testing.T, n int) {
	const hold = 12 * time.Second
	l := newLab(t, n)
	ids := l.mustSubmit(l.sleepers("leader-cut", 2*n, false))
	ld := l.leader()
	before := l.placement()
	l.s.reset()
	if err := l.net.isolate(ld.h.role, roles(nil, l.agents)); err != nil {
		t.Fatal(err)
	}
	w := newWatch(time.Now())
	t.Logf("cut the leader %s from its %d agents; the followers still reach them; watching for %s", ld.id, n, hold)
	w.run(l, before, hold)
	// Then the leader hands over to a follower that reaches the agents
	// (after 10 s of nodes it hears of but cannot check), and the nodes are
	// online again, still with nothing moved.
	var handed time.Duration
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		w.look(l, before)
		if nl := l.leaderAmong(l.replicas); nl != nil && nl != ld && l.allNodes(api.NodeOnline) {
			handed = time.Since(w.from)
			t.Logf("leadership handed to %s, every node online, %s after the cut", nl.id, ms(handed))
			break
		}
	}
	if handed == 0 {
		t.Errorf("the leader cut from its agents did not hand leadership to a follower that reaches them")
	}
	win := l.s.reset()
	t.Log(win.report(ids))
	t.Logf("nodes the leader marked offline: %s; degraded: %s", nodeTimes(w.offline), nodeTimes(w.degraded))
	if len(w.changes) > 0 {
		t.Errorf("the leader, cut from its %d agents while its followers still reach them, disturbed %d of %d workloads (want 0 moved): %s",
			n, len(w.changes), len(ids), strings.Join(w.changes, "; "))
	}
	if d := win.doubles(ids); len(d) > 0 {
		t.Errorf("%d workloads ran twice at the same moment (want 0 duplicates): %s", len(d), strings.Join(d, "; "))
	}
	l.settle(before)
	if d := l.s.reset().doubles(ids); len(d) > 0 {
		t.Errorf("after the heal, workloads ran twice at the same moment: %s", strings.Join(d, "; "))
	}
}

// minorityWrite is one write sent to a leader cut off from its followers.
type minorityWrite struct {
	name string
	at   time.Duration
	took time.Duration
	code int
	err  error
}

// Scenario c: the leader cut from both followers acknowledges nothing; the majority elects and writes; all converge.
func TestLeaderCutFromFollowers(t *testing.T) {
	l := newLab(t, 3)
	acked := l.mustSubmit(l.sleepers("before-cut", 3, false))
	old := l.leader()
	fs := l.others(old)
	l.s.reset()
	for _, f := range fs {
		if err := l.net.cut(old.h.role, f.h.role); err != nil {
			t.Fatal(err)
		}
	}
	cutAt := time.Now()
	t.Logf("cut the leader %s from both followers %s and %s", old.id, fs[0].id, fs[1].id)

	var mu sync.Mutex
	var minority []minorityWrite
	stopW, doneW := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(doneW)
		for i := 0; ; i++ {
			select {
			case <-stopW:
				return
			default:
			}
			name := fmt.Sprintf("minority-%d", i)
			start := time.Now()
			_, code, err := l.submitOnce(old.http, l.sleepers(name, 1, false), 3*time.Second)
			mu.Lock()
			minority = append(minority, minorityWrite{name, start.Sub(cutAt), time.Since(start), code, err})
			mu.Unlock()
			time.Sleep(250 * time.Millisecond)
		}
	}()

	var nl *replica
	if !poll(20*time.Second, func() bool { nl = l.leaderAmong(fs); return nl != nil }) {
		t.Fatalf("no new leader among %s and %s within 20s of the cut", fs[0].id, fs[1].id)
	}
	elected := time.Since(cutAt)
	t.Logf("%s leads the majority %s after the cut", nl.id, ms(elected))
	for i := 0; i < 4; i++ {
		via := fs[i%2]
		ids, err := l.submit(via.http, l.sleepers(fmt.Sprintf("majority-%d", i), 1, false), 10*time.Second)
		if err != nil {
			t.Errorf("a write through %s on the majority side failed: %v", via.id, err)
			continue
		}
		acked = append(acked, ids...)
	}
	poll(20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(minority) >= 3 })
	close(stopW)
	<-doneW
	stepped := "still says it leads"
	if poll(5*time.Second, func() bool { s, err := l.self(old); return err == nil && s.State != "leader" }) {
		stepped = "no longer says it leads"
	}
	t.Logf("the old leader %s %s, %s after the cut", old.id, stepped, ms(time.Since(cutAt)))

	var lines []string
	refused := map[string]bool{}
	for _, m := range minority {
		outcome := fmt.Sprintf("%d", m.code)
		if m.err != nil {
			outcome = m.err.Error()
		}
		lines = append(lines, fmt.Sprintf("%s at +%s (%s): %s", m.name, ms(m.at), ms(m.took), outcome))
		if m.code >= 200 && m.code < 300 {
			t.Errorf("the minority leader %s acknowledged a write: %s at +%s got %d", old.id, m.name, ms(m.at), m.code)
		}
		if m.code == http.StatusServiceUnavailable {
			refused[m.name] = true
		}
	}
	t.Logf("%d writes sent to the minority leader, none may succeed:\n  %s", len(minority), strings.Join(lines, "\n  "))

	l.waitRunningOnce(30*time.Second, acked)
	want := l.placement()
	l.settle(want)
	l.allReplicasHold(acked, 30*time.Second)
	if ws, err := l.workloads(); err == nil {
		for _, w := range ws {
			if strings.HasPrefix(w.Name, "minority-") {
				if refused[w.Name] {
					t.Errorf("%s was refused with 503 by the minority leader, yet is in the state after the heal", w.Name)
				} else {
					t.Logf("%s, whose outcome the client never learned, was applied after the heal", w.Name)
				}
			}
		}
	}
	if d := l.s.reset().doubles(acked); len(d) > 0 {
		t.Errorf("workloads ran twice at the same moment: %s", strings.Join(d, "; "))
	}
}

// Scenario d: one follower cut off: nothing moves, writes keep succeeding, it catches up after the heal.
func TestFollowerCutOff(t *testing.T) {
	const hold = 10 * time.Second
	l := newLab(t, 3)
	ids := l.mustSubmit(l.sleepers("follower-cut", 6, false))
	ld := l.leader()
	f := l.others(ld)[0]
	before := l.placement()
	l.s.reset()
	if err := l.net.isolate(f.h.role, roles(l.others(f), l.agents)); err != nil {
		t.Fatal(err)
	}
	w := newWatch(time.Now())
	t.Logf("cut the follower %s from the other replicas and every agent; writing through the leader %s for %s", f.id, ld.id, hold)
	acked := append([]string{}, ids...)
	writes, failed := 0, 0
	for i := 0; time.Since(w.from) < hold; i++ {
		start := time.Now()
		got, _, err := l.submitOnce(ld.http, l.sleepers(fmt.Sprintf("during-%d", i), 1, false), 3*time.Second)
		writes++
		if err != nil {
			failed++
			t.Errorf("write %d at +%s through the leader failed while a follower was cut off: %v", i, ms(start.Sub(w.from)), err)
		} else {
			acked = append(acked, got...)
		}
		w.look(l, before)
		time.Sleep(300 * time.Millisecond)
	}
	win := l.s.reset()
	t.Log(win.report(ids))
	t.Logf("%d writes through the leader during the cut, %d failed; nodes offline: %s", writes, failed, nodeTimes(w.offline))
	if len(w.changes) > 0 {
		t.Errorf("with a follower cut off, %d workloads were disturbed (want none): %s", len(w.changes), strings.Join(w.changes, "; "))
	}
	if len(w.offline) > 0 {
		t.Errorf("with only a follower cut off, nodes went offline: %s", nodeTimes(w.offline))
	}
	if d := win.doubles(acked); len(d) > 0 {
		t.Errorf("workloads ran twice at the same moment: %s", strings.Join(d, "; "))
	}
	if nl := l.leaderAmong(l.replicas); nl != ld {
		t.Logf("note: the leader changed during the cut")
	}
	l.waitRunningOnce(30*time.Second, acked)
	l.settle(l.placement())
	l.allReplicasHold(acked, 30*time.Second)
}

// Scenario e: the link of one agent to every replica down 1 s in every 3 s for 30 s: no node offline, nothing moves.
func TestFlappingAgentLink(t *testing.T) {
	needLab(t)
	const (
		span   = 30 * time.Second
		period = 3 * time.Second
		down   = time.Second
	)
	l := newLab(t, 3)
	ids := l.mustSubmit(l.sleepers("flap", 6, false))
	victim, theirs := l.busiestAgent(ids)
	before := l.placement()
	reps := roles(l.replicas, nil)
	// The health checks keep their own 3 s cycle: a random start puts the
	// cuts at a random phase of it (a run sees one phase; -count=N sees more).
	time.Sleep(time.Duration(rand.Int64N(int64(period))))
	l.s.reset()
	w := newWatch(time.Now())
	t.Logf("flapping the link between %s (running %v) and every replica: down %s in every %s, for %s", victim.id, theirs, down, period, span)
	flapErr := make(chan error, 1)
	go func() {
		var err error
		for k := 0; time.Duration(k)*period < span && err == nil; k++ {
			at := w.from.Add(time.Duration(k) * period)
			time.Sleep(time.Until(at))
			if err = l.net.isolate(victim.h.role, reps); err != nil {
				break
			}
			time.Sleep(time.Until(at.Add(down)))
			err = l.net.rejoin(victim.h.role, reps)
		}
		time.Sleep(time.Until(w.from.Add(span)))
		flapErr <- err
	}()
	for done := false; !done; {
		select {
		case err := <-flapErr:
			if err != nil {
				t.Fatalf("flapping: %v", err)
			}
			done = true
		default:
			w.look(l, before)
			time.Sleep(100 * time.Millisecond)
		}
	}
	win := l.s.reset()
	t.Log(win.report(ids))
	t.Logf("degraded: %s", nodeTimes(w.degraded))
	if len(w.offline) > 0 {
		t.Errorf("a link down 1 s in every 3 s marked nodes offline: %s (the cuts start at +0s, +3s, +6s, ...)", nodeTimes(w.offline))
	}
	if len(w.changes) > 0 {
		t.Errorf("a flapping link disturbed %d workloads (want none): %s", len(w.changes), strings.Join(w.changes, "; "))
	}
	if d := win.doubles(ids); len(d) > 0 {
		t.Errorf("workloads ran twice at the same moment: %s", strings.Join(d, "; "))
	}
	l.settle(before)
}

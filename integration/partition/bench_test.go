package partition

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// trial is one silent failure: time to offline and to running elsewhere (/proc).
type trial struct {
	offline, elsewhere time.Duration
	err                string
}

// Scenario f (MO_BENCH=1): silent-failure detection and recovery, SIGSTOP and a cut, 10 trials each at random
// phases, for default workloads and for exclusive ones (which also must never run twice).
func TestSilentFailureBench(t *testing.T) {
	needLab(t)
	if os.Getenv("MO_BENCH") != "1" {
		t.Skip("a benchmark of several minutes; run with MO_BENCH=1")
	}
	const trials = 10
	l := newLab(t, 3)
	plain := l.mustSubmit(l.sleepers("bench", 6, false))
	excl := l.mustSubmit(l.sleepers("bench-excl", 6, true))
	all := append(append([]string(nil), plain...), excl...)
	kinds := []string{"sigstop", "cut", "sigstop excl", "cut excl"}
	res := map[string][]trial{}
	for i := 0; i < trials; i++ {
		for _, kind := range kinds {
			action, isExcl := strings.CutSuffix(kind, " excl")
			ids := plain
			if isExcl {
				ids = excl
			}
			l.waitRunningOnce(30*time.Second, all)
			l.s.reset()
			tr := l.silentTrial(action, ids)
			if isExcl {
				if d := l.s.reset().doubles(excl); len(d) > 0 {
					t.Errorf("%s trial %d: exclusive workloads ran twice at the same moment: %s", kind, i+1, strings.Join(d, "; "))
				}
			}
			t.Logf("%-12s trial %2d: offline after %s, running elsewhere after %s %s", kind, i+1, ms(tr.offline), ms(tr.elsewhere), tr.err)
			res[kind] = append(res[kind], tr)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "silent failures, %d trials each (defaults: health interval 3s, timeout 2s, 2 failures):\n", trials)
	fmt.Fprintf(&b, "  %-12s %6s  %16s %13s  %18s %15s\n", "failure", "failed", "offline median", "offline p99", "elsewhere median", "elsewhere p99")
	for _, kind := range kinds {
		var off, away []time.Duration
		failed := 0
		for _, tr := range res[kind] {
			if tr.err != "" {
				failed++
				continue
			}
			off, away = append(off, tr.offline), append(away, tr.elsewhere)
		}
		fmt.Fprintf(&b, "  %-12s %6d  %16s %13s  %18s %15s\n", kind, failed,
			ms(quantile(off, 0.5)), ms(quantile(off, 0.99)), ms(quantile(away, 0.5)), ms(quantile(away, 0.99)))
		if failed > 0 {
			t.Errorf("%d %s trials did not end with the node offline and its work elsewhere within 30s", failed, kind)
		}
	}
	t.Log(b.String())
}

// quantile returns the nearest-rank q-quantile of ds, or 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(q*float64(len(s))+0.999999) - 1
	if k < 0 {
		k = 0
	}
	if k >= len(s) {
		k = len(s) - 1
	}
	return s[k]
}

// silentTrial fails the busiest agent (kind sigstop or cut) at a random phase, measures, and undoes it.
func (l *lab) silentTrial(kind string, ids []string) trial {
	l.t.Helper()
	l.waitFor(60*time.Second, "every node online", func() bool { return l.countNodes(api.NodeOnline) == len(l.agents) })
	l.waitRunningOnce(30*time.Second, ids)
	victim, theirs := l.busiestAgent(ids)
	// The checks run every 3 s on the leader's own clock: a uniform delay
	// puts the failure at a uniform point of that cycle.
	time.Sleep(time.Duration(rand.Int64N(int64(3 * time.Second))))
	reps := roles(l.replicas, nil)
	switch kind {
	case "sigstop":
		if err := syscall.Kill(victim.p.pid(), syscall.SIGSTOP); err != nil {
			l.t.Fatal(err)
		}
	case "cut":
		if err := l.net.isolate(victim.h.role, reps); err != nil {
			l.t.Fatal(err)
		}
	}
	start := time.Now()
	var tr trial
	var offAt, awayAt time.Time
	poll(30*time.Second, func() bool {
		if offAt.IsZero() {
			if ns, err := l.nodes(); err == nil {
				for _, n := range ns {
					if n.ID == victim.id && n.Status == api.NodeOffline {
						offAt = time.Now()
					}
				}
			}
		}
		if awayAt.IsZero() {
			snap := l.s.latest()
			all := true
			for _, id := range theirs {
				away := false
				for _, n := range snap.where[id] {
					away = away || (n != victim.id && n != "?")
				}
				all = all && away
			}
			if all && snap.at.After(start) {
				awayAt = snap.at
			}
		}
		return !offAt.IsZero() && !awayAt.IsZero()
	})
	switch kind {
	case "sigstop":
		_ = syscall.Kill(victim.p.pid(), syscall.SIGCONT)
	case "cut":
		if err := l.net.rejoin(victim.h.role, reps); err != nil {
			l.t.Fatal(err)
		}
	}
	if offAt.IsZero() || awayAt.IsZero() {
		tr.err = fmt.Sprintf("(%s: offline seen %v, elsewhere seen %v)", victim.id, !offAt.IsZero(), !awayAt.IsZero())
	}
	if !offAt.IsZero() {
		tr.offline = offAt.Sub(start)
	}
	if !awayAt.IsZero() {
		tr.elsewhere = awayAt.Sub(start)
	}
	return tr
}

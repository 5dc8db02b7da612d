package agent

import (
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func TestRestartDelayDoublesUpToMax(t *testing.T) {
	p := &api.RestartPolicy{Attempts: 10, Delay: api.Duration(time.Second), MaxDelay: api.Duration(5 * time.Second)}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := restartDelay(p, i+1); got != w {
			t.Errorf("restart %d: %s, want %s", i+1, got, w)
		}
	}
	// No overflow for a long run of restarts.
	if got := restartDelay(&api.RestartPolicy{Delay: api.Duration(time.Hour), MaxDelay: api.Duration(24 * time.Hour)}, 1000); got != 24*time.Hour {
		t.Errorf("restart 1000: %s", got)
	}
	// A max below the delay means the delay.
	if got := restartDelay(&api.RestartPolicy{Delay: api.Duration(time.Second), MaxDelay: api.Duration(time.Millisecond)}, 3); got != time.Second {
		t.Errorf("max below delay: %s", got)
	}
}

// A renewal after the lease lapsed starts a new unbroken stretch; one in time does not.
func TestLeaseHeldSince(t *testing.T) {
	var l lease
	now := boottime()
	l.renew(now+time.Minute, 1)
	since, until := l.held()
	if since < now || until != now+time.Minute {
		t.Fatalf("first grant: since %v until %v (now %v)", since, until, now)
	}
	l.renew(now+2*time.Minute, 1)
	if s2, _ := l.held(); s2 != since {
		t.Fatal("a renewal in time broke the lease")
	}
	l.mu.Lock()
	l.until = boottime() // lapsed
	l.mu.Unlock()
	l.renew(boottime()+time.Minute, 1)
	if s3, _ := l.held(); s3 <= since {
		t.Fatal("a renewal after a lapse did not start a new stretch")
	}
}

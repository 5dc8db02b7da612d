package agent

import (
	"sync"
	"time"
)

// leaseKillWindow is how long before its lease lapses the agent starts
// stopping its exclusive instances (SIGTERM), so that they are gone (SIGKILL)
// when it lapses.
const leaseKillWindow = time.Second

// lease is the agent's right to run exclusive workloads: it lasts a lease
// duration from the moment the agent sent a heartbeat that the leader
// acknowledged. The leader waits for the same duration, plus a margin, from
// the moment it received that heartbeat, so the agent's lease always lapses
// first.
type lease struct {
	mu      sync.Mutex
	until   time.Time // monotonic
	term    uint64    // the leader term of the latest renewal
	onRenew func(until time.Time)
}

// renew extends the lease to until, granted by the leader of term. A grant
// from an older term than one already seen is ignored. It reports whether
// the lease was extended.
func (l *lease) renew(until time.Time, term uint64) bool {
	l.mu.Lock()
	if term < l.term || !until.After(l.until) {
		l.mu.Unlock()
		return false
	}
	l.term = term
	l.until = until
	fn := l.onRenew
	l.mu.Unlock()
	if fn != nil {
		fn(until)
	}
	return true
}

// expiry returns when the lease lapses (zero before the first grant).
func (l *lease) expiry() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// valid reports whether the lease holds at now, with room to spare for the
// kill window.
func (l *lease) valid(now time.Time) bool {
	return now.Add(leaseKillWindow).Before(l.expiry())
}

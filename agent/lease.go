package agent

import (
	"sync"
	"time"
)

// leaseKillWindow is how long before its lease lapses the agent starts
// stopping its exclusive instances (SIGTERM), so that they are gone (SIGKILL)
// when it lapses.
const leaseKillWindow = 500 * time.Millisecond

// lease is the agent's right to run exclusive workloads: it lasts a lease
// duration from the moment the agent sent a heartbeat that the leader
// acknowledged. The leader waits for the same duration, plus a margin, from
// the moment it received that heartbeat, so the agent's lease always lapses
// first. Times are CLOCK_BOOTTIME (see boottime), which goes on while the
// machine is suspended, as the leader's clock does.
type lease struct {
	mu      sync.Mutex
	until   time.Duration // boottime; 0 before the first grant
	term    uint64        // the leader term of the latest renewal
	since   time.Duration // boottime since which the lease has held without a lapse
	onRenew func(until time.Duration)
	sent    map[uint64]time.Duration // boottime each recent heartbeat was sent at
}

// sentKept is how many heartbeat send times are kept.
const sentKept = 64

// recordSent notes when heartbeat seq was sent (boottime).
func (l *lease) recordSent(seq uint64, at time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent == nil {
		l.sent = map[uint64]time.Duration{}
	}
	l.sent[seq] = at
	delete(l.sent, seq-sentKept)
}

// sentAt returns when heartbeat seq was sent, if it is recent.
func (l *lease) sentAt(seq uint64) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.sent[seq]
	return at, ok
}

// renew extends the lease to until, granted by the leader of term. A grant
// from an older term than one already seen is ignored. It reports whether
// the lease was extended; onRenew is told under the lock, so in order.
func (l *lease) renew(until time.Duration, term uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if term < l.term || until <= l.until {
		return false
	}
	if now := boottime(); now+leaseKillWindow >= l.until {
		l.since = now // it had lapsed (or was within its kill window): a new lease begins
	}
	l.term = term
	l.until = until
	if l.onRenew != nil {
		l.onRenew(until)
	}
	return true
}

// expiry returns when the lease lapses, in boottime (0 before the first grant).
func (l *lease) expiry() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// grant returns the lease's end and the term that granted it.
func (l *lease) grant() (time.Duration, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until, l.term
}

// held returns since when the lease has held without lapsing and when it
// lapses (boottime). A renewal that comes once the lease is within its kill
// window counts as a lapse, since exclusive instances are stopped then.
func (l *lease) held() (since, until time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.since, l.until
}

// valid reports whether the lease holds at now (boottime), with room to
// spare for the kill window.
func (l *lease) valid(now time.Duration) bool {
	return now+leaseKillWindow < l.expiry()
}

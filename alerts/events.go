package alerts

import (
	"context"
	"sync"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// DefaultLogSize is the number of recent events a Log keeps.
const DefaultLogSize = 1000

// Log is a bounded log of recent events. Each event gets the next sequence
// number; once the log is full the oldest event is dropped. Readers ask for
// the events after a sequence number and may wait for new ones. Its methods
// are safe for concurrent use.
type Log struct {
	epoch string

	mu     sync.Mutex
	buf    []api.Event // ring of capacity len(buf)
	start  int         // index of the oldest event
	n      int         // events held
	last   uint64      // sequence number of the newest event; 0 before the first
	wake   chan struct{}
	counts map[string]uint64 // events appended, by kind
}

// NewLog returns an empty log that keeps up to size events (DefaultLogSize
// if size <= 0). epoch names this log in answers, so that a reader can tell
// that another log (another leader) answered.
func NewLog(epoch string, size int) *Log {
	if size <= 0 {
		size = DefaultLogSize
	}
	return &Log{epoch: epoch, buf: make([]api.Event, size), wake: make(chan struct{}), counts: map[string]uint64{}}
}

// Epoch returns the name given to NewLog.
func (l *Log) Epoch() string { return l.epoch }

// Append records e with the next sequence number (and the current time if
// e.Time is zero), wakes the waiting readers, and returns the stored event.
func (l *Log) Append(e api.Event) api.Event {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	l.mu.Lock()
	l.last++
	e.Seq = l.last
	if l.n < len(l.buf) {
		l.buf[(l.start+l.n)%len(l.buf)] = e
		l.n++
	} else {
		l.buf[l.start] = e
		l.start = (l.start + 1) % len(l.buf)
	}
	l.counts[e.Kind]++
	wake := l.wake
	l.wake = make(chan struct{})
	l.mu.Unlock()
	close(wake)
	return e
}

// at returns the i-th held event, oldest first; the caller holds mu.
func (l *Log) at(i int) api.Event { return l.buf[(l.start+i)%len(l.buf)] }

// After returns, oldest first, up to limit events whose sequence number is
// above after, and the sequence number to pass as after next time: the last
// returned event's, or the newest one's when none is returned. Events dropped
// from a full log are skipped: a gap in the numbers shows it.
func (l *Log) After(after uint64, limit int) ([]api.Event, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit <= 0 {
		limit = len(l.buf)
	}
	out := []api.Event{}
	// The held events carry the numbers last-n+1 .. last.
	first := l.last - uint64(l.n) + 1
	i := 0
	if after >= first {
		i = int(after - first + 1)
	}
	for ; i < l.n && len(out) < limit; i++ {
		out = append(out, l.at(i))
	}
	if len(out) == 0 {
		return out, l.last
	}
	return out, out[len(out)-1].Seq
}

// Recent returns the newest limit events (all held events if limit <= 0),
// oldest first, and the newest sequence number.
func (l *Log) Recent(limit int) ([]api.Event, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit <= 0 || limit > l.n {
		limit = l.n
	}
	out := make([]api.Event, 0, limit)
	for i := l.n - limit; i < l.n; i++ {
		out = append(out, l.at(i))
	}
	return out, l.last
}

// LastSeq returns the newest sequence number (0 before the first event).
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Wait blocks until an event with a sequence number above after exists, or
// ctx is done (then it returns ctx's error).
func (l *Log) Wait(ctx context.Context, after uint64) error {
	for {
		l.mu.Lock()
		if l.last > after {
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Counts returns how many events of each kind were appended.
func (l *Log) Counts() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.counts))
	for k, v := range l.counts {
		out[k] = v
	}
	return out
}

package cluster

import (
	"errors"
	"sync"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// Submissions that arrive while earlier ones are being committed are merged
// into one raft entry: one encoding, one log entry on every replica and one
// apply, instead of one of each per request. A request is answered once the
// entry holding it is committed and applied, as before.
const (
	// submitFlushers is how many merged entries may be in flight at once
	// (raft pipelines them).
	submitFlushers = 4
	// maxMergedWorkloads bounds the workloads of one merged entry.
	maxMergedWorkloads = 4096
)

// submitBatcher merges concurrent submissions.
type submitBatcher struct {
	apply func(fsm.Command) error

	mu       sync.Mutex
	waiting  []*submission
	flushers int
}

// submission is one request's workloads and where its answer goes.
type submission struct {
	workloads []api.Workload
	seq       uint64
	done      chan error
}

// submit commits the workloads (their IDs handed out up to seq) and returns
// Apply's answer for the entry that held them.
func (b *submitBatcher) submit(ws []api.Workload, seq uint64) error {
	s := &submission{workloads: ws, seq: seq, done: make(chan error, 1)}
	b.mu.Lock()
	b.waiting = append(b.waiting, s)
	start := b.flushers < submitFlushers
	if start {
		b.flushers++
	}
	b.mu.Unlock()
	if start {
		go b.flush()
	}
	return <-s.done
}

// flush commits what waits, entry after entry, until nothing does.
func (b *submitBatcher) flush() {
	for {
		b.mu.Lock()
		batch := b.take()
		if len(batch) == 0 {
			b.flushers--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		cmd := &fsm.SubmitWorkloads{At: time.Now().UTC()}
		for _, s := range batch {
			cmd.Workloads = append(cmd.Workloads, s.workloads...)
			cmd.Seq = max(cmd.Seq, s.seq)
		}
		err := b.apply(cmd)
		if len(batch) > 1 && (errors.Is(err, fsm.ErrConflict) || errors.Is(err, fsm.ErrInvalid)) {
			// The state refused the merged entry: one submission may be
			// at fault, so that none answers for another, each goes alone.
			for _, s := range batch {
				s.done <- b.apply(&fsm.SubmitWorkloads{At: cmd.At, Seq: s.seq, Workloads: s.workloads})
			}
			continue
		}
		for _, s := range batch {
			s.done <- err
		}
	}
}

// take removes the submissions of the next entry from the waiting ones
// (at least one, however large); b.mu is held.
func (b *submitBatcher) take() []*submission {
	n, total := 0, 0
	for n < len(b.waiting) && (n == 0 || total+len(b.waiting[n].workloads) <= maxMergedWorkloads) {
		total += len(b.waiting[n].workloads)
		n++
	}
	batch := b.waiting[:n:n]
	b.waiting = b.waiting[n:]
	if len(b.waiting) == 0 {
		b.waiting = nil
	}
	return batch
}

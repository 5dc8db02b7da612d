package agent

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
)

// heartbeater sends the node's heartbeat to every replica it knows about,
// once an interval, and renews the lease from the acknowledgements: a
// heartbeat the leader recorded grants the lease from the moment it was sent.
type heartbeater struct {
	id       string
	client   *http.Client
	interval time.Duration
	lease    *lease
	term     func() uint64 // the highest leader term obeyed
	log      hclog.Logger

	mu      sync.Mutex
	addrs   []string // replica addresses: --join plus those the replicas name
	seq     uint64   // starts from the clock, so that it grows across restarts
	granted int64    // the longest lease granted, in milliseconds
}

func newHeartbeater(id string, join []string, client *http.Client, interval time.Duration, l *lease, term func() uint64, log hclog.Logger) *heartbeater {
	return &heartbeater{id: id, client: client, interval: interval, lease: l, term: term, log: log,
		addrs: slices.Clone(join), seq: uint64(time.Now().UnixNano())}
}

// run sends heartbeats until ctx is done.
func (h *heartbeater) run(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	var lastWarn time.Time
	for {
		h.mu.Lock()
		h.seq++
		seq := h.seq
		h.lease.recordSent(seq, boottime())
		addrs := slices.Clone(h.addrs)
		h.mu.Unlock()

		hb := api.Heartbeat{NodeID: h.id, Seq: seq, Term: h.term(), LeaseMillis: h.leaseMillis()}
		var wg sync.WaitGroup
		var failed sync.Map
		for _, a := range addrs {
			wg.Go(func() {
				if err := h.send(ctx, a, hb); err != nil {
					failed.Store(a, err.Error())
				}
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		if exp := h.lease.expiry(); exp > 0 && boottime() > exp && time.Since(lastWarn) > 10*time.Second {
			lastWarn = time.Now()
			var errs []any
			failed.Range(func(k, v any) bool { errs = append(errs, k.(string), v); return true })
			h.log.Warn("no heartbeat acknowledged by the leader: the lease has lapsed", append([]any{"lapsed_for", (boottime() - exp).Round(time.Millisecond)}, errs...)...)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// send posts one heartbeat to the replica at addr and takes its answer.
func (h *heartbeater) send(ctx context.Context, addr string, hb api.Heartbeat) error {
	base, err := joinURL(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, h.interval)
	defer cancel()
	var ack api.HeartbeatAck
	if err := api.PostJSON(ctx, h.client, base+"/"+url.PathEscape(h.id)+"/heartbeat", hb, &ack); err != nil {
		return err
	}
	h.take(ack)
	return nil
}

// leaseMillis is the length of the lease last granted, which the agent
// reports so that a leader configured with a shorter one waits long enough.
func (h *heartbeater) leaseMillis() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.granted
}

// take renews the lease from an acknowledgement and learns the replicas.
func (h *heartbeater) take(ack api.HeartbeatAck) {
	h.mu.Lock()
	for _, a := range ack.Replicas {
		if !slices.Contains(h.addrs, a) {
			h.addrs = append(h.addrs, a)
		}
	}
	sentAt, ok := h.lease.sentAt(ack.AckSeq)
	if ok && ack.AckSeq != 0 && ack.LeaseMillis > h.granted {
		h.granted = ack.LeaseMillis
	}
	h.mu.Unlock()
	if !ok || ack.AckSeq == 0 || ack.LeaseMillis <= 0 || ack.Term < h.term() {
		return
	}
	h.lease.renew(sentAt+time.Duration(ack.LeaseMillis)*time.Millisecond, ack.Term)
}

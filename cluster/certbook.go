package cluster

import (
	"context"
	"crypto/tls"
	"sort"
	"sync"
	"time"

	"github.com/micro-orchestrator/mo/alerts"
)

// certForget is how long a peer's certificate expiry is remembered after
// it was last seen.
const certForget = 2 * time.Minute

// certBook remembers the expiry of the certificates peers use: each
// agent's as its heartbeats show it, each follower's as it reports it in
// GET /cluster/self. It feeds the CertificateExpiring alert.
type certBook struct {
	mu   sync.Mutex
	seen map[certKey]certSeen
}

type certKey struct{ kind, id string }

type certSeen struct {
	notAfter time.Time
	at       time.Time
}

func newCertBook() *certBook { return &certBook{seen: map[certKey]certSeen{}} }

// note records the client certificate of a request from a peer, if any.
func (b *certBook) note(kind, id string, cs *tls.ConnectionState, now time.Time) {
	if cs == nil || len(cs.PeerCertificates) == 0 || id == "" {
		return
	}
	b.noteExpiry(kind, id, cs.PeerCertificates[0].NotAfter, now)
}

// noteExpiry records a peer's certificate expiry.
func (b *certBook) noteExpiry(kind, id string, notAfter, now time.Time) {
	b.mu.Lock()
	b.seen[certKey{kind, id}] = certSeen{notAfter: notAfter, at: now}
	b.mu.Unlock()
}

// peerCertEvery is how often the leader asks its followers for their
// certificate expiry.
const peerCertEvery = 30 * time.Second

// peerCertLoop asks every other voter, while this replica leads, for its
// own view (GET /cluster/self), and records its certificate expiry.
func (r *Replica) peerCertLoop(ctx context.Context) {
	if r.cfg.TLS == nil {
		return
	}
	t := time.NewTicker(peerCertEvery)
	defer t.Stop()
	for {
		addrs := r.replicaHTTPByID()
		for _, s := range r.servers() {
			id := string(s.ID)
			if id == r.cfg.ID || addrs[id] == "" {
				continue
			}
			if self, err := r.askSelf(ctx, addrs[id]); err == nil && self.TLSCertExpires != nil && self.ID == id {
				r.certs.noteExpiry("replica", id, *self.TLSCertExpires, time.Now())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// inputs returns the certificates seen recently, sorted, and forgets the
// others.
func (b *certBook) inputs(now time.Time) []alerts.CertInput {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]alerts.CertInput, 0, len(b.seen))
	for k, s := range b.seen {
		if now.Sub(s.at) > certForget {
			delete(b.seen, k)
			continue
		}
		out = append(out, alerts.CertInput{Kind: k.kind, ID: k.id, NotAfter: s.notAfter})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].ID < out[j].ID
	})
	return out
}

package cluster

import (
	"crypto/tls"
	"sort"
	"sync"
	"time"

	"github.com/micro-orchestrator/mo/alerts"
)

// certForget is how long a peer's certificate is remembered after its last
// connection showed it.
const certForget = 2 * time.Minute

// certBook remembers the expiry of the certificates that peers show on
// their connections: each agent's on its heartbeats, each follower's on its
// relays. It feeds the CertificateExpiring alert.
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
	b.mu.Lock()
	b.seen[certKey{kind, id}] = certSeen{notAfter: cs.PeerCertificates[0].NotAfter, at: now}
	b.mu.Unlock()
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

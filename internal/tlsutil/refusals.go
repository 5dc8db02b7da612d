package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// refusalWindow is how long one kind of refusal from one host is logged
// only once.
const refusalWindow = 5 * time.Minute

// maxRefusalKeys bounds the (host, kind) pairs remembered; past it, new
// pairs are logged together, once a window.
const maxRefusalKeys = 4096

// RefusalLog logs refused connections and requests: the first of each
// (host, reason) at once, then at most once a window with the count of those
// not logged.
type RefusalLog struct {
	log  hclog.Logger
	mu   sync.Mutex
	seen map[refusalKey]*refusalSeen
	// overflow counts refusals of pairs not remembered, logged once a window.
	overflow       int
	overflowLogged time.Time
}

type refusalKey struct{ host, reason string }

type refusalSeen struct {
	logged     time.Time
	suppressed int
}

// NewRefusalLog returns a RefusalLog writing to log.
func NewRefusalLog(log hclog.Logger) *RefusalLog {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &RefusalLog{log: log, seen: map[refusalKey]*refusalSeen{}}
}

func (r *RefusalLog) noteHandshake(from net.Addr, err error) {
	reason := RefusalReason(err)
	if reason == "" {
		return // the peer went away mid-handshake: nothing to report
	}
	r.Note(from.String(), "TLS connection refused", refusalKind(reason), reason)
}

// refusalKind is the stable part of a reason (the words before any detail
// in parentheses or after a colon), so that peer-chosen detail cannot make
// every refusal a new one.
func refusalKind(reason string) string {
	if i := strings.IndexAny(reason, "(:"); i > 0 {
		return strings.TrimSpace(reason[:i])
	}
	return reason
}

// Note logs msg with the reason, unless the same kind of refusal from the
// same host (its port ignored) was logged within the window.
func (r *RefusalLog) Note(from, msg, kind, reason string) {
	host := from
	if h, _, e := net.SplitHostPort(host); e == nil {
		host = h
	}
	k := refusalKey{host, kind}
	now := time.Now()
	r.mu.Lock()
	s := r.seen[k]
	if s != nil && now.Sub(s.logged) < refusalWindow {
		s.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := 0
	if s != nil {
		suppressed = s.suppressed
	}
	if s == nil && len(r.seen) >= maxRefusalKeys {
		for key, v := range r.seen { // make room: forget pairs quiet for a window
			if now.Sub(v.logged) >= refusalWindow {
				delete(r.seen, key)
			}
		}
		if len(r.seen) >= maxRefusalKeys {
			r.overflow++
			if now.Sub(r.overflowLogged) < refusalWindow {
				r.mu.Unlock()
				return
			}
			n := r.overflow
			r.overflow, r.overflowLogged = 0, now
			r.mu.Unlock()
			r.log.Warn(msg+" (from many hosts; not each one logged)", "refused", n, "last_from", host, "reason", reason)
			return
		}
	}
	r.seen[k] = &refusalSeen{logged: now}
	r.mu.Unlock()
	args := []any{"from", host, "reason", reason}
	if suppressed > 0 {
		args = append(args, "refused_since_last_logged", suppressed)
	}
	r.log.Warn(msg, args...)
}

// RefusalReason says in a few stable words why a handshake failed, or ""
// when the peer simply went away. It never includes key material.
func RefusalReason(err error) string {
	var rh tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &rh):
		return "plaintext (not TLS) sent to a TLS port"
	case errors.As(err, &unknown):
		return "certificate signed by another CA"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "certificate expired or not yet valid"
	case errors.As(err, &invalid):
		return "certificate invalid: " + invalid.Error()
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "didn't provide a certificate"), strings.Contains(msg, "no client certificate"):
		return "no client certificate"
	case strings.Contains(msg, "remote error"):
		return "the peer refused this side's certificate (" + strings.TrimPrefix(msg, "remote error: ") + "): is it from another cluster's CA?"
	case strings.Contains(msg, "EOF"), strings.Contains(msg, "connection reset"), strings.Contains(msg, "broken pipe"):
		return ""
	case strings.Contains(msg, "i/o timeout"), errors.Is(err, context.DeadlineExceeded):
		return "handshake timed out"
	}
	return strings.TrimPrefix(msg, "tls: ")
}

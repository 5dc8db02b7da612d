package cluster

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// clientTLS is the TLS side of an HTTP client dialing a peer of the given
// role, or nil when TLS is off.
func (c Config) clientTLS(peer tlsutil.Role) api.TLSClient {
	if c.TLS == nil {
		return nil
	}
	return c.TLS.Client(peer)
}

// secureHTTP puts the API listener on mutual TLS (any of the three roles
// may connect; roleCheck then decides what each may call), or warns once
// that it speaks plaintext.
func (r *Replica) secureHTTP(ln net.Listener) net.Listener {
	if r.cfg.TLS == nil {
		r.log.Warn("!!! PLAINTEXT: TLS is off (no --tls-ca/--tls-cert/--tls-key). The token, every command and the raft log cross the network in clear text, and any holder of the token may do anything. See the README, 'Transport security'. !!!")
		return ln
	}
	r.log.Info("mutual TLS on for the API and raft", "cert", r.cfg.TLS.Files().Cert,
		"expires", r.cfg.TLS.NotAfter().UTC().Format(time.RFC3339), "days_left", daysLeft(r.cfg.TLS.NotAfter(), time.Now()))
	return tlsutil.NewListener(ln, r.cfg.TLS.ServerConfig(tlsutil.RoleServer, tlsutil.RoleAgent, tlsutil.RoleCLI), r.log.Named("tls"))
}

// daysLeft is the whole days from now until t.
func daysLeft(t, now time.Time) int { return int(t.Sub(now).Hours() / 24) }

// roleAllowed says whether a peer of the given role may call method on path
// of the scheduler API. A server (another replica) may call everything. An
// agent may register and report: POST /nodes and its heartbeat. A cli may
// use the API, but neither report as a node nor act as a replica (join,
// heartbeat relay).
//
// The agent's rule is an allowlist (POST exactly, on exactly those paths);
// the cli's denies the report and replica paths whatever the method's case
// and whatever the id (empty included), so that no spelling the router
// would still route reaches those handlers.
func roleAllowed(role tlsutil.Role, method, path string) bool {
	switch role {
	case tlsutil.RoleServer:
		return true
	case tlsutil.RoleAgent:
		// Its shutdown too: it says it is restarting, or drains its node
		// first (agent --drain-on-shutdown) and watches the drain.
		return (method == http.MethodPost && (path == "/nodes" || isHeartbeatPath(path) || isNodeSubPath(path, "restarting") || isNodeSubPath(path, "drain"))) ||
			(method == http.MethodGet && isNodePath(path))
	case tlsutil.RoleCLI:
		report := strings.EqualFold(method, http.MethodPost) && (path == "/nodes" || path == "/nodes/")
		return !report && !isHeartbeatPath(path) && !isNodeSubPath(path, "restarting") && !strings.HasPrefix(path, "/cluster/heartbeats") && !strings.HasPrefix(path, "/cluster/join")
	}
	return false
}

// isHeartbeatPath matches /nodes/{id}/heartbeat, any id (empty included),
// with or without a trailing slash.
func isHeartbeatPath(p string) bool { return isNodeSubPath(p, "heartbeat") }

// isNodePath matches /nodes/{id} for a non-empty id.
func isNodePath(p string) bool {
	id, ok := strings.CutPrefix(p, "/nodes/")
	return ok && id != "" && !strings.Contains(id, "/")
}

// isNodeSubPath matches /nodes/{id}/{sub}, any id (empty included), with or
// without a trailing slash, the sub-path in any case.
func isNodeSubPath(p, sub string) bool {
	rest, ok := strings.CutPrefix(p, "/nodes/")
	if !ok {
		return false
	}
	rest = strings.TrimSuffix(rest, "/")
	i := strings.LastIndexByte(rest, '/')
	return i >= 0 && strings.EqualFold(rest[i+1:], sub) && !strings.Contains(rest[:i], "/")
}

// roleCheck refuses, with 403, a request that the role of the peer's
// certificate does not allow. Without TLS every request passes (the token
// alone guards the API).
func (r *Replica) roleCheck(next http.Handler) http.Handler {
	if r.cfg.TLS == nil {
		return next
	}
	refused := tlsutil.NewRefusalLog(r.log.Named("tls"))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		role := tlsutil.PeerRole(req.TLS)
		if !roleAllowed(role, req.Method, req.URL.Path) {
			who := article(role)
			refused.Note(req.RemoteAddr, "request refused for the role of its certificate", "role "+string(role),
				fmt.Sprintf("%s certificate may not call %s %s", who, req.Method, req.URL.Path))
			api.WriteError(w, http.StatusForbidden, fmt.Sprintf("forbidden: %s certificate may not call %s %s (%s)", who, req.Method, req.URL.Path, roleScope(role)))
			return
		}
		next.ServeHTTP(w, req)
	})
}

// article is "a ROLE" or "an ROLE", as the role's name needs.
func article(role tlsutil.Role) string {
	if role == tlsutil.RoleAgent {
		return "an agent"
	}
	if role == "" {
		return "a role-less"
	}
	return "a " + string(role)
}

// roleScope says in words what a role may do.
func roleScope(role tlsutil.Role) string {
	switch role {
	case tlsutil.RoleAgent:
		return "agent certificates may only register and send heartbeats"
	case tlsutil.RoleCLI:
		return "cli certificates may use the API but not act as a node or a replica"
	}
	return "no role"
}

// ReloadTLS reads the CA, the certificate and the key again (on SIGHUP).
// On success, pooled raft and HTTP connections are closed so that they
// handshake again with the new certificate; on failure the old ones stay in
// use and the log says why.
func (r *Replica) ReloadTLS() {
	if r.cfg.TLS == nil {
		r.log.Info("SIGHUP: TLS is off, no certificates to reload")
		return
	}
	exp, err := r.cfg.TLS.Reload()
	if err != nil {
		r.log.Error("TLS reload failed; keeping the certificates in use", "error", err)
		return
	}
	// HTTP clients start new pools by themselves (api.TLSClient); raft's
	// connections, pooled and pipelined, are closed here and dialed again.
	r.tlsMu.Lock()
	trans, stream := r.transport, r.raftStream
	r.tlsMu.Unlock()
	closed := 0
	if trans != nil {
		trans.CloseStreams()
	}
	if stream != nil {
		closed = stream.closeDialed()
	}
	r.log.Info("TLS certificates reloaded", "expires", exp.UTC().Format(time.RFC3339), "days_left", daysLeft(exp, time.Now()),
		"raft_connections_closed", closed)
}

// tlsNotAfter is this replica's certificate expiry, or nil without TLS.
func (r *Replica) tlsNotAfter() *time.Time {
	if r.cfg.TLS == nil {
		return nil
	}
	t := r.cfg.TLS.NotAfter().UTC()
	return &t
}

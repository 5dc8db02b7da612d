package cluster

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// clientTLS is the TLS config for dialing a peer of the given role, or nil
// when TLS is off.
func (c Config) clientTLS(peer tlsutil.Role) *tls.Config {
	if c.TLS == nil {
		return nil
	}
	return c.TLS.ClientConfig(peer)
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
func roleAllowed(role tlsutil.Role, method, path string) bool {
	report := method == http.MethodPost && (path == "/nodes" || isHeartbeatPath(path))
	switch role {
	case tlsutil.RoleServer:
		return true
	case tlsutil.RoleAgent:
		return report
	case tlsutil.RoleCLI:
		return !report && path != "/cluster/heartbeats" && path != "/cluster/join"
	}
	return false
}

// isHeartbeatPath matches /nodes/{id}/heartbeat.
func isHeartbeatPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/nodes/")
	if !ok {
		return false
	}
	id, ok := strings.CutSuffix(rest, "/heartbeat")
	return ok && id != "" && !strings.Contains(id, "/")
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
			refused.Note(req.RemoteAddr, "request refused for the role of its certificate",
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
	if r.transport != nil {
		r.transport.CloseStreams()
	}
	api.CloseIdle(r.client.Transport)
	api.CloseIdle(r.agents.HTTP.Transport)
	api.CloseIdle(r.forwardTransport)
	r.log.Info("TLS certificates reloaded", "expires", exp.UTC().Format(time.RFC3339), "days_left", daysLeft(exp, time.Now()))
}

// tlsNotAfter is this replica's certificate expiry, or nil without TLS.
func (r *Replica) tlsNotAfter() *time.Time {
	if r.cfg.TLS == nil {
		return nil
	}
	t := r.cfg.TLS.NotAfter().UTC()
	return &t
}

package cluster

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/micro-orchestrator/mo/api"
)

// ForwardedHeader marks a request that a follower forwarded to the leader;
// a replica that receives one and does not lead answers 503 (one hop only).
const ForwardedHeader = "X-Orchestrator-Forwarded-By"

// localOnly reports whether a request is answered by this replica itself.
func localOnly(r *http.Request) bool {
	switch r.URL.Path {
	case "/cluster/self", "/metrics":
		return true
	}
	if r.Method == http.MethodPost && heartbeatPath(r.URL.Path) {
		return true
	}
	if r.Method == http.MethodGet && r.URL.Query().Get("stale") == "true" {
		switch r.URL.Path {
		case "/health/summary", "/recovery/metrics", "/alerts", "/events":
			return false // live data that only the leader holds
		}
		return true
	}
	return false
}

// forward sends every API call that this replica cannot answer itself to
// the leader through a reverse proxy.
func (r *Replica) forward(next http.Handler) http.Handler {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target, _ := url.Parse("http://" + pr.In.Header.Get(leaderTargetHeader))
			pr.SetURL(target)
			pr.Out.Header.Del(leaderTargetHeader)
			pr.Out.Header.Set(ForwardedHeader, r.cfg.ID)
			pr.Out.Host = target.Host
		},
		Transport: r.forwardTransport, // the client's own Authorization header travels as is
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			r.log.Warn("forwarding to the leader failed", "error", err)
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				// Nothing reached the leader: safe to retry.
				noLeader(w, "forwarding to the leader failed: "+err.Error())
				return
			}
			api.WriteError(w, http.StatusBadGateway, "the leader did not answer; the request may or may not have been applied: "+err.Error())
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.IsLeader() || localOnly(req) {
			next.ServeHTTP(w, req)
			return
		}
		if req.Header.Get(ForwardedHeader) != "" {
			noLeader(w, "this replica is not the leader (leadership is moving); retry")
			return
		}
		_, addr := r.leaderHTTP()
		if addr == "" || addr == r.cfg.AdvertiseHTTP {
			noLeader(w, "no leader elected yet; retry")
			return
		}
		req.Header.Set(leaderTargetHeader, addr)
		if req.URL.Path == "/events" || req.URL.Query().Get("follow") == "true" {
			// A long poll or a followed log: end it when this replica stops, so
			// that it does not hold the HTTP server's drain (the client retries elsewhere).
			ctx, cancel := context.WithCancel(req.Context())
			defer cancel()
			defer context.AfterFunc(r.closing, cancel)()
			req = req.WithContext(ctx)
		}
		proxy.ServeHTTP(w, req)
	})
}

const leaderTargetHeader = "X-Orchestrator-Internal-Target"

// noLeader answers 503 with Retry-After.
func noLeader(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	api.WriteError(w, http.StatusServiceUnavailable, msg)
}

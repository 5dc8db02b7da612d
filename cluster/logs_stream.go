package cluster

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// streamLogs answers GET /workloads/{id}/logs with follow=true or tail=all:
// it relays the agent's stream, flushing each piece as it arrives, until the
// agent ends it (the instance ended, or without follow the log was sent), the
// client goes away, or this replica shuts down.
func (r *Replica) streamLogs(w http.ResponseWriter, req *http.Request, wl *api.Workload, addr string, tail int, all, follow bool) {
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	defer context.AfterFunc(r.closing, cancel)()
	q := url.Values{"tail": {strconv.Itoa(tail)}}
	if all {
		q.Set("tail", "all")
	}
	if follow {
		q.Set("follow", "true")
		in := req.URL.Query()
		for _, p := range []string{api.ParamFrames, api.ParamSince, api.ParamLogGeneration} {
			if v := in.Get(p); v != "" {
				q.Set(p, v) // the agent checks them
			}
		}
	}
	open, openCancel := context.WithTimeout(ctx, 10*time.Second) // only until the answer starts
	stop := context.AfterFunc(open, func() {
		if open.Err() == context.DeadlineExceeded {
			cancel()
		}
	})
	body, err := r.agents.StreamLogs(ctx, addr, wl.ID, q)
	stop()
	openCancel()
	if err != nil {
		if ae, ok := err.(*api.AgentError); ok && ae.Status == http.StatusNotFound {
			api.WriteError(w, http.StatusNotFound, "node "+wl.Node+" has no output for "+wl.ID)
			return
		}
		if ae, ok := err.(*api.AgentError); ok && ae.Status == http.StatusBadRequest {
			api.WriteError(w, http.StatusBadRequest, ae.Message)
			return
		}
		api.WriteError(w, http.StatusBadGateway, "fetching logs from node "+wl.Node+": "+err.Error())
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if q.Get(api.ParamFrames) == "true" {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF: the agent ended the stream; else the agent, the client or this replica went away
		}
	}
}

package agent

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/micro-orchestrator/mo/api"
)

// maxWorkloadIDLen bounds a workload id, which names a directory.
const maxWorkloadIDLen = 200

// Header values shared by every answer (never modified by net/http).
var (
	contentTypeJSON = []string{"application/json"}
	contentTypeText = []string{"text/plain; charset=utf-8"}
	noSniff         = []string{"nosniff"}
)

// server holds the agent's HTTP handlers.
type server struct {
	sup    *supervisor
	status *statusCache
	log    hclog.Logger
}

// newHandler builds the agent API: every route, and the JSON 404 and 405
// answers, behind the cluster token.
func newHandler(sup *supervisor, status *statusCache, token string, tlsMetrics prometheus.Collector, log hclog.Logger) http.Handler {
	s := &server{sup: sup, status: status, log: log}
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", req.Method, req.URL.Path))
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// httprouter always lists OPTIONS, which this API does not serve.
		allow := slices.DeleteFunc(strings.Split(w.Header().Get("Allow"), ", "), func(m string) bool { return m == http.MethodOptions })
		w.Header().Set("Allow", strings.Join(allow, ", "))
		api.WriteError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s (allowed: %s)", req.Method, req.URL.Path, strings.Join(allow, ", ")))
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		log.Error("panic in HTTP handler", "method", req.Method, "path", req.URL.Path, "panic", v)
		api.WriteError(w, http.StatusInternalServerError, "internal error")
	}
	r.GET("/status", s.handleStatus)
	r.POST("/workloads", s.handleStart)
	r.DELETE("/workloads/:id", s.handleStop)
	r.GET("/workloads/:id/logs", s.handleLogsRoute)
	r.GET("/metrics", newMetricsHandle(status, &sup.lifecycle, tlsMetrics))
	return api.RequireToken(token, r)
}

// handleStatus answers GET /status from the precomputed body.
func (s *server) handleStatus(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	st := s.status.encoded()
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = st.length
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(st.body)
}

// handleStart answers POST /workloads.
func (s *server) handleStart(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var req api.StartRequest
	if code, err := api.DecodeJSON(w, r, &req); err != nil {
		api.WriteError(w, code, err.Error())
		return
	}
	if err := validateStart(&req); err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	inst, started, err := s.sup.Start(req)
	resp := api.StartResponse{ID: req.ID, PID: inst.PID, State: inst.State, Generation: inst.Generation, Error: inst.Error}
	var se *startError
	switch {
	case err == nil && started:
		api.WriteJSON(w, http.StatusCreated, resp)
	case err == nil:
		api.WriteJSON(w, http.StatusOK, resp)
	case errors.As(err, &se):
		resp.Error = se.reason
		api.WriteJSON(w, http.StatusUnprocessableEntity, resp)
	default:
		s.writeError(w, err)
	}
}

// handleStop answers DELETE /workloads/{id}?term=T&generation=G.
func (s *server) handleStop(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	q := r.URL.Query()
	term, err1 := parseUintParam(q.Get(api.ParamTerm), api.ParamTerm)
	gen, err2 := parseUintParam(q.Get(api.ParamGeneration), api.ParamGeneration)
	if err := errors.Join(err1, err2); err != nil {
		api.WriteError(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	inst, err := s.sup.Stop(ps.ByName("id"), term, gen)
	if err != nil {
		s.writeError(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, inst)
}

// handleLogs answers GET /workloads/{id}/logs?tail=N with text.
func (s *server) handleLogs(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	n := defaultTailLines
	if v := r.URL.Query().Get("tail"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		if err != nil || n < 0 || n > maxTailLines {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("tail must be a whole number from 0 to %d, not %q", maxTailLines, v))
			return
		}
	}
	out, err := s.sup.Logs(ps.ByName("id"), n)
	if err != nil {
		s.writeError(w, err)
		return
	}
	h := w.Header()
	h["Content-Type"] = contentTypeText
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// writeError maps a supervisor error to its HTTP status.
func (s *server) writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, errStaleTerm), errors.Is(err, errStaleGeneration):
		code = http.StatusConflict
	case errors.Is(err, errUnknownWorkload):
		code = http.StatusNotFound
	case errors.Is(err, errShuttingDown), errors.Is(err, errNoLease), errors.Is(err, errOldLease),
		errors.Is(err, errNoGuard), errors.Is(err, errLateStart):
		code = http.StatusServiceUnavailable
	default:
		s.log.Error("request failed", "error", err)
	}
	api.WriteError(w, code, err.Error())
}

// parseUintParam parses a required unsigned query parameter.
func parseUintParam(v, name string) (uint64, error) {
	if v == "" {
		return 0, fmt.Errorf("query parameter %s is required", name)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("query parameter %s must be an unsigned integer, not %q", name, v)
	}
	return n, nil
}

// validateStart checks a start request before anything is done.
func validateStart(req *api.StartRequest) error {
	if err := validWorkloadID(req.ID); err != nil {
		return err
	}
	if err := api.ValidateProcess(req.Command, req.Args, req.Env); err != nil { // the scheduler applies the same rules
		return err
	}
	return req.Spec.Validate()
}

// validWorkloadID accepts ids made of letters, digits, '.', '_' and '-', not
// starting with '.', since an id names a directory.
func validWorkloadID(id string) error {
	if id == "" {
		return errors.New("id is required")
	}
	if len(id) > maxWorkloadIDLen {
		return fmt.Errorf("id is longer than %d characters", maxWorkloadIDLen)
	}
	if id[0] == '.' {
		return fmt.Errorf("id %q must not start with '.'", id)
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("id %q may only hold letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}

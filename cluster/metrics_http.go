package cluster

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// otherRoute labels the requests that match no route (a bounded label
// instead of the raw path).
const otherRoute = "other"

// router is the API's httprouter that also remembers the pattern of each
// route it registers, so that request metrics are labelled by pattern
// (/workloads/:id) and never by raw path, also for requests a follower
// forwards before they reach its router.
type router struct {
	*httprouter.Router
	patterns []pattern
}

// pattern is one registered route split into segments.
type pattern struct {
	name string
	segs []string
}

func newRouter() *router { return &router{Router: httprouter.New()} }

// GET registers a GET route.
func (rt *router) GET(path string, h httprouter.Handle) { rt.Handle(http.MethodGet, path, h) }

// POST registers a POST route.
func (rt *router) POST(path string, h httprouter.Handle) { rt.Handle(http.MethodPost, path, h) }

// DELETE registers a DELETE route.
func (rt *router) DELETE(path string, h httprouter.Handle) { rt.Handle(http.MethodDelete, path, h) }

// Handle registers a route and remembers its pattern.
func (rt *router) Handle(method, path string, h httprouter.Handle) {
	rt.Router.Handle(method, path, h)
	for _, p := range rt.patterns {
		if p.name == path {
			return
		}
	}
	rt.patterns = append(rt.patterns, pattern{name: path, segs: strings.Split(path, "/")})
}

// route returns the registered pattern that path matches, or otherRoute. A
// static segment wins over a parameter, as in httprouter.
func (rt *router) route(path string) string {
	segs := strings.Split(path, "/")
	best, bestStatic := otherRoute, -1
	for _, p := range rt.patterns {
		if len(p.segs) != len(segs) {
			continue
		}
		static, ok := 0, true
		for i, s := range p.segs {
			switch {
			case strings.HasPrefix(s, ":"):
				ok = segs[i] != ""
			case s == segs[i]:
				static++
			default:
				ok = false
			}
			if !ok {
				break
			}
		}
		if ok && static > bestStatic {
			best, bestStatic = p.name, static
		}
	}
	return best
}

// instrument counts and times every request by route pattern, method and
// status code, the token check and forwarding included.
func (r *Replica) instrument(rt *router, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, req)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		labels := []string{rt.route(req.URL.Path), methodLabel(req.Method), strconv.Itoa(code)}
		r.metrics.httpRequests.WithLabelValues(labels...).Inc()
		r.metrics.httpDuration.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
	})
}

// methodLabel bounds the method label to the usual methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	default:
		return "OTHER"
	}
}

// statusWriter records the status code of an answer. It passes Flush on (a
// forwarded streaming answer) and unwraps for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the wrapped writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

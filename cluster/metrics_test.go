package cluster

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/julienschmidt/httprouter"
)

func TestRouteLabelIsThePattern(t *testing.T) {
	rt := newRouter()
	h := func(http.ResponseWriter, *http.Request, httprouter.Params) {}
	rt.GET("/workloads", h)
	rt.POST("/workloads", h)
	rt.GET("/workloads/:id", h)
	rt.DELETE("/workloads/:id", h)
	rt.GET("/workloads/:id/logs", h)
	rt.GET("/cluster/status", h)
	cases := map[string]string{
		"/workloads":                      "/workloads",
		"/workloads/workload_17_3":        "/workloads/:id",
		"/workloads/workload_17_3/logs":   "/workloads/:id/logs",
		"/cluster/status":                 "/cluster/status",
		"/cluster/other":                  otherRoute,
		"/workloads/":                     otherRoute,
		"/workloads/a/b/c":                otherRoute,
		"/no/such/thing":                  otherRoute,
		"/":                               otherRoute,
		"/workloads/workload_17_3/logs/x": otherRoute,
	}
	for path, want := range cases {
		if got := rt.route(path); got != want {
			t.Errorf("route(%q) = %q, want %q", path, got, want)
		}
	}
	if len(rt.patterns) != 4 {
		t.Errorf("%d patterns, want 4 (one per path)", len(rt.patterns))
	}
}

func TestStatusWriter(t *testing.T) {
	rec := httptest.NewRecorder()
	sw := &statusWriter{ResponseWriter: rec}
	sw.Write([]byte("x"))
	sw.WriteHeader(http.StatusTeapot) // too late: the answer is 200
	if sw.code != http.StatusOK {
		t.Fatalf("code %d", sw.code)
	}
	sw2 := &statusWriter{ResponseWriter: httptest.NewRecorder()}
	sw2.WriteHeader(http.StatusServiceUnavailable)
	sw2.Flush()
	if sw2.code != http.StatusServiceUnavailable || sw2.Unwrap() == nil {
		t.Fatalf("code %d", sw2.code)
	}
	if methodLabel("PROPFIND") != "OTHER" || methodLabel("GET") != "GET" {
		t.Fatal("method label")
	}
}

package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func agentServer(t *testing.T, h http.HandlerFunc) api.Node {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return api.Node{ID: "n1", Address: strings.TrimPrefix(srv.URL, "http://")}
}

func TestHTTPChecker(t *testing.T) {
	node := agentServer(t, api.RequireToken("s3cret", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/status" {
			api.WriteError(w, http.StatusNotFound, "no such endpoint")
			return
		}
		api.WriteJSON(w, http.StatusOK, api.AgentStatus{NodeID: "n1", CPUUsage: 12.5, MemoryUsage: 40})
	})).ServeHTTP)

	st, err := NewHTTPChecker("s3cret", time.Second, nil).Check(context.Background(), node)
	if err != nil || st.NodeID != "n1" || st.CPUUsage != 12.5 || st.MemoryUsage != 40 {
		t.Fatalf("Check = %+v, %v", st, err)
	}
	_, err = NewHTTPChecker("wrong", time.Second, nil).Check(context.Background(), node)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "token") {
		t.Fatalf("wrong token: err = %v", err)
	}
}

func TestHTTPCheckerFailures(t *testing.T) {
	status500 := agentServer(t, func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusInternalServerError, "boom")
	})
	badJSON := agentServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("{not json")) })
	hang := agentServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })

	// A closed port: connection refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := api.Node{ID: "n1", Address: ln.Addr().String()}
	ln.Close()

	c := NewHTTPChecker("", 200*time.Millisecond, nil)
	for name, n := range map[string]api.Node{"500": status500, "bad json": badJSON, "timeout": hang, "refused": refused} {
		began := time.Now()
		if _, err := c.Check(context.Background(), n); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if d := time.Since(began); d > 2*time.Second {
			t.Errorf("%s: took %v, the timeout is 200ms", name, d)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewHTTPChecker("", time.Minute, nil).Check(ctx, hang); err == nil {
		t.Error("cancelled context: no error")
	}
}

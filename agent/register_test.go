package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
)

// closedAddr returns a 127.0.0.1 address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRegisterRetriesUntilAccepted(t *testing.T) {
	var calls atomic.Int32
	got := make(chan api.RegisterRequest, 1)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/nodes" {
			api.WriteError(w, http.StatusNotFound, "no")
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			api.WriteError(w, http.StatusUnauthorized, "token")
			return
		}
		if calls.Add(1) <= 2 {
			w.Header().Set("Retry-After", "1")
			api.WriteError(w, http.StatusServiceUnavailable, "no leader")
			return
		}
		var req api.RegisterRequest
		if code, err := api.DecodeJSON(w, r, &req); err != nil {
			api.WriteError(w, code, err.Error())
			return
		}
		got <- req
		api.WriteJSON(w, http.StatusCreated, req)
	}))
	defer fake.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := api.NewHTTPClient(testToken, time.Second, nil)
	join := []string{closedAddr(t), fake.Listener.Addr().String()} // the first replica is down
	reg := api.RegisterRequest{ID: "n7", Address: "127.0.0.1:8087"}
	if err := register(ctx, client, join, reg, hclog.NewNullLogger()); err != nil {
		t.Fatalf("register: %v", err)
	}
	select {
	case r := <-got:
		if r != reg {
			t.Errorf("registered %+v, want %+v", r, reg)
		}
	default:
		t.Fatal("the fake scheduler saw no accepted registration")
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls, want 3 (two refused, one accepted)", n)
	}
}

func TestRegisterStopsWithContext(t *testing.T) {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, http.StatusUnauthorized, "missing or wrong cluster token")
	}))
	defer fake.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := register(ctx, api.NewHTTPClient("wrong", time.Second, nil), []string{fake.Listener.Addr().String()}, api.RegisterRequest{ID: "n"}, hclog.NewNullLogger())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want the context's", err)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("register took %s to notice the context", took)
	}
}

func TestJoinURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:7001":          "http://127.0.0.1:7001/nodes",
		"http://127.0.0.1:7001/":  "http://127.0.0.1:7001/nodes",
		"https://sched.example:1": "https://sched.example:1/nodes",
	} {
		if got, err := joinURL(in); err != nil || got != want {
			t.Errorf("joinURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	var req api.RegisterRequest
	if err := json.Unmarshal([]byte(`{"id":"a","address":"b"}`), &req); err != nil || req.ID != "a" || req.Address != "b" {
		t.Errorf("wire names changed: %+v", req)
	}
}

func TestMemTotalMB(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "MemTotal:        8128652 kB\nMemFree:          312340 kB\n")
	if mb, err := memTotalMB(good); err != nil || mb != 7938 {
		t.Fatalf("memTotalMB = %d, %v; want 7938", mb, err)
	}
	for name, s := range map[string]string{"none": "MemFree: 1 kB\n", "unit": "MemTotal: 5 MB\n", "number": "MemTotal: x kB\n", "empty": ""} {
		if mb, err := memTotalMB(write(name, s)); err == nil {
			t.Errorf("%s: %d accepted", name, mb)
		}
	}
	if _, err := memTotalMB(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file accepted")
	}
}

func TestNodeCapacity(t *testing.T) {
	log := hclog.NewNullLogger()
	if c := nodeCapacity(Config{CPUMillicores: 1500, MemoryMB: 256}, log); *c != (api.Capacity{CPUMillicores: 1500, MemoryMB: 256}) {
		t.Fatalf("flags not kept: %+v", c)
	}
	c := nodeCapacity(Config{}, log)
	if c.CPUMillicores != runtime.NumCPU()*1000 {
		t.Fatalf("cpu %d, want %d", c.CPUMillicores, runtime.NumCPU()*1000)
	}
	if _, err := os.Stat(meminfoPath); err == nil && c.MemoryMB <= 0 {
		t.Fatalf("memory not detected: %+v", c)
	}
}

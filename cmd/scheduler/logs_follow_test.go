package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// followLogs goes on after each broken stream from the last position shown,
// through the other replica first, and stops at the end frame.
func TestFollowLogsResumesWhereItWas(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	script := map[string][]api.LogFrame{
		"tail=all":               {{Generation: 7, Data: []byte("a\n"), Next: 2}},
		"since=2&generation=7":   {{Generation: 7, Next: 2}, {Data: []byte("b\n"), Next: 4}},
		"since=4&generation=7":   {}, // breaks before its first frame
		"since=4&generation=7#2": {{Generation: 7, Next: 4}, {Data: []byte("c\n"), Next: 6, End: true}},
	}
	seen := map[string]int{}
	handler := func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		key := "tail=" + q.Get("tail")
		if q.Get("since") != "" {
			key = "since=" + q.Get("since") + "&generation=" + q.Get("generation")
		}
		mu.Lock()
		asked = append(asked, r.Host+" "+key)
		seen[key]++
		if seen[key] == 2 {
			key += "#2"
		}
		mu.Unlock()
		if q.Get("follow") != "true" || q.Get("frames") != "true" {
			http.Error(w, "want follow and frames", 400)
			return
		}
		for _, f := range script[key] {
			b, _ := json.Marshal(f)
			w.Write(append(b, '\n'))
		}
	}
	a := httptest.NewServer(http.HandlerFunc(handler))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(handler))
	defer b.Close()
	c := &client{addrs: []string{strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://")}, http: api.NewHTTPClient("", 5*time.Second, nil), timeout: 5 * time.Second}
	var out bytes.Buffer
	_, errOut := capture(t, func() {
		if err := c.followLogs("w1", "all", &out); err != nil {
			t.Errorf("followLogs: %v", err)
		}
	})
	if out.String() != "a\nb\nc\n" {
		t.Errorf("printed %q, want a, b, c once each (asked %q)", out.String(), asked)
	}
	if strings.Count(errOut, "going on through the next replica") != 3 {
		t.Errorf("stderr:\n%s", errOut)
	}
	hosts := []string{}
	for _, x := range asked {
		hosts = append(hosts, strings.Fields(x)[0])
	}
	for i := 1; i < len(hosts); i++ {
		if hosts[i] == hosts[i-1] {
			t.Errorf("asked the same replica twice in a row: %q", asked)
		}
	}
}

// logs -f of a workload that is not placed yet (409) waits for it.
func TestFollowLogsWaitsForPlacement(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n <= 2 {
			api.WriteError(w, http.StatusConflict, "workload w1 has not been placed on a node yet")
			return
		}
		b, _ := json.Marshal(api.LogFrame{Generation: 1, Data: []byte("hello\n"), Next: 6, End: true})
		w.Write(append(b, '\n'))
	}))
	defer srv.Close()
	c := &client{addrs: []string{strings.TrimPrefix(srv.URL, "http://")}, http: api.NewHTTPClient("", 5*time.Second, nil), timeout: 5 * time.Second}
	var out bytes.Buffer
	if err := c.followLogs("w1", "100", &out); err != nil || out.String() != "hello\n" {
		t.Fatalf("followLogs: %v, printed %q", err, out.String())
	}
}

package agent

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// GET /workloads/{id}/logs?follow=true streams the output as it is written
// and ends when the instance does, even on a server whose read and write
// timeouts are far shorter than the follow.
func TestFollowLogsOverHTTP(t *testing.T) {
	ta := newTestAgent(t)
	srv := httptest.NewUnstartedServer(ta.handler)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()

	ta.mustStart(sh("ticker", "echo before; sleep 0.3; i=0; while [ $i -lt 15 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done", 1, 1))
	waitFor(t, 5*time.Second, "the first line", func() bool {
		code, out, _ := ta.do(http.MethodGet, "/workloads/ticker/logs?tail=all", testToken, nil)
		return code == http.StatusOK && string(out) == "before\n"
	})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/workloads/ticker/logs?follow=true&tail=1", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	began := time.Now()
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	var firstTick time.Duration
	for sc.Scan() {
		if len(lines) == 1 {
			firstTick = time.Since(began)
		}
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("the stream broke after %s: %v (lines %q)", time.Since(began), err, lines)
	}
	want := []string{"before"}
	for i := range 15 {
		want = append(want, fmt.Sprintf("tick %d", i))
	}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Fatalf("followed %q, want %q", lines, want)
	}
	if total := time.Since(began); firstTick > total/2 {
		t.Errorf("the first tick came after %s of %s: not as it was written", firstTick, total)
	}

	// An unknown workload is a 404; a bad tail a 400.
	if code, _, _ := ta.do(http.MethodGet, "/workloads/nosuch/logs?follow=true", testToken, nil); code != http.StatusNotFound {
		t.Errorf("unknown workload: %d", code)
	}
	if code, _, _ := ta.do(http.MethodGet, "/workloads/ticker/logs?follow=true&tail=-1", testToken, nil); code != http.StatusBadRequest {
		t.Errorf("tail=-1: %d", code)
	}
}

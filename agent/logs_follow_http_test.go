package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
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

// In frames form a follow can be resumed at any frame's position and gets
// exactly the rest, and one for an instance that no longer runs ends at once.
func TestFollowLogFramesResume(t *testing.T) {
	ta := newTestAgent(t)
	ta.mustStart(sh("counter", "i=0; while [ $i -lt 20 ]; do echo line $i; i=$((i+1)); sleep 0.05; done", 3, 1))
	frames := func(query string) []api.LogFrame {
		t.Helper()
		code, out, _ := ta.do(http.MethodGet, "/workloads/counter/logs?follow=true&frames=true&"+query, testToken, nil)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", query, code, out)
		}
		var fs []api.LogFrame
		dec := json.NewDecoder(bytes.NewReader(out))
		for dec.More() {
			var f api.LogFrame
			if err := dec.Decode(&f); err != nil {
				t.Fatalf("%s: %v in %q", query, err, out)
			}
			fs = append(fs, f)
		}
		return fs
	}
	all := frames("tail=all") // ends with the instance
	var text []byte
	for _, f := range all {
		text = append(text, f.Data...)
	}
	want := ""
	for i := range 20 {
		want += fmt.Sprintf("line %d\n", i)
	}
	if string(text) != want || !all[len(all)-1].End || all[0].Generation != 3 {
		t.Fatalf("frames %+v: text %q", all, text)
	}
	// Resume after the first frame that carried data: the rest, exactly.
	var cut api.LogFrame
	var before []byte
	for _, f := range all {
		before = append(before, f.Data...)
		if len(f.Data) > 0 && len(before) < len(want) {
			cut = f
			break
		}
	}
	var rest []byte
	for _, f := range frames(fmt.Sprintf("since=%d&generation=3", cut.Next)) {
		rest = append(rest, f.Data...)
	}
	if string(before)+string(rest) != want {
		t.Fatalf("resumed at %d: %q + %q", cut.Next, before, rest)
	}
	// Another generation: a single end frame.
	if fs := frames("since=0&generation=2"); len(fs) != 1 || !fs[0].End || len(fs[0].Data) > 0 {
		t.Fatalf("other generation: %+v", fs)
	}
	if code, _, _ := ta.do(http.MethodGet, "/workloads/counter/logs?follow=true&since=5", testToken, nil); code != http.StatusBadRequest {
		t.Errorf("since without frames: %d", code)
	}
}

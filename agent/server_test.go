package agent

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/micro-orchestrator/mo/api"
)

func TestEveryEndpointRequiresTheToken(t *testing.T) {
	ta := newTestAgent(t)
	body, _ := json.Marshal(api.StartRequest{ID: "w", Command: "sleep", Args: []string{"600"}, Generation: 1, Term: 1})
	endpoints := []struct {
		method, path string
		body         []byte
	}{
		{http.MethodGet, "/status", nil},
		{http.MethodPost, "/workloads", body},
		{http.MethodDelete, "/workloads/w?term=1&generation=1", nil},
		{http.MethodGet, "/workloads/w/logs", nil},
		{http.MethodGet, "/metrics", nil},
		{http.MethodGet, "/no/such/route", nil},
		{http.MethodPut, "/status", nil},
	}
	for _, e := range endpoints {
		for _, tok := range []string{"", "wrong-token", testToken + "x", strings.ToUpper(testToken)} {
			code, out, h := ta.do(e.method, e.path, tok, e.body)
			if code != http.StatusUnauthorized || !strings.Contains(string(out), `"error"`) || h.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with token %q: %d %s, want 401 JSON", e.method, e.path, tok, code, out)
			}
		}
	}
	// Not "Bearer": the token alone or another scheme.
	for _, hdr := range []string{testToken, "Basic " + testToken, "bearer " + testToken} {
		req, _ := http.NewRequest(http.MethodGet, ta.url+"/status", nil)
		req.Header.Set("Authorization", hdr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", hdr, resp.StatusCode)
		}
	}
	if n := len(ta.status().Workloads); n != 0 {
		t.Errorf("unauthorized requests left %d instances", n)
	}
}

func TestBadStartBodiesStartNothing(t *testing.T) {
	ta := newTestAgent(t)
	cases := map[string]string{
		"empty":           ``,
		"malformed":       `{"id":"w","command":"sleep"`,
		"not an object":   `["sleep"]`,
		"unknown field":   `{"id":"w","command":"sleep","args":["600"],"shell":true}`,
		"wrong type":      `{"id":"w","command":"sleep","args":"600"}`,
		"negative gen":    `{"id":"w","command":"sleep","generation":-1}`,
		"trailing data":   `{"id":"w","command":"sleep","args":["600"]} {"id":"x"}`,
		"missing id":      `{"command":"sleep","args":["600"]}`,
		"missing command": `{"id":"w","args":["600"]}`,
		"id with slash":   `{"id":"../etc","command":"sleep","args":["600"]}`,
		"dot id":          `{"id":".hidden","command":"sleep","args":["600"]}`,
		"id with space":   `{"id":"a b","command":"sleep","args":["600"]}`,
		"NUL in arg":      `{"id":"w","command":"sleep","args":["6\u000000"]}`,
		"bad env name":    `{"id":"w","command":"sleep","args":["600"],"env":{"A=B":"c"}}`,
		"empty env name":  `{"id":"w","command":"sleep","args":["600"],"env":{"":"c"}}`,
	}
	for name, body := range cases {
		code, out, h := ta.do(http.MethodPost, "/workloads", testToken, []byte(body))
		var e api.Error
		if code != http.StatusBadRequest || json.Unmarshal(out, &e) != nil || e.Error == "" || h.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want 400 with a JSON error", name, code, out)
		}
	}
	if n := len(ta.status().Workloads); n != 0 {
		t.Errorf("bad bodies left %d instances", n)
	}
}

func TestBodyOverOneMiBIs413(t *testing.T) {
	ta := newTestAgent(t)
	big := strings.Repeat("x", api.MaxBodyBytes)
	body, _ := json.Marshal(api.StartRequest{ID: "big", Command: "echo", Args: []string{big}, Generation: 1, Term: 1})
	code, out, _ := ta.do(http.MethodPost, "/workloads", testToken, body)
	if code != http.StatusRequestEntityTooLarge || !bytes.Contains(out, []byte(`"error"`)) {
		t.Errorf("%d %s, want 413 JSON", code, out)
	}
	if _, ok := ta.instance("big"); ok {
		t.Error("an oversized request started something")
	}
}

func TestUnknownRoutesAndMethods(t *testing.T) {
	ta := newTestAgent(t)
	for _, c := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodGet, "/status/", http.StatusNotFound, ""},
		{http.MethodGet, "/workloads/w/logs/x", http.StatusNotFound, ""},
		{http.MethodGet, "/metrics/x", http.StatusNotFound, ""},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed, "GET"},
		{http.MethodPost, "/status", http.StatusMethodNotAllowed, "GET"},
		{http.MethodOptions, "/status", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/workloads", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/workloads/w", http.StatusMethodNotAllowed, "DELETE"},
	} {
		code, out, h := ta.do(c.method, c.path, testToken, nil)
		var e api.Error
		if code != c.code || json.Unmarshal(out, &e) != nil || e.Error == "" || h.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s, want %d JSON", c.method, c.path, code, out, c.code)
		}
		if h.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, h.Get("Allow"), c.allow)
		}
	}
}

func TestStopRequestErrors(t *testing.T) {
	ta := newTestAgent(t)
	for _, q := range []string{"", "?term=1", "?generation=1", "?term=x&generation=1", "?term=1&generation=-1"} {
		if code, out, _ := ta.do(http.MethodDelete, "/workloads/w"+q, testToken, nil); code != http.StatusBadRequest {
			t.Errorf("DELETE /workloads/w%s: %d %s, want 400", q, code, out)
		}
	}
	if code, _, msg := ta.stop("unknown", 0, 1); code != http.StatusNotFound || msg == "" {
		t.Errorf("stop of unknown id: %d %q, want 404", code, msg)
	}
}

func TestStatusShape(t *testing.T) {
	ta := newTestAgent(t)
	code, out, h := ta.do(http.MethodGet, "/status", testToken, nil)
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", code, h.Get("Content-Type"))
	}
	// The contract's field names, and an empty list rather than null.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"node_id", "cpu_usage", "memory_usage", "workloads"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("field %s missing from %s", k, out)
		}
	}
	if string(raw["workloads"]) != "[]" || string(raw["node_id"]) != `"n1"` {
		t.Errorf("status %s", out)
	}
	ta.agent.status.setUsage(12.345, 150)
	if st := ta.agent.status.Status(); st.CPUUsage != 12.3 || st.MemoryUsage != 100 {
		t.Errorf("usage %v %v, want 12.3 and 100 (rounded, clamped)", st.CPUUsage, st.MemoryUsage)
	}
}

package fsm_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/micro-orchestrator/mo/fsm"
)

func TestParseStateRejects(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", goldenV1))
	if err != nil {
		t.Fatal(err)
	}
	g := string(golden)
	cases := []struct {
		name, data     string
		unknownVersion bool
	}{
		{name: "empty", data: ""},
		{name: "truncated", data: g[:len(g)/2]},
		{name: "corrupt json", data: `{"version":1,"nodes":{]}`},
		{name: "not an object", data: `[1,2,3]`},
		{name: "null", data: `null`},
		{name: "missing version", data: `{"last_seq":1,"nodes":{},"workloads":{}}`},
		{name: "null version", data: `{"version":null}`},
		{name: "string version", data: `{"version":"1"}`},
		{name: "unknown version 2", data: `{"version":2,"nodes":{}}`, unknownVersion: true},
		{name: "unknown version 0", data: `{"version":0}`, unknownVersion: true},
		{name: "golden with version 2", data: strings.Replace(g, `"version": 1`, `"version": 2`, 1), unknownVersion: true},
		{name: "wrong field type", data: `{"version":1,"nodes":[]}`},
		{name: "workload key and id differ", data: `{"version":1,"workloads":{"w1":{"id":"w2","command":"c"}}}`},
		{name: "workload key and empty id", data: `{"version":1,"workloads":{"w1":{"command":"c"}}}`},
		{name: "null workload", data: `{"version":1,"workloads":{"w1":null}}`},
		{name: "workload without command", data: `{"version":1,"workloads":{"w1":{"id":"w1"}}}`},
		{name: "node key and id differ", data: `{"version":1,"nodes":{"n1":{"id":"n2"}}}`},
		{name: "null node", data: `{"version":1,"nodes":{"n1":null}}`},
		{name: "queue names unknown workload", data: `{"version":1,"workloads":{"w1":{"id":"w1","command":"c"}},"recovery_queue":[{"workload_id":"w2"}]}`},
		{name: "golden with a bad queue entry", data: strings.Replace(g, `"workload_id": "workload_1705311045_0"`, `"workload_id": "workload_1705311045_9"`, 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.data == g {
				t.Fatal("test case did not alter the golden file")
			}
			st, err := fsm.ParseState([]byte(tc.data))
			if err == nil {
				t.Fatalf("ParseState accepted it: %#v", st)
			}
			if st != nil {
				t.Errorf("ParseState returned a state with its error")
			}
			if got := errors.Is(err, fsm.ErrUnknownVersion); got != tc.unknownVersion {
				t.Fatalf("errors.Is(%q, ErrUnknownVersion) = %v, want %v", err, got, tc.unknownVersion)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
		})
	}
}

func TestParseStateUnknownVersionMessage(t *testing.T) {
	_, err := fsm.ParseState([]byte(`{"version":7}`))
	// The operator must see which version the file has and which one this build reads.
	if err == nil || !strings.Contains(err.Error(), "7") || !strings.Contains(err.Error(), "1") {
		t.Fatalf("error %v should name both versions", err)
	}
}

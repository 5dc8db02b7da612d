package fsm_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/micro-orchestrator/mo/fsm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const goldenV1 = "state_v1.golden.json"

// TestStateFileGolden pins the state-file format (version 1). A change to the
// JSON that FSM.Snapshot and the state file write is a format change: it must
// either keep old files readable or bump StateVersion. Rewrite the file with
//
//	go test ./fsm -run TestStateFileGolden -update
//
// and review the diff.
func TestStateFileGolden(t *testing.T) {
	got := export(t, fixtureFSM(t))
	path := filepath.Join("testdata", goldenV1)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("state file differs from %s (run with -update if the change is intended):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestStateFileGoldenReadsBack checks that the checked-in file is accepted by
// this build and written back byte for byte, and restores into an FSM.
func TestStateFileGoldenReadsBack(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("testdata", goldenV1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(want, []byte("{\n  \"version\": 1,\n")) {
		t.Fatalf("golden file does not start with the version field:\n%s", want)
	}
	var generic map[string]any
	if err := json.Unmarshal(want, &generic); err != nil {
		t.Fatalf("golden file is not JSON: %v", err)
	}
	for _, k := range []string{"version", "last_seq", "nodes", "workloads", "recovery_queue", "replicas"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("golden file has no top-level %q", k)
		}
	}
	st, err := fsm.ParseState(want)
	if err != nil {
		t.Fatalf("ParseState(golden): %v", err)
	}
	again, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, want) {
		t.Fatalf("golden file does not marshal back identically:\n%s", again)
	}
	f := fsm.New()
	if _, err := restore(f, want); err != nil {
		t.Fatalf("Restore(golden): %v", err)
	}
	if got := export(t, f); !bytes.Equal(got, want) {
		t.Fatalf("Restore(golden) then Export differs:\n%s", got)
	}
}

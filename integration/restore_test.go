package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// scheduler backup FILE saves the state; serve --restore FILE seeds a new
// cluster from it; a corrupt or unknown-version file is refused and nothing
// is overwritten.
func TestBackupAndRestore(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	ids, err := tc.submit(tc.replicas[0].http, api.SubmitRequest{Name: "saved", Command: "sleep", Args: []string{"600"}, Count: intp(3)})
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(tc.dir, "backup.json")
	out, errOut, code := tc.cli("backup", "--addr", tc.followers()[0].http, backup)
	if code != 0 || !strings.Contains(out, "3 workloads") {
		t.Fatalf("backup: exit %d %s %s", code, out, errOut)
	}
	fi, err := os.Stat(backup)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	saved, _ := os.ReadFile(backup)

	// A corrupt file and an unknown version are refused before anything starts.
	corrupt := filepath.Join(tc.dir, "corrupt.json")
	os.WriteFile(corrupt, []byte(`{"version":1,"workloads":{`), 0o600)
	future := filepath.Join(tc.dir, "future.json")
	os.WriteFile(future, bytes.Replace(saved, []byte(`"version": 1`), []byte(`"version": 99`), 1), 0o600)
	for file, want := range map[string]string{corrupt: "corrupt", future: "unknown state file version"} {
		data := filepath.Join(tc.dir, "refused-"+filepath.Base(file))
		cmd := exec.Command(filepath.Join(binDir, "scheduler"), "serve", "--id", "r1", "--http", addr(freePort(t)), "--raft", addr(freePort(t)),
			"--data", data, "--token", tc.token, "--restore", file)
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), want) {
			t.Fatalf("--restore %s: want an error mentioning %q, got %v: %s", filepath.Base(file), want, err, b)
		}
		if _, err := os.Stat(filepath.Join(data, "raft")); err == nil {
			t.Fatalf("--restore of a bad file created raft state")
		}
	}
	// --restore onto a data dir that holds state is refused, and the state stays.
	r0 := tc.replicas[0]
	r0.proc.term(15 * time.Second)
	cmd := exec.Command(filepath.Join(binDir, "scheduler"), "serve", "--id", r0.id, "--http", addr(freePort(t)), "--raft", addr(freePort(t)),
		"--data", r0.data, "--token", tc.token, "--restore", backup)
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "refusing to overwrite") {
		t.Fatalf("--restore onto existing state: %v %s", err, b)
	}

	// A fresh single replica seeded from the backup serves the same workloads.
	fresh := newTestCluster(t, "--restore", backup)
	fresh.startReplicas(1)
	waitFor(t, 20*time.Second, "restored workloads", func() bool {
		var list api.WorkloadList
		if fresh.c.getJSON(fresh.replicas[0].http, "/workloads", &list) != nil {
			return false
		}
		got := map[string]bool{}
		for _, w := range list.Workloads {
			got[w.ID] = true
		}
		for _, id := range ids {
			if !got[id] {
				return false
			}
		}
		return true
	})
	// New IDs do not collide with restored ones.
	newIDs, err := fresh.submit(fresh.replicas[0].http, api.SubmitRequest{Name: "new", Command: "true"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if id == newIDs[0] {
			t.Fatalf("new id %s collides with a restored one", id)
		}
	}
}

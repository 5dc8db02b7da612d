package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// oneOfEach returns one fully populated command of every type, with the type
// byte each must carry in the raft log (the numbers are stored: never reuse).
func oneOfEach() []struct {
	cmd  fsm.Command
	want byte
} {
	code := 3
	st := fsm.NewState()
	st.LastSeq = 7
	st.Nodes["n1"] = &api.Node{ID: "n1", Address: "a:1", Status: api.NodeDegraded, RegisteredAt: at(1), UpdatedAt: at(2)}
	st.Workloads[w0] = &api.Workload{ID: w0, Name: "x", Command: "c", Args: []string{"a"}, Env: map[string]string{"K": "V"}, Node: "n1",
		State: api.StateFailed, Attempts: 1, Generation: 2, ExitCode: &code, Reason: "r", CreatedAt: at(0), UpdatedAt: at(3),
		History: []api.Placement{{Node: "n1", Generation: 2, Term: 4, At: at(3)}}}
	st.RecoveryQueue = []fsm.QueueEntry{{WorkloadID: w0, Since: at(3), Reason: "r"}}
	st.Replicas["s1"] = "h:1"
	st.Jobs["web"] = &fsm.Job{Name: "web", Version: 1, Count: 2, FileCount: 3, Modify: 4, CreatedAt: at(0), UpdatedAt: at(1),
		Versions:   []api.JobVersion{{Version: 1, Spec: jobSpec("web", "a", 3), SubmittedAt: at(1), Deployment: api.DeploymentRunning}},
		Deployment: &api.Deployment{Version: 1, Status: api.DeploymentRunning, Desired: 2, StartedAt: at(1), Counted: []string{w0}, Healthy: 1}}
	return []struct {
		cmd  fsm.Command
		want byte
	}{
		{&fsm.SubmitWorkloads{At: at(0), Seq: 5, Workloads: []api.Workload{{ID: w0, Name: "n", Command: "c", Args: []string{"x", "y"}, Env: map[string]string{"A": "B"},
			Spec: lifecycleSpec()}}}, 1},
		{&fsm.StopWorkload{At: at(1), ID: w0}, 2},
		{&fsm.RegisterNode{At: at(2), ID: "n1", Address: "127.0.0.1:8080", Capacity: &api.Capacity{CPUMillicores: 4000, MemoryMB: 8192}}, 3},
		{&fsm.SetNodeStatus{At: at(3), Changes: []fsm.NodeStatusChange{{ID: "n1", Status: api.NodeOffline, Evict: true}, {ID: "n2", Status: api.NodeOnline}}}, 4},
		{&fsm.EnqueueRecovery{At: at(4), MaxAttempts: 3, Requests: []fsm.RecoveryRequest{{ID: w0, Reason: "exited", CountAttempt: true}}}, 5},
		{&fsm.PlaceWorkloads{At: at(5), Placements: []fsm.Placement{{ID: w0, Node: "n2", Generation: 9, Term: 3}}}, 6},
		{&fsm.RecordOutcomes{At: at(6), MaxAttempts: 3, Outcomes: []fsm.Outcome{{ID: w0, Generation: 9, Running: true, PID: 12}, {ID: w1, Generation: 1, ExitCode: &code, Reason: "r"}, {ID: w1, Generation: 2, ExitCode: &code, Completed: true}}}, 7},
		{&fsm.SetReplica{ID: "s1", HTTP: "127.0.0.1:7001"}, 8},
		{&fsm.RemoveReplica{ID: "s1"}, 9},
		{&fsm.LoadState{State: st}, 10},
		{&fsm.SetAlerts{Alerts: []api.Alert{{Name: "NodeOffline", Severity: "critical", Subject: "n1", Summary: "s", Value: 1, Since: at(7), Node: "n1"}}}, 11},
		{&fsm.UpdateInstances{Reports: []fsm.InstanceReport{{ID: w0, Generation: 9, Health: api.HealthHealthy, Restarts: 2, Ports: map[string]int{"http": 20001}}}}, 12},
		{&fsm.SetWaitReasons{Reasons: []fsm.WaitReason{{ID: w1, Reason: "no node has 2000 millicores free (n2 has 1500)"}}}, 13},
		{&fsm.RegisterJob{At: at(7), Spec: jobSpec("web", "a", 3), Count: 5, Exists: true, Modify: 4, NewVersion: true, RevertOf: new(uint64)}, 14},
		{&fsm.ScaleJob{At: at(8), Name: "web", Count: 5}, 15},
		{&fsm.StopJob{At: at(9), Name: "web"}, 16},
		{&fsm.JobStep{At: at(10), Seq: 9, Name: "web", Modify: 5, Create: []string{w1}, Stop: []fsm.InstanceStop{{ID: w0, Reason: "replaced by version 1"}},
			Relabel: []string{"workload_1705311045_3"}, Counted: []string{w1}, Status: api.DeploymentFailed, Description: "d", Revert: true, RevertTo: 0}, 17},
		{&fsm.SetEligibility{At: at(11), ID: "n1", Eligible: true}, 18},
		{&fsm.SetDrain{At: at(12), ID: "n1", Enable: true, Deadline: at(3600)}, 19},
		{&fsm.PurgeNode{ID: "n1"}, 20},
		{&fsm.NodeRestarting{At: at(13), ID: "n1", Until: at(23)}, 21},
		{&fsm.CollectGarbage{WorkloadsBefore: at(14), NodesBefore: at(1), Workloads: []string{w0}, Nodes: []string{"n2"}, Jobs: []string{"web"}}, 22},
		{&fsm.FinishMoves{At: at(15), Moves: []fsm.MoveRef{{ID: w0, Generation: 3, FromNode: "n1", FromGeneration: 2}}}, 23},
		{&fsm.AbandonMoves{At: at(16), Moves: []fsm.MoveRef{{ID: w0, Generation: 3, FromNode: "n1", FromGeneration: 2}}}, 24},
	}
}

func TestEncodeDecodeEveryCommand(t *testing.T) {
	seen := map[byte]bool{}
	for _, tc := range oneOfEach() {
		t.Run(fmt.Sprintf("%T", tc.cmd), func(t *testing.T) {
			if got := byte(tc.cmd.Type()); got != tc.want {
				t.Fatalf("Type() = %d, want %d (type numbers are stored in the log)", got, tc.want)
			}
			b := encode(t, tc.cmd)
			if b[0] != tc.want {
				t.Fatalf("encoded type byte = %d, want %d", b[0], tc.want)
			}
			got, err := fsm.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if l, ok := tc.cmd.(*fsm.LoadState); ok {
				if !got.(*fsm.LoadState).State.Equal(l.State) {
					t.Fatalf("Decode(Encode(c)) = %#v\nwant %#v", got, tc.cmd)
				}
			} else if !reflect.DeepEqual(got, tc.cmd) {
				t.Fatalf("Decode(Encode(c)) = %#v\nwant %#v", got, tc.cmd)
			}
			if again := encode(t, got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n%s\n%s", again, b)
			}
		})
		seen[tc.want] = true
	}
	if len(seen) != 24 {
		t.Fatalf("covered %d command types, want 24", len(seen))
	}
}

func TestDecodeRejectsBadEntries(t *testing.T) {
	bad := map[string][]byte{
		"empty":              {},
		"nil":                nil,
		"type zero":          append([]byte{0}, `{}`...),
		"unknown type 200":   append([]byte{200}, `{}`...),
		"unknown type 25":    append([]byte{25}, `{}`...),
		"type byte only":     {byte(fsm.CmdSubmitWorkloads)},
		"corrupt json":       append([]byte{byte(fsm.CmdSubmitWorkloads)}, `{"at":`...),
		"trailing garbage":   append([]byte{byte(fsm.CmdStopWorkload)}, `{"id":"x"} x`...),
		"wrong field type":   append([]byte{byte(fsm.CmdRegisterNode)}, `{"id":5}`...),
		"json array":         append([]byte{byte(fsm.CmdSetReplica)}, `["s1"]`...),
		"load state corrupt": append([]byte{byte(fsm.CmdLoadState)}, `{"state":{"version":"one"}}`...),
	}
	for name, data := range bad {
		t.Run(name, func(t *testing.T) {
			c, err := fsm.Decode(data)
			if err == nil {
				t.Fatalf("Decode accepted %q as %#v", data, c)
			}
			if !errors.Is(err, fsm.ErrInvalid) {
				t.Fatalf("Decode error %q does not wrap ErrInvalid", err)
			}
			if c != nil {
				t.Fatalf("Decode returned a command with its error: %#v", c)
			}

			f := fixtureFSM(t)
			before := export(t, f)
			err = applyLog(t, f, data)
			if !errors.Is(err, fsm.ErrInvalid) {
				t.Fatalf("Apply of a bad entry answered %v, want ErrInvalid", err)
			}
			if after := export(t, f); !bytes.Equal(before, after) {
				t.Fatalf("Apply of a bad entry changed the state:\n%s", after)
			}
		})
	}
}

// determinismLog is a long command log touching every command type, with
// enough workloads on one node that map iteration order would show.
func determinismLog(t *testing.T) [][]byte {
	t.Helper()
	many := ids("workload_1705311100", 40)
	cmds := fixtureCommands()
	cmds = append(cmds,
		register(20, "n3", "127.0.0.1:8082"),
		submit(21, 50, many...),
	)
	gen := uint64(1)
	for i, id := range many {
		cmds = append(cmds, place(22+i%3, id, "n3", gen), running(25, id, gen, 1000+i))
	}
	cmds = append(cmds,
		&fsm.EnqueueRecovery{At: at(30), MaxAttempts: 3, Requests: []fsm.RecoveryRequest{{ID: many[3], Reason: "exited", CountAttempt: true}, {ID: "ghost", Reason: "x"}}},
		setStatus(31, fsm.NodeStatusChange{ID: "n3", Status: api.NodeOffline, Evict: true}, fsm.NodeStatusChange{ID: "n2", Status: api.NodeDegraded}),
		place(32, w0, "n2", 2),
		failed(33, w0, 2, 3, "exit 1"),
		place(34, many[5], "n2", 2),
		running(35, many[5], 2, 55),
		&fsm.UpdateInstances{Reports: []fsm.InstanceReport{{ID: many[5], Generation: 2, Health: api.HealthHealthy, Restarts: 1, Ports: map[string]int{"http": 20001, "admin": 20002}}}},
		&fsm.SetWaitReasons{Reasons: []fsm.WaitReason{{ID: many[9], Reason: "node n3 offline; no node has 500 millicores free (n2 has 100)"}}},
		&fsm.RecordOutcomes{At: at(35), MaxAttempts: 3, Outcomes: []fsm.Outcome{{ID: many[5], Generation: 2, ExitCode: new(int), Completed: true}}},
		&fsm.RegisterNode{At: at(35), ID: "n4", Address: "127.0.0.1:8083", Capacity: &api.Capacity{CPUMillicores: 2000, MemoryMB: 1024}},
		&fsm.StopWorkload{At: at(36), ID: many[7]},
		&fsm.SetReplica{ID: "s2", HTTP: "127.0.0.1:7002"},
		&fsm.RemoveReplica{ID: "s1"},
		register(37, "n3", "127.0.0.1:9082"),
		setStatus(38, fsm.NodeStatusChange{ID: "n3", Status: api.NodeOnline}),
	)
	log := make([][]byte, len(cmds))
	for i, c := range cmds {
		b := encode(t, c)
		// Go through Decode and Encode once more: what raft stores is what
		// the leader encoded, and decoding must not lose anything.
		d, err := fsm.Decode(b)
		if err != nil {
			t.Fatalf("Decode %d: %v", i, err)
		}
		if again := encode(t, d); !bytes.Equal(again, b) {
			t.Fatalf("command %d does not survive Decode: %s vs %s", i, again, b)
		}
		log[i] = b
	}
	return log
}

func TestApplyIsDeterministic(t *testing.T) {
	log := determinismLog(t)
	var first []byte
	for run := 0; run < 5; run++ {
		f := fsm.New()
		for i, e := range log {
			if err := applyLog(t, f, e); err != nil {
				t.Fatalf("run %d entry %d: %v", run, i, err)
			}
		}
		got := export(t, f)
		if run == 0 {
			first = got
			// w0 plus the 40 evicted from n3, less one running again and one stopped.
			if n := len(queue(f)); n != 39 {
				t.Fatalf("recovery queue has %d entries, want 39", n)
			}
			continue
		}
		if !bytes.Equal(got, first) {
			t.Fatalf("run %d exported different bytes than run 0:\n%s\n---\n%s", run, got, first)
		}
	}
}

// TestSnapshotThenReplayMatches is how raft rebuilds a follower: restore a
// snapshot taken at some index, then apply the rest of the log.
func TestSnapshotThenReplayMatches(t *testing.T) {
	log := determinismLog(t)
	full := fsm.New()
	for _, e := range log {
		if err := applyLog(t, full, e); err != nil {
			t.Fatal(err)
		}
	}
	want := export(t, full)
	for _, cut := range []int{0, 1, len(log) / 2, len(log) - 3, len(log)} {
		src := fsm.New()
		for _, e := range log[:cut] {
			if err := applyLog(t, src, e); err != nil {
				t.Fatal(err)
			}
		}
		dst := fsm.New()
		if _, err := restore(dst, persist(t, src)); err != nil {
			t.Fatalf("cut %d: Restore: %v", cut, err)
		}
		for _, e := range log[cut:] {
			if err := applyLog(t, dst, e); err != nil {
				t.Fatal(err)
			}
		}
		if got := export(t, dst); !bytes.Equal(got, want) {
			t.Fatalf("snapshot at %d + replay differs from a full replay:\n%s\n---\n%s", cut, got, want)
		}
	}
}

package fsm_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// t0 is 2024-01-15T09:30:45Z, the Unix second 1705311045 that the fixture IDs carry.
var t0 = time.Date(2024, 1, 15, 9, 30, 45, 0, time.UTC)

// at returns t0 plus sec seconds.
func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

const (
	w0 = "workload_1705311045_0"
	w1 = "workload_1705311045_1"
)

// encode encodes c or fails the test.
func encode(tb testing.TB, c fsm.Command) []byte {
	tb.Helper()
	b, err := fsm.Encode(c)
	if err != nil {
		tb.Fatalf("Encode(%T): %v", c, err)
	}
	return b
}

// applyLog applies raw log data through raft's entry point and returns the
// error it answered (nil on success). Any other kind of answer fails the test.
func applyLog(tb testing.TB, f *fsm.FSM, data []byte) error {
	tb.Helper()
	resp := f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: data})
	if resp == nil {
		return nil
	}
	err, ok := resp.(error)
	if !ok {
		tb.Fatalf("Apply answered %T (%v), want nil or error", resp, resp)
	}
	if err == nil {
		tb.Fatalf("Apply answered a typed nil error")
	}
	return err
}

// applyCmd encodes c and applies it through FSM.Apply, like raft does.
func applyCmd(tb testing.TB, f *fsm.FSM, c fsm.Command) error {
	tb.Helper()
	return applyLog(tb, f, encode(tb, c))
}

// mustApply applies every command and fails the test on the first error.
func mustApply(tb testing.TB, f *fsm.FSM, cmds ...fsm.Command) {
	tb.Helper()
	for i, c := range cmds {
		if err := applyCmd(tb, f, c); err != nil {
			tb.Fatalf("command %d (%T): %v", i, c, err)
		}
	}
}

// export returns the state-file JSON of f.
func export(tb testing.TB, f *fsm.FSM) []byte {
	tb.Helper()
	b, err := f.Export()
	if err != nil {
		tb.Fatalf("Export: %v", err)
	}
	return b
}

// mustFail applies c, expects an error matching want, and checks that the
// state is byte-for-byte unchanged.
func mustFail(tb testing.TB, f *fsm.FSM, c fsm.Command, want error) {
	tb.Helper()
	before := export(tb, f)
	err := applyCmd(tb, f, c)
	if err == nil {
		tb.Fatalf("%T applied without error, want %v", c, want)
	}
	if !errors.Is(err, want) {
		tb.Fatalf("%T: error %q does not wrap %q", c, err, want)
	}
	if after := export(tb, f); !bytes.Equal(before, after) {
		tb.Fatalf("failed %T changed the state:\nbefore:\n%s\nafter:\n%s", c, before, after)
	}
}

// mustNoop applies c, expects success, and checks that nothing changed.
func mustNoop(tb testing.TB, f *fsm.FSM, c fsm.Command) {
	tb.Helper()
	before := export(tb, f)
	mustApply(tb, f, c)
	if after := export(tb, f); !bytes.Equal(before, after) {
		tb.Fatalf("%T should change nothing:\nbefore:\n%s\nafter:\n%s", c, before, after)
	}
}

// getWorkload returns a copy of workload id; it fails the test if absent.
func getWorkload(tb testing.TB, f *fsm.FSM, id string) api.Workload {
	tb.Helper()
	var w *api.Workload
	f.Read(func(s *fsm.State) {
		if x, ok := s.Workloads[id]; ok {
			w = fsm.CopyWorkload(x)
		}
	})
	if w == nil {
		tb.Fatalf("workload %s not in state", id)
	}
	return *w
}

// getNode returns a copy of node id; it fails the test if absent.
func getNode(tb testing.TB, f *fsm.FSM, id string) api.Node {
	tb.Helper()
	var n *api.Node
	f.Read(func(s *fsm.State) {
		if x, ok := s.Nodes[id]; ok {
			c := *x
			n = &c
		}
	})
	if n == nil {
		tb.Fatalf("node %s not in state", id)
	}
	return *n
}

// queue returns the workload IDs of the recovery queue, in order.
func queue(f *fsm.FSM) []string {
	ids := []string{}
	f.Read(func(s *fsm.State) {
		for _, q := range s.RecoveryQueue {
			ids = append(ids, q.WorkloadID)
		}
	})
	return ids
}

func wantQueue(tb testing.TB, f *fsm.FSM, want ...string) {
	tb.Helper()
	if want == nil {
		want = []string{}
	}
	if got := queue(f); !reflect.DeepEqual(got, want) {
		tb.Fatalf("recovery queue = %v, want %v", got, want)
	}
}

func wantState(tb testing.TB, w api.Workload, state string) {
	tb.Helper()
	if w.State != state {
		tb.Fatalf("workload %s state = %q, want %q (reason %q)", w.ID, w.State, state, w.Reason)
	}
}

// spec returns a workload spec as the leader would submit it.
func spec(id string) api.Workload {
	return api.Workload{ID: id, Name: "job", Command: "/bin/sleep", Args: []string{"60"}}
}

func submit(sec int, seq uint64, ids ...string) *fsm.SubmitWorkloads {
	c := &fsm.SubmitWorkloads{At: at(sec), Seq: seq}
	for _, id := range ids {
		c.Workloads = append(c.Workloads, spec(id))
	}
	return c
}

func register(sec int, id, addr string) *fsm.RegisterNode {
	return &fsm.RegisterNode{At: at(sec), ID: id, Address: addr}
}

func place(sec int, id, node string, gen uint64) *fsm.PlaceWorkloads {
	return &fsm.PlaceWorkloads{At: at(sec), Placements: []fsm.Placement{{ID: id, Node: node, Generation: gen, Term: 1}}}
}

func running(sec int, id string, gen uint64, pid int) *fsm.RecordOutcomes {
	return &fsm.RecordOutcomes{At: at(sec), MaxAttempts: 3, Outcomes: []fsm.Outcome{{ID: id, Generation: gen, Running: true, PID: pid}}}
}

func failed(sec int, id string, gen uint64, maxAttempts int, reason string) *fsm.RecordOutcomes {
	code := 1
	return &fsm.RecordOutcomes{At: at(sec), MaxAttempts: maxAttempts, Outcomes: []fsm.Outcome{{ID: id, Generation: gen, ExitCode: &code, Reason: reason}}}
}

func setStatus(sec int, changes ...fsm.NodeStatusChange) *fsm.SetNodeStatus {
	return &fsm.SetNodeStatus{At: at(sec), Changes: changes}
}

// fixtureCommands is the fixed command sequence behind the golden state file:
// two submitted workloads, two nodes, one placement that starts running, the
// node going offline with eviction, and a replica address.
func fixtureCommands() []fsm.Command {
	return []fsm.Command{
		&fsm.SubmitWorkloads{At: t0, Seq: 2, Workloads: []api.Workload{
			{ID: w0, Name: "web", Command: "python3", Args: []string{"-m", "http.server", "8000"}, Env: map[string]string{"PORT": "8000", "MODE": "prod"}},
			{ID: w1, Name: "worker", Command: "/bin/sh", Args: []string{"-c", "sleep 3600"}},
		}},
		register(1, "n1", "127.0.0.1:8080"),
		register(2, "n2", "127.0.0.1:8081"),
		&fsm.PlaceWorkloads{At: at(3), Placements: []fsm.Placement{{ID: w0, Node: "n1", Generation: 1, Term: 2}}},
		&fsm.RecordOutcomes{At: at(4), MaxAttempts: 3, Outcomes: []fsm.Outcome{{ID: w0, Generation: 1, Running: true, PID: 4242}}},
		setStatus(10, fsm.NodeStatusChange{ID: "n1", Status: api.NodeOffline, Evict: true}),
		&fsm.SetReplica{ID: "s1", HTTP: "127.0.0.1:7001"},
	}
}

// fixtureFSM returns an FSM with the fixture applied through FSM.Apply.
func fixtureFSM(tb testing.TB) *fsm.FSM {
	tb.Helper()
	f := fsm.New()
	mustApply(tb, f, fixtureCommands()...)
	return f
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	writeErr  error
	closed    int
	cancelled int
}

func (s *memSink) Write(p []byte) (int, error) {
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	return s.Buffer.Write(p)
}
func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed++; return nil }
func (s *memSink) Cancel() error { s.cancelled++; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// persist takes a snapshot of f and persists it into memory.
func persist(tb testing.TB, f *fsm.FSM) []byte {
	tb.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		tb.Fatalf("Persist: %v", err)
	}
	if sink.closed != 1 || sink.cancelled != 0 {
		tb.Fatalf("Persist: sink closed %d times, cancelled %d times; want 1 and 0", sink.closed, sink.cancelled)
	}
	return sink.Bytes()
}

// closeTracker is the io.ReadCloser handed to Restore.
type closeTracker struct {
	*bytes.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

// restore feeds b to f.Restore and reports whether Restore closed its reader.
func restore(f *fsm.FSM, b []byte) (closed bool, err error) {
	rc := &closeTracker{Reader: bytes.NewReader(b)}
	err = f.Restore(rc)
	return rc.closed, err
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s_%d", prefix, i)
	}
	return out
}

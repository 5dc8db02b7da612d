package fsm_test

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// BenchmarkApplySubmit measures raft's path for one submission: Decode and
// apply of an encoded SubmitWorkloads with one workload, into a growing state.
func BenchmarkApplySubmit(b *testing.B) {
	entries := make([][]byte, b.N)
	for i := range entries {
		c := &fsm.SubmitWorkloads{At: at(i), Seq: uint64(i + 1), Workloads: []api.Workload{{
			ID: fmt.Sprintf("workload_1705311045_%d", i), Name: "web", Command: "python3",
			Args: []string{"-m", "http.server"}, Env: map[string]string{"PORT": "8000"},
		}}}
		entries[i] = encode(b, c)
	}
	f := fsm.New()
	l := &raft.Log{Type: raft.LogCommand}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Index, l.Data = uint64(i+1), entries[i]
		if resp := f.Apply(l); resp != nil {
			b.Fatal(resp)
		}
	}
}

// bigFSM has 1000 nodes and 5000 workloads: most running, some failed and
// queued, some stopped, each with a placement history.
func bigFSM(tb testing.TB) *fsm.FSM {
	const nodes, workloads = 1000, 5000
	f := fsm.New()
	for n := 0; n < nodes; n++ {
		if err := f.ApplyCommand(register(0, fmt.Sprintf("node-%04d", n), fmt.Sprintf("10.0.%d.%d:8080", n/250, n%250))); err != nil {
			tb.Fatal(err)
		}
	}
	sub := &fsm.SubmitWorkloads{At: at(1), Seq: workloads}
	place := &fsm.PlaceWorkloads{At: at(2)}
	out := &fsm.RecordOutcomes{At: at(3), MaxAttempts: 3}
	code := 1
	for i := 0; i < workloads; i++ {
		id := fmt.Sprintf("workload_1705311045_%d", i)
		sub.Workloads = append(sub.Workloads, api.Workload{ID: id, Name: "job", Command: "/usr/bin/worker", Args: []string{"--id", id}, Env: map[string]string{"SHARD": fmt.Sprint(i % 16)}})
		place.Placements = append(place.Placements, fsm.Placement{ID: id, Node: fmt.Sprintf("node-%04d", i%nodes), Generation: 1, Term: 1})
		if i%10 == 0 {
			out.Outcomes = append(out.Outcomes, fsm.Outcome{ID: id, Generation: 1, ExitCode: &code, Reason: "exit status 1"})
		} else {
			out.Outcomes = append(out.Outcomes, fsm.Outcome{ID: id, Generation: 1, Running: true, PID: 1000 + i})
		}
	}
	stop := &fsm.StopWorkload{At: at(4), ID: "workload_1705311045_7"}
	for _, c := range []fsm.Command{sub, place, out, stop, &fsm.SetReplica{ID: "s1", HTTP: "10.1.0.1:7001"}} {
		if err := f.ApplyCommand(c); err != nil {
			tb.Fatal(err)
		}
	}
	var nn, nw, nq int
	f.Read(func(s *fsm.State) { nn, nw, nq = len(s.Nodes), len(s.Workloads), len(s.RecoveryQueue) })
	if nn != nodes || nw != workloads || nq != workloads/10 {
		tb.Fatalf("big state has %d nodes, %d workloads, %d queued", nn, nw, nq)
	}
	return f
}

// BenchmarkSnapshot1000 measures what raft does for a snapshot of a state
// with 1000 nodes and 5000 workloads: Snapshot (the deep copy under the read
// lock) and Persist (marshalling into the sink).
func BenchmarkSnapshot1000(b *testing.B) {
	f := bigFSM(b)
	sink := &memSink{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sink.Reset()
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		if err := snap.Persist(sink); err != nil {
			b.Fatal(err)
		}
		snap.Release()
	}
	b.SetBytes(int64(sink.Len()))
}

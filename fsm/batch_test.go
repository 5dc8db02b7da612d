package fsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/micro-orchestrator/mo/fsm"
)

// A batch applies like its entries one by one: the same state, the same
// answers (a refused entry answers its error and changes nothing), and a
// configuration entry answers nil.
func TestApplyBatchMatchesApply(t *testing.T) {
	cmds := append(fixtureCommands(),
		submit(20, 9, "workload_1705311045_0"), // a duplicate id: refused
		submit(21, 10, "workload_1705311045_9"),
	)
	one := fsm.New()
	var want []error
	for _, c := range cmds {
		want = append(want, applyCmd(t, one, c))
	}
	if w := want[len(want)-2]; !errors.Is(w, fsm.ErrConflict) {
		t.Fatalf("the duplicate submission applied one by one: %v, want a conflict", w)
	}
	logs := []*raft.Log{{Type: raft.LogConfiguration, Data: []byte("not a command")}}
	for _, c := range cmds {
		logs = append(logs, &raft.Log{Type: raft.LogCommand, Data: encode(t, c)})
	}
	logs = append(logs, &raft.Log{Type: raft.LogCommand, Data: []byte{0xff}})
	batch := fsm.New()
	got := batch.ApplyBatch(logs)
	if len(got) != len(logs) {
		t.Fatalf("%d answers for %d entries", len(got), len(logs))
	}
	if got[0] != nil {
		t.Fatalf("configuration entry answered %v", got[0])
	}
	for i, w := range want {
		g, _ := got[i+1].(error)
		if (g == nil) != (w == nil) || (w != nil && !errors.Is(g, fsm.ErrConflict)) {
			t.Fatalf("entry %d: batch answered %v, one by one %v", i, got[i+1], w)
		}
	}
	if _, ok := got[len(got)-1].(error); !ok {
		t.Fatalf("an undecodable entry answered %v, want an error", got[len(got)-1])
	}
	if a, b := export(t, one), export(t, batch); !bytes.Equal(a, b) {
		t.Fatalf("states differ:\n%s\n%s", a, b)
	}
}

package fsm_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/micro-orchestrator/mo/fsm"
)

// sameState fails the test unless a and b hold deeply equal states.
func sameState(t *testing.T, a, b *fsm.FSM) {
	t.Helper()
	a.Read(func(sa *fsm.State) {
		b.Read(func(sb *fsm.State) {
			if !sa.Equal(sb) {
				t.Errorf("states differ:\n%#v\n%#v", sa, sb)
			}
		})
	})
}

// richFSM is the fixture plus a workload with an exit code, attempts and a
// longer history, so that every field of the format is exercised.
func richFSM(t *testing.T) *fsm.FSM {
	t.Helper()
	f := fixtureFSM(t)
	mustApply(t, f,
		place(11, w1, "n2", 1),
		failed(12, w1, 1, 3, "exit status 1"),
		place(13, w1, "n2", 2),
		&fsm.SetReplica{ID: "s2", HTTP: "127.0.0.1:7002"},
	)
	return f
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := richFSM(t)
	want := export(t, src)

	data := persist(t, src)
	if !bytes.Equal(data, want) {
		t.Fatalf("Persist wrote something other than the state file:\n%s\nwant:\n%s", data, want)
	}

	dst := fsm.New()
	mustApply(t, dst, register(0, "other", "10.0.0.9:1")) // Restore must replace, not merge
	closed, err := restore(dst, data)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !closed {
		t.Errorf("Restore did not close its reader")
	}
	if got := export(t, dst); !bytes.Equal(got, want) {
		t.Fatalf("Export after Restore differs:\n%s\nwant:\n%s", got, want)
	}
	sameState(t, src, dst)

	// The restored FSM keeps working like the original.
	next := []fsm.Command{running(20, w1, 2, 77), &fsm.StopWorkload{At: at(21), ID: w0}}
	mustApply(t, src, next...)
	mustApply(t, dst, next...)
	if a, b := export(t, src), export(t, dst); !bytes.Equal(a, b) {
		t.Fatalf("original and restored FSM diverge after the same commands:\n%s\n%s", a, b)
	}
}

func TestSnapshotIsolatedFromLaterApplies(t *testing.T) {
	f := richFSM(t)
	want := export(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()

	// raft persists while Apply goes on: touch every kind of nested data.
	mustApply(t, f,
		place(30, w1, "n1", 3),                  // history append, node, generation
		failed(31, w1, 3, 0, "boom"),            // exit code, attempts
		running(32, w0, 1, 9),                   // queue dequeue in place
		&fsm.StopWorkload{At: at(33), ID: w0},   // state
		register(34, "n1", "127.0.0.1:9999"),    // node address
		&fsm.RemoveReplica{ID: "s1"},            // replicas
		submit(35, 99, "workload_1705311080_0"), // workloads map, last_seq
	)
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.Bytes(), want) {
		t.Fatalf("snapshot changed after later applies:\n%s\nwant:\n%s", sink.Bytes(), want)
	}
}

func TestPersistWriteErrorCancels(t *testing.T) {
	snap, err := fixtureFSM(t).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	sink := &memSink{writeErr: boom}
	err = snap.Persist(sink)
	if !errors.Is(err, boom) {
		t.Fatalf("Persist error = %v, want it to wrap %v", err, boom)
	}
	if sink.cancelled != 1 || sink.closed != 0 {
		t.Fatalf("sink cancelled %d, closed %d; want 1 and 0", sink.cancelled, sink.closed)
	}
}

func TestRestoreRejectsBadSnapshotAndKeepsState(t *testing.T) {
	for name, data := range map[string]string{
		"empty":           "",
		"corrupt":         `{"version":1,"nodes":`,
		"no version":      `{"nodes":{}}`,
		"unknown version": `{"version":2}`,
		"bad queue":       `{"version":1,"recovery_queue":[{"workload_id":"ghost"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			f := fixtureFSM(t)
			before := export(t, f)
			closed, err := restore(f, []byte(data))
			if err == nil {
				t.Fatal("Restore accepted a bad snapshot")
			}
			if !closed {
				t.Errorf("Restore did not close its reader")
			}
			if after := export(t, f); !bytes.Equal(before, after) {
				t.Fatalf("failed Restore changed the state:\n%s", after)
			}
		})
	}
}

func TestParseStateMarshalRoundTrip(t *testing.T) {
	for name, f := range map[string]*fsm.FSM{"empty": fsm.New(), "rich": richFSM(t)} {
		t.Run(name, func(t *testing.T) {
			var orig *fsm.State
			f.Read(func(s *fsm.State) { orig = s.Clone() })
			b, err := orig.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := fsm.ParseState(b)
			if err != nil {
				t.Fatalf("ParseState(Marshal()): %v", err)
			}
			if !parsed.Equal(orig) {
				t.Fatalf("ParseState(Marshal(s)) != s:\n%#v\n%#v", parsed, orig)
			}
			again, err := parsed.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("second Marshal differs:\n%s\n%s", again, b)
			}
		})
	}
}

func TestParseStateMinimalFile(t *testing.T) {
	// Only the version: every collection comes back empty, not nil, so the
	// state marshals like a fresh one and apply functions can write to it.
	st, err := fsm.ParseState([]byte(`{"version":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if st.Nodes == nil || st.Workloads == nil || st.Replicas == nil || st.RecoveryQueue == nil {
		t.Fatalf("nil collections after ParseState: %#v", st)
	}
	got, _ := st.Marshal()
	want, _ := fsm.NewState().Marshal()
	if !bytes.Equal(got, want) {
		t.Fatalf("minimal file marshals as\n%s\nwant\n%s", got, want)
	}
	// Explicit nulls too.
	st, err = fsm.ParseState([]byte(`{"version":1,"nodes":null,"workloads":null,"recovery_queue":null,"replicas":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("file with nulls marshals as\n%s\nwant\n%s", got, want)
	}
}

func TestCloneIsDeep(t *testing.T) {
	f := richFSM(t)
	var orig, c *fsm.State
	f.Read(func(s *fsm.State) { orig = s.Clone(); c = s.Clone() })
	w := c.Workloads[w1]
	w.Args[0] = "changed"
	w.History[0].Node = "changed"
	*w.ExitCode = 99
	c.Workloads[w0].Env["PORT"] = "1"
	c.Nodes["n1"].Address = "changed"
	c.RecoveryQueue[0].Reason = "changed"
	c.Replicas["s1"] = "changed"
	var now *fsm.State
	f.Read(func(s *fsm.State) { now = s.Clone() })
	if !now.Equal(orig) {
		t.Fatalf("writing to a Clone changed the FSM state")
	}
	if c.Workloads[w1].ExitCode == nil || *orig.Workloads[w1].ExitCode != 1 {
		t.Fatalf("fixture lost its exit code")
	}
}

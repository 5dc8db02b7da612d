package fsm_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// checkInvariants holds for any state built by commands other than LoadState.
func checkInvariants(s *fsm.State) error {
	seen := map[string]bool{}
	for _, q := range s.RecoveryQueue {
		w, ok := s.Workloads[q.WorkloadID]
		if !ok {
			return fmt.Errorf("queue names unknown workload %s", q.WorkloadID)
		}
		if seen[q.WorkloadID] {
			return fmt.Errorf("workload %s queued twice", q.WorkloadID)
		}
		seen[q.WorkloadID] = true
		if w.State != api.StateFailed {
			return fmt.Errorf("queued workload %s is %s", w.ID, w.State)
		}
	}
	for id, w := range s.Workloads {
		if w.State == api.StateFailed && !seen[id] {
			return fmt.Errorf("failed workload %s is not queued", id)
		}
		if len(w.History) > fsm.MaxHistory {
			return fmt.Errorf("workload %s has %d history entries", id, len(w.History))
		}
	}
	return nil
}

// concurrencyLog is a stream of commands that grows and churns the state.
func concurrencyLog(t *testing.T) [][]byte {
	var log [][]byte
	add := func(c fsm.Command) { log = append(log, encode(t, c)) }
	for n := 0; n < 4; n++ {
		add(register(0, fmt.Sprintf("n%d", n), fmt.Sprintf("127.0.0.1:%d", 8080+n)))
	}
	for i := 0; i < 60; i++ {
		id := fmt.Sprintf("workload_1705311045_%d", i)
		node := fmt.Sprintf("n%d", i%4)
		add(submit(i, uint64(i+1), id))
		add(place(i, id, node, 1))
		add(running(i, id, 1, 100+i))
		switch i % 6 {
		case 1:
			add(failed(i, id, 1, 3, "exit 1"))
		case 2:
			add(&fsm.StopWorkload{At: at(i), ID: id})
		case 3:
			add(&fsm.EnqueueRecovery{At: at(i), MaxAttempts: 3, Requests: []fsm.RecoveryRequest{{ID: id, Reason: "gone", CountAttempt: true}}})
		}
		if i%15 == 14 {
			node := fmt.Sprintf("n%d", (i/15)%4)
			add(setStatus(i, fsm.NodeStatusChange{ID: node, Status: api.NodeOffline, Evict: true}))
			add(setStatus(i, fsm.NodeStatusChange{ID: node, Status: api.NodeOnline}))
		}
		add(&fsm.SetReplica{ID: fmt.Sprintf("s%d", i%3), HTTP: fmt.Sprintf("h:%d", i)})
	}
	return log
}

func TestConcurrentReadsDuringApply(t *testing.T) {
	log := concurrencyLog(t)
	f := fsm.New()
	start := make(chan struct{}) // the applier waits for the readers to be launched
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}

	wg.Add(1)
	go func() { // the raft FSM goroutine
		defer wg.Done()
		defer close(done)
		<-start
		for i, e := range log {
			if resp := f.Apply(&raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: e}); resp != nil {
				report(fmt.Errorf("apply: %v", resp))
				return
			}
		}
	}()
	reader := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for rounds := 0; ; rounds++ {
				if err := fn(); err != nil {
					report(fmt.Errorf("%s: %w", name, err))
					return
				}
				select {
				case <-done:
					if rounds > 0 {
						return
					}
				default:
				}
			}
		}()
	}
	for r := 0; r < 2; r++ {
		reader("Read", func() error {
			var err error
			f.Read(func(s *fsm.State) { err = checkInvariants(s) })
			return err
		})
		reader("Export", func() error {
			b, err := f.Export()
			if err != nil {
				return err
			}
			st, err := fsm.ParseState(b) // a consistent cut, never half a command
			if err != nil {
				return err
			}
			return checkInvariants(st)
		})
		reader("Snapshot", func() error {
			snap, err := f.Snapshot()
			if err != nil {
				return err
			}
			defer snap.Release()
			sink := &memSink{}
			if err := snap.Persist(sink); err != nil {
				return err
			}
			st, err := fsm.ParseState(sink.Bytes())
			if err != nil {
				return err
			}
			return checkInvariants(st)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// The readers did not disturb anything: same result as a quiet replay.
	quiet := fsm.New()
	for _, e := range log {
		if err := applyLog(t, quiet, e); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := export(t, f), export(t, quiet); !bytes.Equal(a, b) {
		t.Fatalf("concurrent run differs from a quiet replay")
	}
	var err error
	f.Read(func(s *fsm.State) { err = checkInvariants(s) })
	if err != nil {
		t.Fatal(err)
	}
}

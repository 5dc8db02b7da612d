package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
)

// Submissions that wait while an entry is being committed go out merged in
// the next, each answered with its entry's outcome; a merged entry the state
// refuses is retried one submission at a time, so that only the faulty one
// fails.
func TestSubmitBatcherMergesAndIsolatesRefusals(t *testing.T) {
	f := fsm.New()
	if err := f.ApplyCommand(&fsm.SubmitWorkloads{Workloads: []api.Workload{{ID: "taken", Name: "x", Command: "sleep"}}}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int // the workloads of each entry, as it reaches apply
	b := &submitBatcher{apply: func(c fsm.Command) error {
		mu.Lock()
		sizes = append(sizes, len(c.(*fsm.SubmitWorkloads).Workloads))
		mu.Unlock()
		<-release // every entry stays in flight until the test lets go
		return f.ApplyCommand(c)
	}}
	inFlight := func() int {
		mu.Lock()
		defer mu.Unlock()
		sum := 0
		for _, s := range sizes {
			sum += s
		}
		return sum
	}
	wl := func(id string) []api.Workload { return []api.Workload{{ID: id, Name: "x", Command: "sleep"}} }
	// Hold the first entry open, then queue more behind it.
	errs := make(chan error, 16)
	go func() { errs <- b.submit(wl("held"), 1) }()
	waitFor(t, func() bool { return inFlight() == 1 })
	const n = 8
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("w%d", i)
			if i == 3 {
				id = "taken" // a duplicate: the state refuses it
			}
			results[i] = b.submit(wl(id), uint64(10+i))
		}()
	}
	waitFor(t, func() bool {
		b.mu.Lock()
		waiting := len(b.waiting)
		b.mu.Unlock()
		return waiting+inFlight() == n+1 // each one waits or is in an entry in flight
	})
	close(release)
	wg.Wait()
	if err := <-errs; err != nil {
		t.Fatalf("held submission: %v", err)
	}
	for i, err := range results {
		if (i == 3) != (err != nil) {
			t.Fatalf("submission %d answered %v", i, err)
		}
	}
	var count int
	f.Read(func(s *fsm.State) { count = len(s.Workloads) })
	if count != n+1 { // the held one, the one taken before, and n-1 of the n
		t.Fatalf("%d workloads in the state, want %d", count, n+1)
	}
	mu.Lock()
	defer mu.Unlock()
	merged := false
	for _, s := range sizes {
		merged = merged || s > 1
	}
	if !merged {
		t.Fatalf("entries of %v workloads: none merged", sizes)
	}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

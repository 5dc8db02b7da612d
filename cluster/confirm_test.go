package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every confirmation waits for a verification that started after it was
// asked for, and many callers share one verification.
func TestConfirmerBatchesAndOrders(t *testing.T) {
	var calls atomic.Int32
	var fail atomic.Bool
	gate := make(chan struct{})
	c := &confirmer{verify: func() error {
		calls.Add(1)
		<-gate
		if fail.Load() {
			return errors.New("not leader")
		}
		return nil
	}}
	first := make(chan bool)
	go func() { first <- c.confirm(context.Background()) }()
	for calls.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	// These arrive while the first verification runs: they need the next one.
	var wg sync.WaitGroup
	var oks atomic.Int32
	for range 10 {
		wg.Go(func() {
			if c.confirm(context.Background()) {
				oks.Add(1)
			}
		})
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		n := len(c.waiting)
		c.mu.Unlock()
		if n == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 10 callers queued", n)
		}
	}
	gate <- struct{}{}
	if !<-first {
		t.Fatal("a successful verification confirmed nothing")
	}
	fail.Store(true)
	gate <- struct{}{}
	wg.Wait()
	if oks.Load() != 0 {
		t.Fatalf("%d callers confirmed by a verification that started before they asked (or that failed)", oks.Load())
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d verifications for 11 callers in two batches, want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	go func() { gate <- struct{}{} }()
	if c.confirm(ctx) {
		t.Fatal("a cancelled confirmation said yes")
	}
}

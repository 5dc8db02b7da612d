package cluster

import (
	"context"
	"sync"
)

// confirmer batches leadership confirmations: confirm returns true once a
// raft.VerifyLeader that started after it was called has succeeded. However
// many callers wait, one verification runs at a time, for all who came
// before it started.
type confirmer struct {
	verify func() error

	mu      sync.Mutex
	waiting []chan bool
	running bool
}

// confirm waits for the next verification; false when it failed or ctx ended.
func (c *confirmer) confirm(ctx context.Context) bool {
	ch := make(chan bool, 1)
	c.mu.Lock()
	c.waiting = append(c.waiting, ch)
	start := !c.running
	c.running = true
	c.mu.Unlock()
	if start {
		go c.loop()
	}
	select {
	case ok := <-ch:
		return ok
	case <-ctx.Done():
		return false
	}
}

// loop verifies for each batch of waiters until none is left.
func (c *confirmer) loop() {
	for {
		c.mu.Lock()
		batch := c.waiting
		c.waiting = nil
		if len(batch) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		ok := c.verify() == nil
		for _, ch := range batch {
			ch <- ok
		}
	}
}

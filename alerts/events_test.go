package alerts

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func appendN(l *Log, n int) {
	for i := 0; i < n; i++ {
		l.Append(api.Event{Kind: api.EventNodeOffline, Subject: fmt.Sprintf("n%d", i)})
	}
}

func seqs(es []api.Event) []uint64 {
	out := []uint64{}
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func TestLogSequenceAndRing(t *testing.T) {
	l := NewLog("e1", 4)
	if es, last := l.After(0, 0); len(es) != 0 || last != 0 {
		t.Fatalf("empty log: %v %d", es, last)
	}
	appendN(l, 3)
	es, last := l.After(0, 0)
	if fmt.Sprint(seqs(es)) != "[1 2 3]" || last != 3 {
		t.Fatalf("after 0: %v last %d", seqs(es), last)
	}
	es, last = l.After(2, 0)
	if fmt.Sprint(seqs(es)) != "[3]" || last != 3 {
		t.Fatalf("after 2: %v last %d", seqs(es), last)
	}
	es, last = l.After(3, 0)
	if len(es) != 0 || last != 3 {
		t.Fatalf("after 3: %v last %d", seqs(es), last)
	}
	appendN(l, 4) // 7 appended, capacity 4: 4..7 held
	es, last = l.After(0, 0)
	if fmt.Sprint(seqs(es)) != "[4 5 6 7]" || last != 7 {
		t.Fatalf("after a wrap: %v last %d", seqs(es), last)
	}
	es, last = l.After(5, 1)
	if fmt.Sprint(seqs(es)) != "[6]" || last != 6 {
		t.Fatalf("after 5 limit 1: %v last %d", seqs(es), last)
	}
	es, last = l.Recent(2)
	if fmt.Sprint(seqs(es)) != "[6 7]" || last != 7 {
		t.Fatalf("recent 2: %v last %d", seqs(es), last)
	}
	if es, _ := l.Recent(0); len(es) != 4 {
		t.Fatalf("recent all: %v", seqs(es))
	}
	if c := l.Counts()[api.EventNodeOffline]; c != 7 {
		t.Fatalf("count %d", c)
	}
	if e := l.Append(api.Event{Kind: "x"}); e.Time.IsZero() || e.Time.Location() != time.UTC || e.Seq != 8 {
		t.Fatalf("appended %+v", e)
	}
}

func TestLogWaitWakesOnAppend(t *testing.T) {
	l := NewLog("e1", 8)
	appendN(l, 2)
	if err := l.Wait(context.Background(), 1); err != nil {
		t.Fatalf("an event after 1 exists: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, 2); err == nil {
		t.Fatal("Wait returned nil on a cancelled context with nothing new")
	}

	const waiters = 5
	var wg sync.WaitGroup
	got := make(chan []api.Event, waiters)
	for i := 0; i < waiters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := l.Wait(ctx, 2); err != nil {
				t.Error(err)
				return
			}
			es, _ := l.After(2, 0)
			got <- es
		}()
	}
	l.Append(api.Event{Kind: api.EventLeaderElected, Subject: "s1"})
	wg.Wait()
	close(got)
	n := 0
	for es := range got {
		n++
		if len(es) != 1 || es[0].Seq != 3 || es[0].Kind != api.EventLeaderElected {
			t.Fatalf("woken reader got %+v", es)
		}
	}
	if n != waiters {
		t.Fatalf("%d of %d readers woke", n, waiters)
	}
}

func TestLogConcurrentAppendKeepsOrder(t *testing.T) {
	l := NewLog("e1", 10000)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() { defer wg.Done(); appendN(l, 500) }()
	}
	wg.Wait()
	es, last := l.After(0, 0)
	if len(es) != 4000 || last != 4000 {
		t.Fatalf("%d events, last %d", len(es), last)
	}
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}

package partition

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// probe opens (and closes) a TCP connection from namespace ns to address.
func probe(ns, address string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := (&nsDialer{ns: ns, timeout: time.Second}).DialContext(ctx, "tcp", address)
	if err == nil {
		c.Close()
	}
	return err
}

// rootNetwork is what the root namespace's links, addresses and routes look like.
func rootNetwork(t *testing.T) string {
	t.Helper()
	var out []byte
	for _, args := range [][]string{{"-o", "link"}, {"-o", "addr"}, {"route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"}} {
		b, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatalf("ip %v: %v", args, err)
		}
		out = append(out, b...)
	}
	return string(out)
}

// threadsOutside lists the test process's threads outside its own network namespace.
func threadsOutside(root string) []string {
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	var out []string
	for _, f := range tasks {
		if l, err := os.Readlink(f); err == nil && l != root {
			out = append(out, f+" → "+l)
		}
	}
	return out
}

// The lab itself: cuts are both ways and only between the pair, heals restore, the root namespace is untouched.
func TestLabCutsAndHeals(t *testing.T) {
	needLab(t)
	rootNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	rootBefore := rootNetwork(t)
	l := newLab(t, 2)
	a, b := l.agents[0], l.agents[1]
	r1, r2 := l.replicas[0], l.replicas[1]
	expect := func(from *host, to string, ok bool) {
		t.Helper()
		err := probe(from.ns, to)
		if ok && err != nil {
			t.Errorf("%s → %s: want reachable, got %v", from.role, to, err)
		}
		if !ok && err == nil {
			t.Errorf("%s → %s: want cut, but it connected", from.role, to)
		}
		if !ok && err != nil {
			t.Logf("%s → %s cut: %v", from.role, to, err)
		}
	}
	expect(a.h, r1.http, true)
	expect(r1.h, a.addr, true)

	if err := l.net.cut(a.h.role, r1.h.role); err != nil {
		t.Fatal(err)
	}
	expect(a.h, r1.http, false)
	expect(r1.h, a.addr, false)
	expect(a.h, r2.http, true)
	expect(b.h, r1.http, true)
	expect(l.client, a.addr, true)
	expect(l.client, r1.http, true)

	if err := l.net.isolate(a.h.role, roles(l.replicas, nil)); err != nil {
		t.Fatal(err)
	}
	expect(a.h, r2.http, false)
	expect(r2.h, a.addr, false)
	if n := l.net.cutCount(); n != 3 {
		t.Errorf("%d pairs cut, want 3", n)
	}
	if err := l.net.heal(a.h.role, r1.h.role); err != nil {
		t.Fatal(err)
	}
	expect(a.h, r1.http, true)
	expect(a.h, r2.http, false)
	if err := l.net.healAll(); err != nil {
		t.Fatal(err)
	}
	if n := l.net.cutCount(); n != 0 {
		t.Errorf("%d pairs still cut after healAll", n)
	}
	expect(a.h, r2.http, true)
	expect(r2.h, a.addr, true)

	if after := rootNetwork(t); after != rootBefore {
		t.Errorf("the root namespace changed while the lab ran:\nbefore:\n%s\nafter:\n%s", rootBefore, after)
	}
	var outside []string
	if !poll(2*time.Second, func() bool { outside = threadsOutside(rootNS); return len(outside) == 0 }) {
		t.Errorf("threads of the test process left in a lab namespace: %v", outside)
	}
}

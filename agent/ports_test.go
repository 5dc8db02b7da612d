package agent

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	if r, err := ParsePortRange("20000-32767"); err != nil || r != DefaultPortRange {
		t.Fatalf("%v %v", r, err)
	}
	if r, err := ParsePortRange(" 80 - 80 "); err != nil || r != (PortRange{80, 80}) {
		t.Fatalf("one port: %v %v", r, err)
	}
	for _, bad := range []string{"", "20000", "a-b", "0-10", "10-70000", "300-200", "-5-10"} {
		if _, err := ParsePortRange(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var r PortRange
	if err := r.Set("1000-1010"); err != nil || r.String() != "1000-1010" {
		t.Fatalf("Set: %v %v", r, err)
	}
}

// The allocator never hands a held port out twice, skips ports that cannot
// be bound, goes round the range, and gives all of a request's ports or none.
func TestPortAllocator(t *testing.T) {
	busy := map[int]bool{102: true}
	a := &portAllocator{r: PortRange{100, 104}, next: 100, used: map[int]bool{}, bindable: func(p int) bool { return !busy[p] }}
	first, err := a.allocate([]string{"http", "admin"})
	if err != nil || first["http"] != 100 || first["admin"] != 101 {
		t.Fatalf("first: %v %v", first, err)
	}
	second, err := a.allocate([]string{"http", "grpc"})
	if err != nil || second["http"] != 103 || second["grpc"] != 104 {
		t.Fatalf("second (102 is busy): %v %v", second, err)
	}
	if _, err := a.allocate([]string{"x"}); !errors.Is(err, errNoFreePort) || !strings.Contains(err.Error(), `"x"`) || !strings.Contains(err.Error(), "100-104") {
		t.Fatalf("exhausted: %v", err)
	}
	a.release(first)
	if a.inUse() != 2 {
		t.Fatalf("%d in use after a release, want 2", a.inUse())
	}
	// Three asked, two free: none is taken.
	if _, err := a.allocate([]string{"a", "b", "c"}); err == nil || a.inUse() != 2 {
		t.Fatalf("all or none: %v, %d in use", err, a.inUse())
	}
	third, err := a.allocate([]string{"a", "b"})
	if err != nil || third["a"] != 100 || third["b"] != 101 {
		t.Fatalf("after the release: %v %v", third, err)
	}
	if ports, err := a.allocate(nil); ports != nil || err != nil {
		t.Fatalf("no labels: %v %v", ports, err)
	}
}

// canBind sees a port held by a listener.
func TestCanBindSeesListeners(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port, _ := strconv.Atoi(strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:"))
	if canBind(port) {
		t.Fatalf("port %d is held by a listener on 127.0.0.1 but looks bindable", port)
	}
	a := newPortAllocator(PortRange{port, port})
	if _, err := a.allocate([]string{"http"}); err == nil {
		t.Fatal("a port held by another program was handed out")
	}
}

package agent

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
)

// PortRange is the range of ports, both ends included, from which the
// agent picks the ports of its workloads (Config.PortRange).
type PortRange struct {
	Low, High int
}

// DefaultPortRange is the default of Config.PortRange: above the usual
// service ports and below Linux's default ephemeral range (32768-60999), so
// that outgoing connections do not take the ports the agent hands out.
var DefaultPortRange = PortRange{Low: 20000, High: 32767}

// ParsePortRange parses "LOW-HIGH".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return PortRange{}, fmt.Errorf("port range %q: want LOW-HIGH, such as 20000-32767", s)
	}
	low, err1 := strconv.Atoi(strings.TrimSpace(lo))
	high, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("port range %q: want two port numbers, LOW-HIGH", s)
	}
	r := PortRange{Low: low, High: high}
	return r, r.Validate()
}

// Validate reports whether the range is usable: 1 <= Low <= High <= 65535.
func (r PortRange) Validate() error {
	switch {
	case r.Low < 1 || r.High > 65535:
		return fmt.Errorf("port range %s: ports go from 1 to 65535", r)
	case r.Low > r.High:
		return fmt.Errorf("port range %s: the low end is above the high end", r)
	}
	return nil
}

// String implements flag.Value.
func (r PortRange) String() string { return strconv.Itoa(r.Low) + "-" + strconv.Itoa(r.High) }

// Set implements flag.Value.
func (r *PortRange) Set(s string) error {
	v, err := ParsePortRange(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// size is the number of ports in the range.
func (r PortRange) size() int { return r.High - r.Low + 1 }

// portAllocator hands out ports of a range to workload instances: a port is
// given to one live instance at a time, and only if it can be bound when it
// is picked (another program may hold it). Picking goes round the range from
// a random start, so a port just freed is not handed out again at once and
// agents sharing a machine seldom race for the same port.
type portAllocator struct {
	r        PortRange
	bindable func(port int) bool

	mu   sync.Mutex
	next int          // the port to try first
	used map[int]bool // ports of live instances
}

// newPortAllocator returns an allocator over r that checks ports by binding them.
func newPortAllocator(r PortRange) *portAllocator {
	return &portAllocator{r: r, bindable: canBind, next: r.Low + rand.IntN(r.size()), used: map[int]bool{}}
}

// errNoFreePort is wrapped by allocate when the range is exhausted.
var errNoFreePort = errors.New("no free port")

// allocate picks one port per label, all or none.
func (a *portAllocator) allocate(labels []string) (map[string]int, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	got := make(map[string]int, len(labels))
	for _, label := range labels {
		port, ok := a.pickLocked()
		if !ok {
			for _, p := range got {
				delete(a.used, p)
			}
			return nil, fmt.Errorf("%w for port label %q in the range %s (%d of its ports are held by this agent's workloads, the others cannot be bound)",
				errNoFreePort, label, a.r, len(a.used))
		}
		a.used[port] = true
		got[label] = port
	}
	return got, nil
}

// pickLocked finds the next port not in use that can be bound.
func (a *portAllocator) pickLocked() (int, bool) {
	for range a.r.size() {
		p := a.next
		a.next++
		if a.next > a.r.High {
			a.next = a.r.Low
		}
		if !a.used[p] && a.bindable(p) {
			return p, true
		}
	}
	return 0, false
}

// release gives ports back.
func (a *portAllocator) release(ports map[string]int) {
	if len(ports) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range ports {
		delete(a.used, p)
	}
}

// claim marks ports as held, for an instance adopted from the previous run
// of the agent.
func (a *portAllocator) claim(ports map[string]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range ports {
		a.used[p] = true
	}
}

// inUse returns how many ports are held.
func (a *portAllocator) inUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.used)
}

// canBind reports whether a TCP listener can bind port on every address
// (which a listener on any one address, IPv4 or IPv6, would prevent).
func canBind(port int) bool {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

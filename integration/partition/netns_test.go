package partition

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// subnet is the lab's private /24, which exists only inside the lab's own namespaces.
const subnet = "10.213.7."

// host is one network namespace on the lab's bridge.
type host struct {
	role string // r1, a2, cl: the short name used in interface names
	ns   string // the namespace's name under /var/run/netns
	ip   string
	ino  uint64 // the namespace's inode, as /proc/PID/ns/net shows it
}

// network is a lab's hub namespace with its bridge, and the hosts on it.
type network struct {
	hub   string
	br    string
	hosts map[string]*host // by role

	mu   sync.Mutex
	cuts map[[2]string]bool // cut pairs of roles, sorted
}

// ipCmd runs ip with the given arguments and returns its error with its output.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// addNetns creates a named namespace with its loopback up, registered for cleanup.
func addNetns(name string) error {
	return reg.create(func() error {
		reg.addNetns(name)
		if err := ipCmd("netns", "add", name); err != nil {
			return err
		}
		return ipCmd("-n", name, "link", "set", "lo", "up")
	})
}

// delNetns kills what runs in a namespace and deletes it.
func delNetns(name string) {
	killNamespacePids(name)
	_ = exec.Command("ip", "netns", "del", name).Run()
	reg.delNetns(name)
}

// newNetwork creates the hub namespace and its bridge for the lab named tag.
func newNetwork(tag, ifTag string) (*network, error) {
	n := &network{hub: tag + "_hub", br: ifTag + "br", hosts: map[string]*host{}, cuts: map[[2]string]bool{}}
	if err := addNetns(n.hub); err != nil {
		return n, err
	}
	for _, args := range [][]string{
		{"-n", n.hub, "link", "add", n.br, "type", "bridge"},
		{"-n", n.hub, "link", "set", n.br, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return n, err
		}
	}
	return n, nil
}

// addHost creates a namespace for role at subnet+octet, joined to the bridge by a veth pair.
func (n *network) addHost(tag, ifTag, role string, octet int) (*host, error) {
	h := &host{role: role, ns: tag + "_" + role, ip: fmt.Sprintf("%s%d", subnet, octet)}
	if err := addNetns(h.ns); err != nil {
		return nil, err
	}
	hubSide, hostSide := ifTag+role, ifTag+role+"x"
	if len(hostSide) > 15 {
		return nil, fmt.Errorf("interface name %q over 15 characters", hostSide)
	}
	for _, args := range [][]string{
		{"-n", n.hub, "link", "add", hubSide, "type", "veth", "peer", "name", hostSide, "netns", h.ns},
		{"-n", n.hub, "link", "set", hubSide, "master", n.br},
		{"-n", n.hub, "link", "set", hubSide, "up"},
		{"-n", h.ns, "addr", "add", h.ip + "/24", "dev", hostSide},
		{"-n", h.ns, "link", "set", hostSide, "up"},
	} {
		if err := ipCmd(args...); err != nil {
			return nil, err
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(nsDir, h.ns), &st); err != nil {
		return nil, err
	}
	h.ino = st.Ino
	n.hosts[role] = h
	return h, nil
}

// destroy deletes the network's namespaces, and with them its veths and routes.
func (n *network) destroy() {
	for _, h := range n.hosts {
		delNetns(h.ns)
	}
	delNetns(n.hub)
}

func pair(a, b string) [2]string {
	p := [2]string{a, b}
	sort.Strings(p[:])
	return p
}

// cut drops traffic between a and b both ways, with a blackhole route in each namespace.
func (n *network) cut(a, b string) error {
	ha, hb := n.hosts[a], n.hosts[b]
	if ha == nil || hb == nil {
		return fmt.Errorf("cut %s-%s: unknown host", a, b)
	}
	// Established connections stall (their packets vanish); a new connect
	// from either side fails at once (EINVAL), as a blackhole route does for
	// locally sent packets.
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := ipCmd("-n", ha.ns, "route", "replace", "blackhole", hb.ip+"/32"); err != nil {
		return err
	}
	if err := ipCmd("-n", hb.ns, "route", "replace", "blackhole", ha.ip+"/32"); err != nil {
		return err
	}
	n.cuts[pair(a, b)] = true
	return nil
}

// heal removes the blackhole routes between a and b.
func (n *network) heal(a, b string) error {
	ha, hb := n.hosts[a], n.hosts[b]
	if ha == nil || hb == nil {
		return fmt.Errorf("heal %s-%s: unknown host", a, b)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []string
	for _, x := range [][2]*host{{ha, hb}, {hb, ha}} {
		out, err := exec.Command("ip", "-n", x[0].ns, "route", "del", "blackhole", x[1].ip+"/32").CombinedOutput()
		if err != nil && !strings.Contains(string(out), "No such process") {
			errs = append(errs, fmt.Sprintf("ip -n %s route del blackhole %s/32: %v: %s", x[0].ns, x[1].ip, err, strings.TrimSpace(string(out))))
		}
	}
	delete(n.cuts, pair(a, b))
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// isolate cuts x from every host in set.
func (n *network) isolate(x string, set []string) error {
	for _, o := range set {
		if o == x {
			continue
		}
		if err := n.cut(x, o); err != nil {
			return err
		}
	}
	return nil
}

// rejoin heals x with every host in set.
func (n *network) rejoin(x string, set []string) error {
	for _, o := range set {
		if o == x {
			continue
		}
		if err := n.heal(x, o); err != nil {
			return err
		}
	}
	return nil
}

// healAll removes every cut.
func (n *network) healAll() error {
	n.mu.Lock()
	var ps [][2]string
	for p := range n.cuts {
		ps = append(ps, p)
	}
	n.mu.Unlock()
	for _, p := range ps {
		if err := n.heal(p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}

// cutCount returns how many pairs are cut now.
func (n *network) cutCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.cuts)
}

// nsDialer creates its sockets inside a named network namespace; the calling thread returns to its own.
type nsDialer struct {
	ns      string
	timeout time.Duration
}

// DialContext is for http.Transport.
func (d *nsDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	// The test process stays in the root namespace: only this locked thread
	// visits the client namespace, for as long as it takes to create the
	// socket, which stays in the namespace it was created in.
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer unix.Close(orig)
	target, err := unix.Open(filepath.Join(nsDir, d.ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns %s: %w", d.ns, err)
	}
	inside := true
	var restoreErr error
	back := func() {
		if inside {
			restoreErr = unix.Setns(orig, unix.CLONE_NEWNET)
			inside = false
		}
	}
	nd := net.Dialer{
		Timeout:   d.timeout,
		KeepAlive: 5 * time.Second,
		// The socket exists once Control runs: leave the namespace before connecting.
		Control: func(string, string, syscall.RawConn) error { back(); return restoreErr },
	}
	conn, err := nd.DialContext(ctx, network, address)
	back()
	if restoreErr != nil {
		// The thread is stuck in the lab's namespace: keep it locked so that
		// the runtime retires it when this goroutine ends.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("setns back to the original namespace: %w", restoreErr)
	}
	runtime.UnlockOSThread()
	return conn, err
}

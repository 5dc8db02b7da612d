package partition

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nsDir is where ip netns keeps its named network namespaces.
const nsDir = "/var/run/netns"

var (
	binDir     string // the built scheduler and agent
	skipReason string // why the lab cannot run here, or ""
	runPrefix  string // molab<pid>_<rand>: every namespace and temp dir of this run starts with it
	ifPrefix   string // ml<pid%10000><rand>: the short form for interface names (15 chars at most)
)

// reg records everything the run created, so that a signal can remove it.
var reg = &registry{procs: map[int]bool{}, netns: map[string]bool{}, dirs: map[string]bool{}}

func TestMain(m *testing.M) {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	runPrefix = fmt.Sprintf("molab%d_%s", os.Getpid(), hex.EncodeToString(b))
	ifPrefix = fmt.Sprintf("ml%04d%s", os.Getpid()%10000, hex.EncodeToString(b[:1]))
	skipReason = labUnavailable()
	if skipReason != "" {
		fmt.Fprintln(os.Stderr, "partition lab skipped:", skipReason)
		os.Exit(m.Run())
	}
	sweepLeftovers()

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigc
		fmt.Fprintf(os.Stderr, "partition lab: %v: removing the lab's processes, namespaces and temp dirs\n", s)
		reg.teardownAll()
		os.Exit(2)
	}()

	// A test timeout panics without running any cleanup: remove the lab
	// just before it, so that the run leaves nothing behind even then.
	flag.Parse()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 20*time.Second {
			time.AfterFunc(d-5*time.Second, func() {
				fmt.Fprintln(os.Stderr, "partition lab: the test timeout is near: removing the lab's processes, namespaces and temp dirs")
				reg.teardownAll()
			})
		}
	}
	if d := os.Getenv("MO_LAB_BIN"); d != "" {
		// Binaries built beforehand (for example by make build).
		binDir = d
		code := m.Run()
		reg.teardownAll()
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", runPrefix+"_bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	reg.addDir(dir)
	binDir = dir
	for _, name := range []string{"scheduler", "agent"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../../cmd/"+name).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", name, err, out)
			reg.teardownAll()
			os.Exit(1)
		}
	}
	code := m.Run()
	reg.teardownAll()
	os.Exit(code)
}

// needLab skips the test when the lab cannot run on this machine.
func needLab(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip("partition lab: " + skipReason)
	}
	if testing.Short() {
		t.Skip("partition lab: skipped in -short mode")
	}
}

// labUnavailable says why the lab cannot run here, or returns "".
func labUnavailable() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces, veth pairs and routes)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs iproute2's ip command in PATH"
	}
	probe := runPrefix + "_probe"
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot create a network namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	return ""
}

// leftoverName matches any lab run's namespaces and temp dirs, capturing the owner's pid.
var leftoverName = regexp.MustCompile(`^molab(\d+)_[0-9a-f]+_`)

// ownerGone reports whether the lab run of pid has ended (no such process, or not a lab test binary).
func ownerGone(pid int) bool {
	if pid == os.Getpid() {
		return false
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return true
	}
	return strings.TrimSpace(string(comm)) != "partition.test"
}

// sweepLeftovers removes the namespaces, processes and temp dirs of lab runs that have ended.
func sweepLeftovers() {
	ents, _ := os.ReadDir(nsDir)
	for _, e := range ents {
		m := leftoverName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); ownerGone(pid) {
			fmt.Fprintf(os.Stderr, "partition lab: removing namespace %s left by run %d\n", e.Name(), pid)
			killNamespacePids(e.Name())
			_ = exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "molab*"))
	for _, d := range dirs {
		m := leftoverName.FindStringSubmatch(filepath.Base(d))
		if m == nil {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); ownerGone(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

// killNamespacePids sends SIGKILL to every process in a named namespace.
func killNamespacePids(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// errClosing refuses new lab resources once the run is being torn down.
var errClosing = errors.New("partition lab: the run is being torn down")

// registry tracks the run's processes, namespaces and temp dirs; creators hold the read lock.
type registry struct {
	mu      sync.RWMutex
	closing bool
	small   sync.Mutex // guards the maps under the read lock
	procs   map[int]bool
	netns   map[string]bool
	dirs    map[string]bool
}

// create runs fn, which makes and registers one resource, unless the run is being torn down.
func (r *registry) create(fn func() error) error {
	// Holding the read lock until the resource exists means teardownAll,
	// which takes the write lock, never misses one half made.
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closing {
		return errClosing
	}
	return fn()
}

func (r *registry) addProc(pid int) { r.small.Lock(); r.procs[pid] = true; r.small.Unlock() }

func (r *registry) delProc(pid int) { r.small.Lock(); delete(r.procs, pid); r.small.Unlock() }

func (r *registry) addNetns(n string) { r.small.Lock(); r.netns[n] = true; r.small.Unlock() }

func (r *registry) delNetns(n string) { r.small.Lock(); delete(r.netns, n); r.small.Unlock() }

func (r *registry) addDir(d string) { r.small.Lock(); r.dirs[d] = true; r.small.Unlock() }

func (r *registry) delDir(d string) { r.small.Lock(); delete(r.dirs, d); r.small.Unlock() }

// teardownAll kills the run's processes, deletes its namespaces and temp dirs, and refuses new ones.
func (r *registry) teardownAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closing = true
	for pid := range r.procs {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for n := range r.netns {
		killNamespacePids(n)
	}
	killTagged(runPrefix)
	for n := range r.netns {
		_ = exec.Command("ip", "netns", "del", n).Run()
	}
	for d := range r.dirs {
		_ = os.RemoveAll(d)
	}
	r.procs, r.netns, r.dirs = map[int]bool{}, map[string]bool{}, map[string]bool{}
}

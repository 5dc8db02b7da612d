package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// What a scheduler or agent would refuse to run is refused at the API with a
// clear 400 (through the leader and a follower), and nothing is applied.
func TestControlCharactersAndNULsAreRefused(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	l := tc.leader()
	_, before, _ := tc.c.call("GET", l.http, "/state", nil)
	cases := []struct{ name, body, want string }{
		{"control characters in the name", `{"name":"evil\n\u001b[31mRED","command":"true"}`, "control character"},
		{"DEL in the name", `{"name":"a\u007fb","command":"true"}`, "control character"},
		{"C1 in the name", `{"name":"a\u009bb","command":"true"}`, "control character"},
		{"NUL in an env value", `{"name":"x","command":"true","env":{"A":"1\u00002"}}`, "NUL"},
		{"NUL in an env name", `{"name":"x","command":"true","env":{"A\u0000":"1"}}`, "NUL"},
		{"= in an env name", `{"name":"x","command":"true","env":{"A=B":"1"}}`, "'='"},
		{"empty env name", `{"name":"x","command":"true","env":{"":"1"}}`, "non-empty"},
		{"NUL in the command", `{"name":"x","command":"tr\u0000ue"}`, "NUL"},
		{"NUL in an argument", `{"name":"x","command":"echo","args":["a\u0000b"]}`, "NUL"},
	}
	for _, target := range []*replica{l, tc.followers()[0]} {
		for _, c := range cases {
			code, b, err := tc.c.call("POST", target.http, "/workloads", c.body)
			if err != nil {
				t.Fatal(err)
			}
			var e api.Error
			if code != 400 || jsonUnmarshal(b, &e) != nil || !strings.Contains(e.Error, c.want) {
				t.Errorf("%s via %s: %d %s, want 400 mentioning %q", c.name, target.id, code, b, c.want)
			}
		}
		code, b, _ := tc.c.call("GET", target.http, "/workloads?state=bogus", nil)
		if code != 400 || !strings.Contains(string(b), "permanently_failed") {
			t.Errorf("GET /workloads?state=bogus via %s: %d %s", target.id, code, b)
		}
	}
	_, after, _ := tc.c.call("GET", l.http, "/state", nil)
	if !bytes.Equal(before, after) {
		t.Fatalf("refused input changed the state:\nbefore %s\nafter %s", before, after)
	}
	// Unicode names are fine.
	if _, err := tc.submit(l.http, api.SubmitRequest{Name: "日本語 🚀", Command: "true"}); err != nil {
		t.Fatal(err)
	}
}

// The CLI when things go wrong, on a real cluster: usage errors, escaping,
// stopping many at once, backup over an existing file, completion, logs -f
// through a follower and a replica that shuts down under a followed log.
func TestCLIWhenThingsGoWrong(t *testing.T) {
	tc := startFullCluster(t)
	f := tc.followers()[0]

	// An unknown filter value is a usage error listing the valid ones.
	_, errOut, code := tc.cli("workloads", "--state", "bogus")
	if code != 2 || !strings.Contains(errOut, "pending, running, failed, permanently_failed, completed, stopped") {
		t.Errorf("workloads --state bogus: exit %d, %q", code, errOut)
	}

	// Names in Unicode line up; a newline in an argument is shown escaped.
	out, errOut, code := tc.cli("submit", "--name", "日本語", "--", "sh", "-c", "echo one\necho two; sleep 600")
	if code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	odd := strings.TrimSpace(out)
	out, errOut, code = tc.cli("submit", "--name", "batch", "--count", "5", "--", "sleep", "600")
	if code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	batch := strings.Fields(out)
	waitFor(t, 20*time.Second, "the workloads running", func() bool { return allRunning(tc.workloads(), append([]string{odd}, batch...)) })
	table, _, _ := tc.cli("workloads")
	if !strings.Contains(table, `sh -c echo one\necho two; sleep 600`) || !strings.Contains(table, "6 workloads: 6 running") {
		t.Errorf("workloads table:\n%s", table)
	}
	named, _, _ := tc.cli("workloads", "--name", "batch")
	if strings.Contains(named, odd) || strings.Count(named, "workload_") != 5 || !strings.Contains(named, "5 workloads: 5 running") {
		t.Errorf("workloads --name batch:\n%s", named)
	}
	health, _, _ := tc.cli("health", "--addr", f.http, "--stale")
	if !strings.Contains(health, "| n1 ("+tc.agents[0].listen+")") {
		t.Errorf("health does not name n1 by ID and address:\n%s", health)
	}
	nodes, _, _ := tc.cli("nodes", "--stale", "--addr", f.http)
	if !strings.Contains(nodes, "3 nodes: 3 online") {
		t.Errorf("nodes --stale:\n%s", nodes)
	}

	// Completion lists workload IDs from the cluster.
	if bash, err := exec.LookPath("bash"); err == nil {
		script, _, _ := tc.cli("completion", "bash")
		bin := filepath.Join(binDir, "scheduler")
		cmd := exec.Command(bash, "-c", script+"\nCOMP_WORDS=("+bin+" stop ''); COMP_CWORD=2; _scheduler; echo \"${COMPREPLY[@]}\"")
		cmd.Env = tc.cliEnv("SCHEDULER_TOKEN="+tc.token, "SCHEDULER_ADDR="+f.http)
		got, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(got), batch[0]) || !strings.Contains(string(got), odd) {
			t.Errorf("completing stop's IDs: %v %s", err, got)
		}
	}

	// Several IDs at once: per-ID failures, exit 1; the others are stopped.
	out, errOut, code = tc.cli("stop", "--addr", f.http, batch[0], "workload_1_999999", batch[1])
	if code != 1 || !strings.Contains(out, batch[0]+" stopped") || !strings.Contains(out, batch[1]+" stopped") ||
		!strings.Contains(errOut, "workload_1_999999") || !strings.Contains(errOut, "1 of 3 stops failed") {
		t.Errorf("stop with an unknown ID: exit %d\n%s%s", code, out, errOut)
	}
	// --name stops the rest of that name, and nothing else.
	out, errOut, code = tc.cli("stop", "--name", "batch")
	if code != 0 || strings.Count(out, " stopped") != 3 {
		t.Errorf("stop --name batch: exit %d\n%s%s", code, out, errOut)
	}
	for _, w := range tc.workloads() {
		if w.Name == "batch" && w.State != api.StateStopped || w.ID == odd && w.State != api.StateRunning {
			t.Errorf("%s (%s) is %s", w.ID, w.Name, w.State)
		}
	}

	// A workload that ignores SIGTERM: stop says why it waits (the agents
	// of these tests have a 3 s stop grace).
	out, _, _ = tc.cli("submit", "--name", "stubborn", "--", "sh", "-c", "trap '' TERM; sleep 600")
	stubborn := strings.TrimSpace(out)
	waitFor(t, 20*time.Second, "stubborn running", func() bool { return allRunning(tc.workloads(), []string{stubborn}) })
	began := time.Now()
	out, errOut, code = tc.cli("stop", stubborn)
	if code != 0 || !strings.Contains(out, stubborn+" stopped") || !strings.Contains(errOut, "SIGKILL after its stop grace") || time.Since(began) < 3*time.Second {
		t.Errorf("stop of a workload that ignores SIGTERM: exit %d after %s\n%s%s", code, time.Since(began), out, errOut)
	}

	// backup refuses to overwrite unless --force.
	file := filepath.Join(tc.dir, "backup.json")
	if _, errOut, code := tc.cli("backup", file); code != 0 {
		t.Fatalf("backup: %s", errOut)
	}
	if err := os.WriteFile(file, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := tc.cli("backup", file); code != 1 || !strings.Contains(errOut, "--force") {
		t.Errorf("backup over a file: exit %d %q", code, errOut)
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Errorf("backup overwrote the file without --force")
	}
	if _, errOut, code := tc.cli("backup", "--force", file); code != 0 {
		t.Errorf("backup --force: %s", errOut)
	}

	// logs -f through a follower prints output as it is written and ends
	// when the instance does.
	out, errOut, code = tc.cli("submit", "--name", "ticker", "--", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")
	if code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	ticker := strings.TrimSpace(out)
	waitFor(t, 20*time.Second, "the ticker running", func() bool { return allRunning(tc.workloads(), []string{ticker}) })
	lf := startCLI(t, tc, "logs", "-f", "--tail", "all", "--addr", f.http, ticker)
	lf.waitLine(t, 10*time.Second, "tick 0")
	lf.waitLine(t, 10*time.Second, "tick 15") // 3 s of output, arriving live
	if _, errOut, code := tc.cli("stop", ticker); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	if code := lf.wait(t, 15*time.Second); code != 0 {
		t.Errorf("logs -f exited %d after the instance ended:\n%s", code, lf.stderr())
	}

	// A followed log does not hold up a replica that shuts down.
	out, _, _ = tc.cli("submit", "--name", "ticker2", "--", "sh", "-c", "while true; do echo tock; sleep 0.2; done")
	ticker2 := strings.TrimSpace(out)
	waitFor(t, 20*time.Second, "ticker2 running", func() bool { return allRunning(tc.workloads(), []string{ticker2}) })
	lf2 := startCLI(t, tc, "logs", "-f", "--addr", f.http, "--timeout", "3s", ticker2)
	lf2.waitLine(t, 10*time.Second, "tock")
	start := time.Now()
	if err := f.proc.term(15 * time.Second); err != nil {
		t.Fatalf("the follower did not shut down under a followed log: %v", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("the follower took %s to shut down under a followed log", d)
	}
	lf2.wait(t, 20*time.Second) // it gives up once no replica it knows answers
}

// cliProc is a CLI process whose output is read as it comes.
type cliProc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	errb  bytes.Buffer
	done  chan struct{}
}

func startCLI(t *testing.T, tc *testCluster, args ...string) *cliProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "scheduler"), args...)
	cmd.Env = tc.cliEnv("SCHEDULER_TOKEN="+tc.token, "SCHEDULER_ADDR="+strings.Join(tc.httpAddrs(), ","))
	p := &cliProc{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.errb}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	})
	return p
}

// waitLine waits for a line of output that equals want.
func (p *cliProc) waitLine(t *testing.T, d time.Duration, want string) {
	t.Helper()
	waitFor(t, d, fmt.Sprintf("the line %q", want), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.lines {
			if l == want {
				return true
			}
		}
		return false
	})
}

// wait waits for the process to exit and returns its exit code.
func (p *cliProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		t.Fatalf("the CLI did not exit within %s:\n%s", d, p.stderr())
		return -1
	}
}

func (p *cliProc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(b)
}

// logs -f goes on through another replica when the one it streams through
// is killed, from where it was: no line is missed or shown twice.
func TestLogsFollowSurvivesLeaderKill(t *testing.T) {
	tc := startFullCluster(t)
	out, errOut, code := tc.cli("submit", "--name", "counter", "--", "sh", "-c", "i=0; while true; do echo n $i; i=$((i+1)); sleep 0.05; done")
	if code != 0 {
		t.Fatalf("submit: %s", errOut)
	}
	id := strings.TrimSpace(out)
	waitFor(t, 20*time.Second, "the counter running", func() bool { return allRunning(tc.workloads(), []string{id}) })
	l := tc.leader()
	addrs := []string{l.http}
	for _, r := range tc.followers() {
		addrs = append(addrs, r.http)
	}
	lf := startCLI(t, tc, "logs", "-f", "--tail", "all", "--addr", strings.Join(addrs, ","), id)
	lf.waitLine(t, 10*time.Second, "n 20")
	l.proc.kill()
	lf.waitLine(t, 30*time.Second, "n 200") // about 9 s later, through the new leader
	if _, errOut, code := tc.cli("stop", id); code != 0 {
		t.Fatalf("stop: %s", errOut)
	}
	if code := lf.wait(t, 20*time.Second); code != 0 {
		t.Errorf("logs -f exited %d:\n%s", code, lf.stderr())
	}
	if !strings.Contains(lf.stderr(), "going on through the next replica") {
		t.Errorf("no word about the broken stream:\n%s", lf.stderr())
	}
	lf.mu.Lock()
	defer lf.mu.Unlock()
	for i, line := range lf.lines {
		if line != fmt.Sprintf("n %d", i) {
			t.Fatalf("line %d is %q (a gap or a repeat), around: %q", i, line, lf.lines[max(0, i-3):min(len(lf.lines), i+3)])
		}
	}
}

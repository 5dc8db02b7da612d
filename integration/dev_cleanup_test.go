package integration

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// `make run | tee log`, then Ctrl-C: tee dies with the dev process's stdout
// pipe, and the dev process must still stop every child (agents stop their
// workloads) and remove its data folder, instead of dying of SIGPIPE while
// it prints "Stopping". The test reads the folder, token, addresses and
// pids from what dev prints, closes the pipe, then sends SIGINT.
func TestDevCleansUpWhenStdoutIsGone(t *testing.T) {
	tmp := t.TempDir()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errLog, err := os.Create(filepath.Join(tmp, "dev.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errLog.Close()
	args := []string{"dev", "--http-port", strconv.Itoa(freePort(t)), "--raft-port", strconv.Itoa(freePort(t)), "--agent-port", strconv.Itoa(freePort(t))}
	if !tlsByDefault {
		args = append(args, "--no-tls")
	}
	cmd := exec.Command(filepath.Join(binDir, "scheduler"), args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.Stdout, cmd.Stderr = stdoutW, errLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdoutW.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var pids []int
	t.Cleanup(func() { // only does something when the test failed half-way
		for _, pid := range pids {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		if t.Failed() {
			b, _ := os.ReadFile(errLog.Name())
			t.Logf("dev stderr:\n%s", b)
		}
	})

	// Read what dev prints up to its last line of start-up.
	var dataDir, token string
	var replicaAddr string
	tlsFiles := map[string]string{} // SCHEDULER_TLS_* as dev prints them
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(120 * time.Second)
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("dev closed its stdout during start-up")
			}
			f := strings.Fields(l)
			switch {
			case strings.HasPrefix(l, "Starting a local cluster in "):
				dataDir = strings.TrimSuffix(strings.TrimPrefix(l, "Starting a local cluster in "), " ...")
			case strings.HasPrefix(l, "  export SCHEDULER_TOKEN="):
				token = strings.TrimPrefix(l, "  export SCHEDULER_TOKEN=")
			case strings.HasPrefix(l, "  export SCHEDULER_TLS_"):
				if k, v, ok := strings.Cut(strings.TrimPrefix(l, "  export "), "="); ok {
					tlsFiles[k] = v
				}
			case len(f) == 5 && (f[0] == "replica" || f[0] == "agent"):
				pid, err := strconv.Atoi(f[3])
				if err != nil {
					t.Fatalf("table line %q: %v", l, err)
				}
				pids = append(pids, pid)
				if f[0] == "replica" && replicaAddr == "" {
					replicaAddr = f[2]
				}
			case strings.HasPrefix(l, "Logs: "):
				break read
			}
		case <-timeout:
			t.Fatal("dev did not finish starting within 120s")
		}
	}
	if dataDir == "" || token == "" || len(pids) != 6 {
		t.Fatalf("from dev's output: data dir %q, token %q, pids %v", dataDir, token, pids)
	}
	if _, err := os.Stat(dataDir); err != nil {
		t.Fatalf("data dir: %v", err)
	}

	// A workload runs, so that its process must go too. With TLS (dev's
	// default) the client uses the cli certificate dev made.
	c := plainClient(token)
	if tlsByDefault {
		cfg, err := clientTLSFiles(tlsFiles[tlsutil.EnvCA], tlsFiles[tlsutil.EnvCert], tlsFiles[tlsutil.EnvKey])
		if err != nil {
			t.Fatalf("dev's TLS files %v: %v", tlsFiles, err)
		}
		c = newTLSClient(token, cfg)
	}
	code, b, err := c.call("POST", replicaAddr, "/workloads", api.SubmitRequest{Name: "sleeper", Command: "sleep", Args: []string{"600"}})
	if err != nil || code != 201 {
		t.Fatalf("submit: %d %s %v", code, b, err)
	}
	var wpid int
	waitFor(t, 30*time.Second, "the workload running", func() bool {
		var l api.WorkloadList
		if c.getJSON(replicaAddr, "/workloads", &l) != nil || len(l.Workloads) != 1 {
			return false
		}
		wpid = l.Workloads[0].PID
		return l.Workloads[0].State == api.StateRunning && wpid > 0
	})
	pids = append(pids, wpid)

	// tee is gone, then Ctrl-C.
	stdoutR.Close()
	go func() {
		for range lines {
		}
	}()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("dev exited with %v, want a clean exit", ee.ProcessState)
		} else if err != nil {
			t.Errorf("dev: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not exit within 60s of SIGINT")
	}
	waitFor(t, 10*time.Second, "every child process and the workload gone", func() bool {
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	})
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("data dir %s is still there (stat: %v)", dataDir, err)
	}
}

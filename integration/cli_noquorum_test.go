package integration

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// With 2 of 3 replicas dead, the CLI says why there is no leader instead of
// the last dead address's "connection refused": how many replicas answer,
// the survivor's raft state and term, the majority needed, and one line per
// replica it tried, whether given all addresses or the survivor's alone.
// `scheduler cluster --stale` shows the survivor's own view. A replica that
// answers 503 is retried until --timeout, past the give-up time of a dead
// address.
func TestCLIExplainsQuorumLoss(t *testing.T) {
	tc := newTestCluster(t)
	tc.startReplicas(3)
	survivor := tc.followers()[0]
	// The survivor must know every voter's HTTP address (each replica
	// records its own through raft once it has joined) before the others die.
	waitFor(t, 20*time.Second, "the survivor to know every replica's HTTP address", func() bool {
		var s api.ReplicaSelf
		if tc.c.getJSON(survivor.http, "/cluster/self", &s) != nil || len(s.Voters) != 3 {
			return false
		}
		for _, v := range s.Voters {
			if v.HTTP == "" {
				return false
			}
		}
		return true
	})
	var dead []*replica
	for _, r := range tc.replicas {
		if r != survivor {
			r.proc.kill()
			dead = append(dead, r)
		}
	}
	waitFor(t, 20*time.Second, "the survivor to stand as a candidate", func() bool {
		var s api.ReplicaSelf
		return tc.c.getJSON(survivor.http, "/cluster/self", &s) == nil && s.State == "candidate" && len(s.Voters) == 3
	})
	head := "no leader: 1 of 3 replicas reachable (" + survivor.id + ": candidate, term "
	tail := "); a majority (2) is needed"
	check := func(args ...string) {
		t.Helper()
		start := time.Now()
		_, errOut, code := tc.cli(args...)
		took := time.Since(start)
		if code != 1 {
			t.Fatalf("%v: exit %d, stderr:\n%s", args, code, errOut)
		}
		if took < 4500*time.Millisecond {
			t.Errorf("%v: gave up after %s, before its --timeout 5s", args, took)
		}
		var first string
		for _, l := range strings.Split(errOut, "\n") {
			if strings.HasPrefix(l, "scheduler cluster: ") {
				first = strings.TrimPrefix(l, "scheduler cluster: ")
			}
		}
		if !strings.HasPrefix(first, head) || !strings.HasSuffix(first, tail) {
			t.Errorf("%v: first line %q, want %q...%q; stderr:\n%s", args, first, head, tail, errOut)
		}
		for _, r := range dead {
			if !strings.Contains(errOut, "\n  "+r.http+": connection refused\n") {
				t.Errorf("%v: no line for the dead %s at %s:\n%s", args, r.id, r.http, errOut)
			}
		}
		if !strings.Contains(errOut, "\n  "+survivor.http+": no leader") {
			t.Errorf("%v: no line for the survivor at %s:\n%s", args, survivor.http, errOut)
		}
		if !strings.Contains(errOut, "retrying: "+head) {
			t.Errorf("%v: no retrying notice:\n%s", args, errOut)
		}
		if !strings.Contains(errOut, "cluster --stale") {
			t.Errorf("%v: no hint at --stale:\n%s", args, errOut)
		}
	}
	check("cluster", "--timeout", "5s")
	check("cluster", "--timeout", "5s", "--addr", survivor.http)

	out, errOut, code := tc.cli("cluster", "--stale", "--timeout", "5s")
	if code != 0 {
		t.Fatalf("cluster --stale: exit %d, stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"stale", survivor.id + "  " + survivor.http, "candidate", "unreachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("cluster --stale: no %q in:\n%s", want, out)
		}
	}
}

// A dead --addr fails within seconds, not after --timeout, saying on stderr
// what it retries at most once a second.
func TestCLIDeadAddressFailsFast(t *testing.T) {
	tc := newTestCluster(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	start := time.Now()
	_, errOut, code := tc.cli("workloads", "--addr", dead)
	took := time.Since(start)
	if code != 1 || took > 10*time.Second {
		t.Fatalf("exit %d after %s, want 1 within seconds; stderr:\n%s", code, took, errOut)
	}
	notices := strings.Count(errOut, "retrying "+dead+" (connection refused)…\n")
	if notices == 0 || float64(notices) > took.Seconds()+1 {
		t.Fatalf("%d retrying notices in %s, want one a second at most:\n%s", notices, took, errOut)
	}
	if !strings.Contains(errOut, "cannot reach the replica at "+dead) || !strings.Contains(errOut, "  "+dead+": connection refused") {
		t.Fatalf("stderr:\n%s", errOut)
	}
}

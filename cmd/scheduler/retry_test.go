package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// deadAddr returns an address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func testClient(timeout time.Duration, addrs ...string) *client {
	return &client{addrs: addrs, http: api.NewHTTPClient("", timeout, nil), timeout: timeout, quiet: true}
}

// A dead address is given up after refusedGiveUp, not after --timeout, and
// the error names it and what happened there.
func TestDeadAddressGivesUpBeforeTimeout(t *testing.T) {
	dead := deadAddr(t)
	start := time.Now()
	err := testClient(30*time.Second, dead).do("GET", "/workloads", nil, nil)
	took := time.Since(start)
	if err == nil {
		t.Fatal("no error from a dead address")
	}
	if took < refusedGiveUp || took > refusedGiveUp+2*time.Second {
		t.Fatalf("gave up after %s, want about %s", took, refusedGiveUp)
	}
	want := "cannot reach the replica at " + dead
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "\n  "+dead+": connection refused") {
		t.Fatalf("error %q, want it to start with %q and name the refusal", err, want)
	}
}

// fakeCandidate answers every call 503, and GET /cluster/self with its own
// raft view: a candidate in term 7 of a three-voter configuration whose two
// other voters are at dead addresses.
func fakeCandidate(t *testing.T, voters ...string) *httptest.Server {
	srv := httptest.NewUnstartedServer(nil)
	self := srv.Listener.Addr().String()
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cluster/self" {
			s := api.ReplicaSelf{ID: "s2", State: "candidate", Term: 7, Voters: []api.ReplicaInfo{
				{ID: "s1", HTTP: voters[0], Voter: true}, {ID: "s2", HTTP: self, Voter: true}, {ID: "s3", HTTP: voters[1], Voter: true}}}
			_ = json.NewEncoder(w).Encode(s)
			return
		}
		w.Header().Set("Retry-After", "1")
		api.WriteError(w, http.StatusServiceUnavailable, "no leader elected yet; retry")
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// A replica that answers 503 is retried until the timeout (well past
// refusedGiveUp), and the error tells the state of the cluster: how many
// replicas answer, their raft state, the majority needed, and one line per
// address, the voters it learned of included.
func TestNoLeaderRetriedUntilTimeoutAndExplained(t *testing.T) {
	d1, d3 := deadAddr(t), deadAddr(t)
	srv := fakeCandidate(t, d1, d3)
	self := srv.Listener.Addr().String()
	timeout := refusedGiveUp + 1500*time.Millisecond
	start := time.Now()
	err := testClient(timeout, self).do("GET", "/cluster/status", nil, nil)
	took := time.Since(start)
	if err == nil {
		t.Fatal("no error without a leader")
	}
	if took < timeout-retryPause {
		t.Fatalf("gave up after %s, before the timeout %s", took, timeout)
	}
	if !isNoLeader(err) {
		t.Fatalf("error %v is not a no-leader error", err)
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"no leader: 1 of 3 replicas reachable (s2: candidate, term 7); a majority (2) is needed",
		"  " + self + ": no leader elected yet (s2: candidate, term 7)",
		"  " + d1 + ": connection refused",
		"  " + d3 + ": connection refused",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("error:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// The "retrying ..." notice names each address and what happened there,
// or the state of the cluster once a replica told it.
func TestRetryNotice(t *testing.T) {
	a := newAttempts([]string{"127.0.0.1:7999"})
	a.list[0].record(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, time.Now())
	if got, want := a.notice(), "retrying 127.0.0.1:7999 (connection refused)…"; got != want {
		t.Fatalf("notice %q, want %q", got, want)
	}
	a.list[0].err = &httpError{status: http.StatusServiceUnavailable, msg: "127.0.0.1:7999: no leader elected yet; retry"}
	a.list[0].self = &api.ReplicaSelf{ID: "s1", State: "candidate", Term: 3, Voters: make([]api.ReplicaInfo, 3)}
	if got, want := a.notice(), "retrying: no leader: 1 of 3 replicas reachable (s1: candidate, term 3); a majority (2) is needed…"; got != want {
		t.Fatalf("notice %q, want %q", got, want)
	}
}

// The notice is printed at most once per retryNotice.
func TestNoticerRateLimit(t *testing.T) {
	n := noticer{out: io.Discard}
	calls := 0
	line := func() string { calls++; return "" }
	now := time.Now()
	n.quiet = true
	n.maybe(now, line)
	n.quiet = false
	for i := range 10 {
		n.maybe(now.Add(time.Duration(i)*100*time.Millisecond), line)
	}
	n.maybe(now.Add(retryNotice), line)
	if calls != 2 {
		t.Fatalf("%d notices in %s, want 2", calls, retryNotice)
	}
}

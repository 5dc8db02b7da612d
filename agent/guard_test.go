package agent

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestGuardKillsAnnouncedGroupsWhenTheAgentGoes(t *testing.T) {
	g := startTestGuard(t)

	announced := startGroup(t, "sleep 600 & sleep 600")
	withdrawn := startGroup(t, "sleep 600 & sleep 600")
	a, w := announced.Process.Pid, withdrawn.Process.Pid
	waitFor(t, 5*time.Second, "both groups to form", func() bool {
		return len(groupMembers(a)) >= 3 && len(groupMembers(w)) >= 3
	})
	g.add(a)
	g.add(w)
	g.remove(w)
	g.add(0) // never sent: "kill -9 -0" would hit the guard's own group
	g.add(1) // never sent: "kill -9 -1" would hit every process

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.close(ctx) // what the agent's death does to the pipe
	_ = announced.Wait()
	if !reapGroup(a, 5*time.Second) {
		t.Errorf("announced group %d survived: %v", a, groupMembers(a))
	}
	if n := len(groupMembers(w)); n < 3 {
		t.Errorf("withdrawn group %d was touched: %d members left", w, n)
	}
	if running(g.pid) {
		t.Errorf("guard %d still running after its stdin closed", g.pid)
	}
}

// startTestGuard starts a guard process for a test (which becomes a child
// subreaper, so that it can reap the orphaned processes of its groups).
func startTestGuard(t *testing.T) *guard {
	t.Helper()
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devNull.Close() })
	g, err := startGuard(devNull.Fd(), "", nil, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.close(context.Background()) })
	return g
}

// After "R" (the agent leaves for a restart) the guard's end kills nothing.
func TestGuardKillsNothingAfterARestartAnnouncement(t *testing.T) {
	g := startTestGuard(t)
	kept := startGroup(t, "sleep 600 & sleep 600")
	k := kept.Process.Pid
	waitFor(t, 5*time.Second, "the group to form", func() bool { return len(groupMembers(k)) >= 3 })
	g.add(k)
	g.restarting()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.close(ctx)
	if running(g.pid) {
		t.Fatalf("guard %d still running after its stdin closed", g.pid)
	}
	if n := len(groupMembers(k)); n < 3 {
		t.Fatalf("the guard killed a group after the restart announcement: %d members left", n)
	}
}

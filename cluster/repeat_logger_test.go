package cluster

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// A line repeated twice a second for 25 s is printed three times: at once,
// then once per window with the count of repeats held back. Another peer's
// line is its own; errors and backoffs that differ do not make a new line.
func TestRepeatLoggerPrintsOncePerWindow(t *testing.T) {
	var buf bytes.Buffer
	base := hclog.New(&hclog.LoggerOptions{Name: "s1", Output: &buf, Level: hclog.Debug})
	log := newRepeatLogger(base, 10*time.Second).Named("raft")
	now := time.Unix(1_800_000_000, 0)
	log.(*repeatLogger).lim.now = func() time.Time { return now }
	for i := range 50 {
		log.Error("failed to heartbeat to", "peer", raft.ServerAddress("127.0.0.1:7102"), "backoff time", time.Duration(i)*10*time.Millisecond,
			"error", errors.New("dial tcp 127.0.0.1:"+string(rune('a'+i%26))+": connection refused"))
		if i == 3 {
			log.Error("failed to heartbeat to", "peer", raft.ServerAddress("127.0.0.1:7103"), "error", errors.New("refused"))
			log.Info("entering follower state") // another message
		}
		now = now.Add(500 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var peer2, other, peer1 []string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "127.0.0.1:7103"):
			peer2 = append(peer2, l)
		case strings.Contains(l, "entering follower state"):
			other = append(other, l)
		case strings.Contains(l, "127.0.0.1:7102"):
			peer1 = append(peer1, l)
		}
	}
	if len(peer2) != 1 || len(other) != 1 || len(peer1) != 3 || len(lines) != 5 {
		t.Fatalf("printed:\n%s", buf.String())
	}
	if strings.Contains(peer1[0], "suppressed") || !strings.Contains(peer1[1], "suppressed=19") || !strings.Contains(peer1[2], "suppressed=19") {
		t.Fatalf("suppressed counts:\n%s", strings.Join(peer1, "\n"))
	}
	if !strings.Contains(peer1[0], "s1.raft") {
		t.Fatalf("the logger's name is lost: %s", peer1[0])
	}
}

// Lines below the logger's level are neither printed nor counted.
func TestRepeatLoggerRespectsLevel(t *testing.T) {
	var buf bytes.Buffer
	log := newRepeatLogger(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info}), time.Minute)
	log.Debug("noisy")
	log.Info("noisy")
	if got := buf.String(); strings.Count(got, "noisy") != 1 || strings.Contains(got, "suppressed") || !strings.Contains(got, "[INFO]") {
		t.Fatalf("printed %q", got)
	}
}

func TestRepeatLimiterForgetsOldKeys(t *testing.T) {
	l := newRepeatLimiter(time.Second)
	now := time.Now()
	l.now = func() time.Time { return now }
	for i := range 2000 {
		l.allow(string(rune(i)))
	}
	now = now.Add(2 * time.Second)
	l.allow("new")
	if len(l.seen) > 1100 {
		t.Fatalf("%d keys kept", len(l.seen))
	}
}

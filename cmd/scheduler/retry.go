package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// How the CLI retries. An address that cannot be reached (nothing listens,
// no route) is given up after refusedGiveUp of failing in a row; one that
// answers 503 (no leader: an election, or a majority down) is retried until
// --timeout, since a leader may come at any moment.
const (
	retryPause    = 300 * time.Millisecond
	refusedGiveUp = 3 * time.Second
	retryNotice   = time.Second // at most one "retrying ..." line per this
	selfTimeout   = time.Second // asking a replica for its own raft view
)

// attempt is what happened at one address on its latest try.
type attempt struct {
	addr        string
	err         error
	unreachable bool      // the connection could not be made
	failingFrom time.Time // first failure of the current run of unreachable tries
	gaveUp      bool
	self        *api.ReplicaSelf // its own raft view, asked after a 503
}

// attempts tracks every address a call has tried, in the order tried.
type attempts struct {
	list []*attempt
}

func newAttempts(addrs []string) *attempts {
	a := &attempts{}
	for _, addr := range addrs {
		a.add(addr)
	}
	return a
}

func (a *attempts) add(addr string) {
	for _, x := range a.list {
		if x.addr == addr {
			return
		}
	}
	a.list = append(a.list, &attempt{addr: addr})
}

// record notes a failed try at now.
func (a *attempt) record(err error, now time.Time) {
	a.err = err
	a.self = nil
	if !isUnreachable(err) {
		a.unreachable = false
		a.failingFrom = time.Time{}
		return
	}
	if !a.unreachable {
		a.unreachable = true
		a.failingFrom = now
	}
	if now.Sub(a.failingFrom) >= refusedGiveUp {
		a.gaveUp = true
	}
}

// live returns the addresses still worth a try.
func (a *attempts) live() []*attempt {
	var out []*attempt
	for _, x := range a.list {
		if !x.gaveUp {
			out = append(out, x)
		}
	}
	return out
}

// isUnreachable reports whether err means the connection could not be made.
func isUnreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isNoLeader reports whether err is a 503 answer.
func isNoLeader(err error) bool {
	var he *httpError
	return errors.As(err, &he) && he.status == http.StatusServiceUnavailable
}

// reason is a short account of what happened at an address.
func (a *attempt) reason() string {
	var he *httpError
	switch {
	case a.err == nil && a.self != nil:
		return fmt.Sprintf("answers, not tried for the call (%s: %s, term %d)", a.self.ID, a.self.State, a.self.Term)
	case a.err == nil:
		return "not tried"
	case errors.Is(a.err, syscall.ECONNREFUSED):
		return "connection refused"
	case isUnreachable(a.err):
		var op *net.OpError
		errors.As(a.err, &op)
		if op.Timeout() {
			return "connection timed out"
		}
		return op.Err.Error()
	case errors.As(a.err, &he):
		msg := strings.TrimSuffix(strings.TrimPrefix(he.msg, a.addr+": "), "; retry")
		if a.self != nil {
			msg += fmt.Sprintf(" (%s: %s, term %d)", a.self.ID, a.self.State, a.self.Term)
		}
		return msg
	default:
		return strings.TrimPrefix(a.err.Error(), a.addr+": ")
	}
}

// askSelf asks every address that answered 503, or is not tried yet, for
// its own raft view (GET /cluster/self, which a replica answers itself),
// and adds the voters it names to the addresses to try, so that the summary
// counts the replicas that are really there.
func (c *client) askSelf(a *attempts) {
	for i := 0; i < len(a.list); i++ { // a.list grows as voters are found
		x := a.list[i]
		if x.self != nil || (x.err != nil && !isNoLeader(x.err)) {
			continue
		}
		s, err := c.self(x.addr)
		if err != nil {
			if x.err == nil { // found among the voters, not tried yet
				x.record(err, time.Now())
			}
			continue
		}
		x.self = s
		for _, v := range s.Voters {
			if v.HTTP != "" {
				a.add(v.HTTP)
			}
		}
	}
}

// self asks one replica for its own raft view.
func (c *client) self(addr string) (*api.ReplicaSelf, error) {
	ctx, cancel := context.WithTimeout(context.Background(), selfTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/cluster/self", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /cluster/self: %s", resp.Status)
	}
	var s api.ReplicaSelf
	if err := json.Unmarshal(b, &s); err != nil || s.ID == "" {
		return nil, errors.New("GET /cluster/self: not a replica's answer")
	}
	return &s, nil
}

// summary is one line on the state of the cluster as the tries saw it, or
// "" when no replica told its raft view.
func (a *attempts) summary() string {
	selves := map[string]*api.ReplicaSelf{}
	voters := 0
	var ids []string
	for _, x := range a.list {
		if x.self == nil {
			continue
		}
		if _, ok := selves[x.self.ID]; !ok {
			ids = append(ids, x.self.ID)
		}
		selves[x.self.ID] = x.self
		voters = max(voters, len(x.self.Voters))
	}
	if len(selves) == 0 {
		return ""
	}
	sort.Strings(ids)
	var views []string
	for _, id := range ids {
		s := selves[id]
		views = append(views, fmt.Sprintf("%s: %s, term %d", id, s.State, s.Term))
	}
	if voters == 0 {
		return fmt.Sprintf("no leader (%s)", strings.Join(views, "; "))
	}
	majority := voters/2 + 1
	head := fmt.Sprintf("no leader: %d of %d replicas reachable (%s)", len(selves), voters, strings.Join(views, "; "))
	if len(selves) < majority {
		return fmt.Sprintf("%s; a majority (%d) is needed", head, majority)
	}
	return head + "; an election is under way"
}

// notice is the "retrying ..." line: the state of the cluster when a
// replica told it, else each address and what happened there.
func (a *attempts) notice() string {
	if s := a.summary(); s != "" {
		return "retrying: " + s + "…"
	}
	var parts []string
	for _, x := range a.live() {
		parts = append(parts, fmt.Sprintf("%s (%s)", x.addr, x.reason()))
	}
	return "retrying " + strings.Join(parts, ", ") + "…"
}

// failure is the error of a call that gave up: a first line on what is
// wrong, then one line per address tried.
func (a *attempts) failure(elapsed time.Duration) error {
	head := a.summary()
	if head == "" {
		allUnreachable := true
		for _, x := range a.list {
			allUnreachable = allUnreachable && x.unreachable
		}
		switch {
		case allUnreachable && len(a.list) == 1:
			head = fmt.Sprintf("cannot reach the replica at %s (tried for %s)", a.list[0].addr, elapsed.Round(100*time.Millisecond))
		case allUnreachable:
			head = fmt.Sprintf("cannot reach any of the %d replica addresses (tried for %s)", len(a.list), elapsed.Round(100*time.Millisecond))
		default:
			head = fmt.Sprintf("no answer from a leader (tried for %s)", elapsed.Round(100*time.Millisecond))
		}
	}
	lines := []string{head}
	for _, x := range a.list {
		lines = append(lines, fmt.Sprintf("  %s: %s", x.addr, x.reason()))
	}
	var he *httpError
	for _, x := range a.list {
		if errors.As(x.err, &he) {
			return &httpError{status: he.status, msg: strings.Join(lines, "\n")}
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}

// noticer prints the "retrying ..." lines, at most one per retryNotice.
type noticer struct {
	quiet bool
	out   io.Writer // os.Stderr when nil
	last  time.Time
}

func (n *noticer) maybe(now time.Time, line func() string) {
	if n.quiet || now.Sub(n.last) < retryNotice {
		return
	}
	n.last = now
	out := n.out
	if out == nil {
		out = os.Stderr
	}
	fmt.Fprintln(out, line())
}

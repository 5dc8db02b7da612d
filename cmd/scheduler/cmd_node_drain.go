package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// nodePollInterval is the pause between two looks at a draining node.
var nodePollInterval = 500 * time.Millisecond

func runNodeDrain(args []string) int {
	const cmd = "node drain"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	deadline := fs.String("deadline", "", "how long the drain may take: `D` is a duration such as 10m or 1h (default 1h, at most 24h); after it, what is left on the node is moved off without waiting for its replacement")
	disable := fs.Bool("disable", false, "cancel the drain under way: the node takes new work again")
	detach := fs.Bool("detach", false, "start the drain and return, without following it")
	if code, ok := parse(fs, args, nodeUsageLine("drain"), 1); !ok {
		return code
	}
	id := fs.Arg(0)
	if err := nodeID(id); err != nil {
		return fail(cmd, err)
	}
	req := api.DrainRequest{Enable: !*disable}
	if *deadline != "" {
		if *disable {
			return fail(cmd, usageError("--deadline is for starting a drain; --disable cancels one"))
		}
		d, err := parseDeadline(*deadline)
		if err != nil {
			return fail(cmd, err)
		}
		req.Deadline = api.Duration(d)
	}
	c := cf.client()
	var n api.Node
	if err := c.do("POST", nodePath(id, "/drain"), req, &n); err != nil {
		return fail(cmd, err)
	}
	if n.ID == "" {
		n.ID = id
	}
	if *disable {
		if c.json {
			printJSON(n)
			return exitOK
		}
		fmt.Printf("node %s: no drain under way any more; it is eligible and takes new work\n", escapeText(n.ID))
		return exitOK
	}
	if *detach && c.json {
		printJSON(n)
		return exitOK
	}
	// With --json, stdout holds the final node alone: what happens
	// meanwhile goes to stderr.
	out := io.Writer(os.Stdout)
	if c.json {
		out = os.Stderr
	}
	f := &drainFollower{c: c, id: n.ID, out: out, node: n}
	if *detach {
		f.progress()
		fmt.Fprintf(out, "not following the drain: see 'scheduler nodes'; cancel it with 'scheduler node drain %s --disable'\n", escapeText(n.ID))
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	code := f.follow(ctx)
	if c.json && f.ended {
		printJSON(f.node)
	}
	return code
}

// parseDeadline parses --deadline: a positive Go duration of at most
// api.MaxDuration.
func parseDeadline(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, usageError(fmt.Sprintf("--deadline %q: want a duration such as 10m or 1h", s))
	case d <= 0:
		return 0, usageError(fmt.Sprintf("--deadline %q: must be positive", s))
	case d > api.MaxDuration:
		return 0, usageError(fmt.Sprintf("--deadline %q: at most %s", s, api.MaxDuration))
	}
	return d, nil
}

// drainFollower follows the drain of one node, printing a line each time
// the count of workloads left on it changes.
type drainFollower struct {
	c    *client
	id   string
	out  io.Writer
	node api.Node // the latest answer about the node
	last string   // the last progress line printed
	// ended says the drain was seen to end (finished or cancelled).
	ended bool
}

// progress prints how far the drain is, if that changed since the last
// line: "drain of n1: 4 workloads left, deadline 10:42:00".
func (f *drainFollower) progress() {
	line := "drain of " + escapeText(f.id)
	if d := f.node.Drain; d != nil {
		line += fmt.Sprintf(": %s left, deadline %s", plural(d.Remaining, "workload"), clockTime(d.Deadline, time.Now()))
	} else {
		line += ": under way"
	}
	if line != f.last {
		fmt.Fprintln(f.out, line)
		f.last = line
	}
}

// clockTime shows t as a local time of day, with the date when it is not
// on the same day as now.
func clockTime(t, now time.Time) string {
	t, now = t.Local(), now.Local()
	if t.Year() == now.Year() && t.YearDay() == now.YearDay() {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04:05")
}

// follow polls the node until its drain ends, and returns the exit code: 0
// when the drain finished, 1 when it was cancelled, could not be followed
// or the following was interrupted (the drain then goes on).
func (f *drainFollower) follow(ctx context.Context) int {
	name := escapeText(f.id)
	for {
		if !f.node.Draining {
			f.ended = true
			if f.node.Eligible {
				fmt.Fprintf(f.out, "drain of %s was cancelled: it takes new work again\n", name)
				return exitFail
			}
			fmt.Fprintf(f.out, "drain of %s finished: it takes no new work until 'scheduler node eligibility %s --enable'\n", name, name)
			return exitOK
		}
		f.progress()
		err := sleepCtx(ctx, nodePollInterval)
		if err == nil {
			f.node, err = getCtx[api.Node](ctx, f.c, nodePath(f.id))
		}
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(os.Stderr, "scheduler node drain: interrupted: stopped following; the drain of %s goes on (cancel it with 'scheduler node drain %s --disable')\n", name, name)
				return exitFail
			}
			code := fail("node drain", err)
			fmt.Fprintf(os.Stderr, "  (stopped following; the drain of %s may still be under way: see 'scheduler nodes')\n", name)
			return code
		}
	}
}

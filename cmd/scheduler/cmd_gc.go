package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/micro-orchestrator/mo/api"
)

// runGC forces a garbage collection on the leader and says what it removed.
func runGC(args []string) int {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	cf := addClientFlags(fs)
	olderThan := fs.Duration("older-than", -1, "collect what ended this long ago (default: the cluster's --gc-after; 0s: everything that ended)")
	if code, ok := parse(fs, args, "gc", 0); !ok {
		return code
	}
	path := "/gc"
	if *olderThan >= 0 {
		path += "?older_than=" + olderThan.String()
	} else if *olderThan != -1 {
		fmt.Fprintln(os.Stderr, "scheduler gc: --older-than must not be negative")
		return exitUsage
	}
	c := cf.client()
	var res api.GCResponse
	if err := c.do("POST", path, nil, &res); err != nil {
		return fail("gc", err)
	}
	if c.json {
		printJSON(res)
		return exitOK
	}
	fmt.Fprintln(os.Stdout, gcLine(res))
	return exitOK
}

// gcLine says what a garbage collection removed: "removed 12 workloads, 1
// node, 0 jobs".
func gcLine(r api.GCResponse) string {
	return fmt.Sprintf("removed %s, %s, %s", plural(r.Workloads, "workload"), plural(r.Nodes, "node"), plural(r.Jobs, "job"))
}

// plural counts n of noun: "1 node", "0 jobs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

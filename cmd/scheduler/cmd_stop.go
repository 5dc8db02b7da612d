package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// stopParallel bounds the stops in flight at once.
const stopParallel = 16

// stopNotice is how long a stop may take before the CLI says why it waits.
const stopNotice = 1500 * time.Millisecond

// stopResult is the outcome of one stop, as printed with --json.
type stopResult struct {
	Workloads []api.Workload `json:"workloads"`
	Errors    []stopError    `json:"errors,omitempty"`
}

type stopError struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

func runStop(args []string) int {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	cf := addClientFlags(fs)
	name := fs.String("name", "", "stop every workload of this `NAME` that is not stopped yet")
	if code, ok := parse(fs, args, "stop ID... | stop --name NAME", -1); !ok {
		return code
	}
	if (*name == "") == (fs.NArg() == 0) {
		fmt.Fprintln(os.Stderr, "scheduler stop: give workload IDs or --name NAME (not both)")
		fs.Usage()
		return exitUsage
	}
	c := cf.client()
	ids := fs.Args()
	if *name != "" {
		var list api.WorkloadList
		if err := c.do("GET", "/workloads?"+url.Values{"name": {*name}}.Encode(), nil, &list); err != nil {
			return fail("stop", err)
		}
		ids = nil
		for _, w := range list.Workloads {
			if w.State != api.StateStopped {
				ids = append(ids, w.ID)
			}
		}
		if len(ids) == 0 {
			fmt.Fprintf(os.Stderr, "scheduler stop: no workload named %q is left to stop\n", *name)
			if c.json {
				printJSON(stopResult{Workloads: []api.Workload{}})
			}
			return exitOK
		}
	}

	// A workload that ignores SIGTERM is killed only after the agent's stop
	// grace: say so when a stop takes a while, rather than hang silently.
	notice := time.AfterFunc(stopNotice, func() {
		fmt.Fprintln(os.Stderr, "scheduler stop: waiting for the workloads to exit: each got SIGTERM, and its agent sends SIGKILL after its stop grace (agent --stop-grace, 10s by default)")
	})
	res := stopWorkloads(c, ids)
	notice.Stop()

	if c.json {
		if len(ids) == 1 && *name == "" && len(res.Errors) == 0 {
			printJSON(res.Workloads[0]) // one ID: the workload, as always
		} else {
			printJSON(res)
		}
	} else {
		for _, w := range res.Workloads {
			fmt.Printf("%s stopped\n", escapeText(w.ID))
		}
	}
	for _, e := range res.Errors {
		fmt.Fprintf(os.Stderr, "scheduler stop: %s: %s\n", escapeText(e.ID), escapeText(e.Error))
	}
	if len(res.Errors) > 0 {
		if len(ids) > 1 {
			fmt.Fprintf(os.Stderr, "scheduler stop: %d of %d stops failed\n", len(res.Errors), len(ids))
		}
		return exitFail
	}
	return exitOK
}

// stopWorkloads stops ids, stopParallel at a time, and returns the outcomes in the
// order of ids.
func stopWorkloads(c *client, ids []string) stopResult {
	type outcome struct {
		w   api.Workload
		err error
	}
	out := make([]outcome, len(ids))
	sem := make(chan struct{}, stopParallel)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].err = c.do("DELETE", "/workloads/"+url.PathEscape(id), nil, &out[i].w)
		})
	}
	wg.Wait()
	res := stopResult{Workloads: []api.Workload{}}
	for i, o := range out {
		if o.err != nil {
			res.Errors = append(res.Errors, stopError{ID: ids[i], Error: o.err.Error()})
			continue
		}
		res.Workloads = append(res.Workloads, o.w)
	}
	return res
}

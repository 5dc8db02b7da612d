package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/micro-orchestrator/mo/api"
)

// nodeCommand is one subcommand of scheduler node.
type nodeCommand struct {
	name    string
	args    string // what follows the name in its usage line
	summary string
	run     func(args []string) int
}

func nodeCommands() []nodeCommand {
	return []nodeCommand{
		{"drain", "ID [--deadline D] [--disable] [--detach]", "move a node's workloads off and follow the drain to its end; --disable cancels it", runNodeDrain},
		{"eligibility", "ID --enable|--disable", "let a node take new work, or not (what runs there stays)", runNodeEligibility},
		{"purge", "ID", "forget an offline node that has nothing on it", runNodePurge},
	}
}

// nodeUsageLine is the usage line of a subcommand, for its -h.
func nodeUsageLine(name string) string {
	for _, c := range nodeCommands() {
		if c.name == name {
			return "node " + c.name + " " + c.args
		}
	}
	return "node " + name
}

// runNode operates nodes: node drain|eligibility|purge.
func runNode(args []string) int {
	if len(args) == 0 {
		nodeUsage(os.Stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		nodeUsage(os.Stderr)
		return exitOK
	case "help":
		if len(args) == 1 {
			nodeUsage(os.Stdout)
			return exitOK
		}
		for _, c := range nodeCommands() {
			if c.name == args[1] {
				old := os.Stderr
				os.Stderr = os.Stdout
				defer func() { os.Stderr = old }()
				return c.run([]string{"-h"})
			}
		}
		fmt.Fprintf(os.Stderr, "scheduler node help: unknown subcommand %q\n\n", escapeText(args[1]))
		nodeUsage(os.Stderr)
		return exitUsage
	}
	for _, c := range nodeCommands() {
		if c.name == args[0] {
			return c.run(args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "scheduler node: unknown subcommand %q\n\n", escapeText(args[0]))
	nodeUsage(os.Stderr)
	return exitUsage
}

// nodeUsage lists the node subcommands, the flags they share and examples.
func nodeUsage(w io.Writer) {
	fmt.Fprint(w, "Usage: scheduler node SUBCOMMAND ID [flags]\n\n")
	fmt.Fprint(w, "Operates the nodes the agents registered ('scheduler nodes' lists them).\n\n")
	fmt.Fprint(w, "Subcommands:\n")
	t := newTable(w)
	for _, c := range nodeCommands() {
		t.row("  "+c.name+" "+c.args, c.summary)
	}
	t.flush()
	fmt.Fprint(w, "\nFlags:\n")
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(w)
	addClientFlags(fs)
	fs.PrintDefaults()
	fmt.Fprint(w, "\nEvery subcommand takes these. Run 'scheduler node SUBCOMMAND -h' for one subcommand.\n")
	printExample(w, "node")
}

// nodeID checks a node ID given on the command line.
func nodeID(id string) error {
	if strings.TrimSpace(id) == "" {
		return usageError("the node ID is empty (see 'scheduler nodes')")
	}
	return nil
}

// nodePath is the API path of a node, with more path after it.
func nodePath(id string, more ...string) string {
	return "/nodes/" + url.PathEscape(id) + strings.Join(more, "")
}

func runNodeEligibility(args []string) int {
	const cmd = "node eligibility"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	enable := fs.Bool("enable", false, "the node takes new work again")
	disable := fs.Bool("disable", false, "the node takes no new work; what runs there stays")
	if code, ok := parse(fs, args, nodeUsageLine("eligibility"), 1); !ok {
		return code
	}
	if *enable == *disable {
		fmt.Fprintln(os.Stderr, "scheduler node eligibility: give exactly one of --enable and --disable")
		fs.Usage()
		return exitUsage
	}
	id := fs.Arg(0)
	if err := nodeID(id); err != nil {
		return fail(cmd, err)
	}
	c := cf.client()
	eligible := *enable
	var n api.Node
	if err := c.do("POST", nodePath(id, "/eligibility"), api.EligibilityRequest{Eligible: &eligible}, &n); err != nil {
		code := fail(cmd, err)
		if isConflict(err) && eligible {
			fmt.Fprintf(os.Stderr, "  (cancel the drain first: 'scheduler node drain %s --disable')\n", escapeText(id))
		}
		return code
	}
	if c.json {
		printJSON(n)
		return exitOK
	}
	if n.Eligible {
		fmt.Printf("node %s is eligible: it takes new work\n", escapeText(n.ID))
	} else {
		fmt.Printf("node %s is ineligible: it keeps what it runs and takes no new work\n", escapeText(n.ID))
	}
	return exitOK
}

func runNodePurge(args []string) int {
	const cmd = "node purge"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, nodeUsageLine("purge"), 1); !ok {
		return code
	}
	id := fs.Arg(0)
	if err := nodeID(id); err != nil {
		return fail(cmd, err)
	}
	c := cf.client()
	var resp struct {
		Purged string `json:"purged"`
	}
	if err := c.do("DELETE", nodePath(id), nil, &resp); err != nil {
		return fail(cmd, err)
	}
	if c.json {
		printJSON(resp)
		return exitOK
	}
	if resp.Purged == "" {
		resp.Purged = id
	}
	fmt.Printf("node %s purged\n", escapeText(resp.Purged))
	return exitOK
}

// isConflict reports whether err is a 409 answer.
func isConflict(err error) bool {
	var he *httpError
	return errors.As(err, &he) && he.status == http.StatusConflict
}

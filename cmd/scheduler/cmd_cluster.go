package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/fsm"
	"github.com/micro-orchestrator/mo/internal/atomicfile"
)

func runCluster(args []string) int {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	cf := addClientFlags(fs)
	stale := fs.Bool("stale", false, "ask the first replica that answers for its own view, even without a leader")
	if code, ok := parse(fs, args, "cluster [--stale]", 0); !ok {
		return code
	}
	var st api.ClusterStatus
	c := cf.client()
	path := "/cluster/status"
	if *stale {
		path += "?stale=true"
	}
	if err := c.do("GET", path, nil, &st); err != nil {
		code := fail("cluster", err)
		if !*stale && isNoLeader(err) {
			fmt.Fprintln(os.Stderr, "  ('scheduler cluster --stale' shows what a reachable replica sees)")
		}
		return code
	}
	if c.json {
		printJSON(st)
		return exitOK
	}
	if *stale {
		fmt.Println("(stale: one replica's own view)")
	}
	fmt.Printf("Leader: %s (%s)   Term: %d   Commit index: %d\n\n", dash(st.Leader.ID), dash(st.Leader.HTTP), st.Term, st.CommitIndex)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHTTP\tRAFT\tSTATE\tVOTER\tVERSION\tCERT EXPIRES")
	now := time.Now()
	for _, r := range st.Replicas {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", r.ID, dash(r.HTTP), r.Raft, r.State, r.Voter, dash(r.Version), certExpiry(r.TLSCertExpires, now))
	}
	tw.Flush()
	return exitOK
}

// certExpiry shows a certificate's expiry date and the days left, flagging
// the last 30 days; "-" when TLS is off or the replica did not answer.
func certExpiry(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	days := int(t.Sub(now).Hours() / 24)
	s := fmt.Sprintf("%s (%dd)", t.UTC().Format("2006-01-02"), days)
	switch {
	case !t.After(now):
		s = t.UTC().Format("2006-01-02") + " EXPIRED"
	case days < 30:
		s += " RENEW"
	}
	return s
}

func runBackup(args []string) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	cf := addClientFlags(fs)
	force := fs.Bool("force", false, "overwrite FILE if it exists")
	if code, ok := parse(fs, args, "backup [--force] FILE", 1); !ok {
		return code
	}
	if err := refuseOverwrite(fs.Arg(0), *force); err != nil {
		return fail("backup", err)
	}
	var b []byte
	if err := cf.client().do("GET", "/state", nil, &b); err != nil {
		return fail("backup", err)
	}
	st, err := fsm.ParseState(b)
	if err != nil {
		return fail("backup", errors.New("the cluster answered a state this build cannot read: "+err.Error()))
	}
	path := fs.Arg(0)
	if err := atomicfile.Write(path, b); err != nil {
		return fail("backup", err)
	}
	abs, _ := filepath.Abs(path)
	fmt.Printf("saved %d workloads and %d nodes to %s\n", len(st.Workloads), len(st.Nodes), abs)
	return exitOK
}

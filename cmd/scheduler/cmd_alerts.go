package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// eventsPollWait is how long one long poll of `events -f` waits for news.
const eventsPollWait = 20 * time.Second

func runAlerts(args []string) int {
	fs := flag.NewFlagSet("alerts", flag.ContinueOnError)
	cf := addClientFlags(fs)
	if code, ok := parse(fs, args, "alerts", 0); !ok {
		return code
	}
	var l api.AlertList
	c := cf.client()
	if err := c.do("GET", "/alerts", nil, &l); err != nil {
		return fail("alerts", err)
	}
	if c.json {
		printJSON(l)
		return exitOK
	}
	printAlerts(os.Stdout, l.Alerts, time.Now())
	return exitOK
}

// printAlerts prints the active alerts as a table.
func printAlerts(w io.Writer, as []api.Alert, now time.Time) {
	if len(as) == 0 {
		fmt.Fprintln(w, "No active alerts.")
		return
	}
	t := newTable(w)
	t.row("NAME", "SEVERITY", "SUBJECT", "SINCE", "SUMMARY")
	for _, a := range as {
		since := a.Since.Local().Format("2006-01-02 15:04:05") + " (" + now.Sub(a.Since).Round(time.Second).String() + ")"
		t.row(a.Name, a.Severity, a.Subject, since, a.Summary)
	}
	t.flush()
}

func runEvents(args []string) int {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	cf := addClientFlags(fs)
	var follow bool
	fs.BoolVar(&follow, "f", false, "follow: after the recent events, print new ones as they happen (until interrupted)")
	fs.BoolVar(&follow, "follow", false, "same as -f")
	limit := fs.Int("limit", 50, "number of recent events to print (1-1000)")
	if code, ok := parse(fs, args, "events [-f] [--limit N]", 0); !ok {
		return code
	}
	if *limit < 1 || *limit > 1000 {
		fmt.Fprintln(os.Stderr, "scheduler events: --limit must be from 1 to 1000")
		return exitUsage
	}
	c := cf.client()
	var l api.EventList
	if err := c.do("GET", "/events?limit="+itoa(*limit), nil, &l); err != nil {
		return fail("events", err)
	}
	if c.json && !follow {
		printJSON(l)
		return exitOK
	}
	p := eventPrinter{w: os.Stdout, json: c.json}
	for _, e := range l.Events {
		p.print(e)
	}
	if !follow {
		if len(l.Events) == 0 && !c.json {
			fmt.Println("No events yet.")
		}
		return exitOK
	}

	// Follow with long polls: each one returns as soon as there is news.
	fc := *c
	fc.http = &http.Client{Timeout: eventsPollWait + 20*time.Second, Transport: c.http.Transport}
	epoch, after := l.Epoch, l.LastSeq
	for {
		var next api.EventList
		path := fmt.Sprintf("/events?after=%d&wait=%s&limit=1000&epoch=%s", after, eventsPollWait, url.QueryEscape(epoch))
		if err := fc.do("GET", path, nil, &next); err != nil {
			return fail("events", err)
		}
		switch {
		case next.Epoch != epoch:
			// Another replica leads: its log is new to us. Print what it
			// recorded after the last event shown.
			for _, e := range next.Events {
				if e.Time.After(p.last) {
					p.print(e)
				}
			}
		default:
			if len(next.Events) > 0 && next.Events[0].Seq > after+1 {
				fmt.Fprintf(os.Stderr, "scheduler events: %d events were dropped from the leader's log before they could be shown\n", next.Events[0].Seq-after-1)
			}
			for _, e := range next.Events {
				p.print(e)
			}
		}
		epoch, after = next.Epoch, next.LastSeq
	}
}

// eventPrinter prints events one a line, or as JSON lines.
type eventPrinter struct {
	w    io.Writer
	json bool
	last time.Time // time of the last event printed
}

func (p *eventPrinter) print(e api.Event) {
	if e.Time.After(p.last) {
		p.last = e.Time
	}
	if p.json {
		b, _ := json.Marshal(e)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	fmt.Fprintf(p.w, "%s  %s  %s  %s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"), padRight(escapeText(e.Kind), 27), padRight(escapeText(e.Subject), 22), escapeText(e.Message))
}

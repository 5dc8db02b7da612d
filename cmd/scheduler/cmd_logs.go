package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

func runLogs(args []string) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	cf := addClientFlags(fs)
	tail := fs.String("tail", "100", "number of lines from the end (1-10000), or all (or 0) for the whole log the agent keeps")
	var follow bool
	fs.BoolVar(&follow, "f", false, "follow: after the last lines, print the output as it is written, until the instance ends (or Ctrl-C)")
	fs.BoolVar(&follow, "follow", false, "same as -f")
	if code, ok := parse(fs, args, "logs ID [-f] [--tail N|all]", 1); !ok {
		return code
	}
	t, err := parseTail(*tail)
	if err != nil {
		return fail("logs", err)
	}
	c := cf.client()
	id := fs.Arg(0)
	if follow {
		if err := c.followLogs(id, t, os.Stdout); err != nil {
			return fail("logs", err)
		}
		return exitOK
	}
	var b []byte
	if err := c.do("GET", "/workloads/"+url.PathEscape(id)+"/logs?tail="+t, nil, &b); err != nil {
		return fail("logs", err)
	}
	os.Stdout.Write(b)
	return exitOK
}

// parseTail turns --tail into the API's tail parameter: a number of lines,
// or all.
func parseTail(v string) (string, error) {
	if v == "all" || v == "0" {
		return "all", nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 10000 {
		return "", usageError(fmt.Sprintf("--tail must be all (or 0) or a number from 1 to 10000, got %q", v))
	}
	return v, nil
}

// followLogs prints a workload's output as it is written, through any replica
// (followers forward to the leader, which relays the agent's stream), until
// the instance ends. The stream comes as frames with positions: when it breaks
// (a replica shut down or died), it goes on through the next replica from the
// last position shown, so nothing is missed or shown twice.
func (c *client) followLogs(id, tail string, out io.Writer) error {
	stream := &http.Client{Transport: c.http.Transport} // no overall timeout
	base := "/workloads/" + url.PathEscape(id) + "/logs?follow=true&frames=true&"
	q := "tail=" + tail
	var next int64 // the position after the last frame shown
	var gen uint64 // the instance followed
	for {
		var ended bool
		from, err := c.streamOnce(stream, base+q, func(body io.Reader) error {
			dec := json.NewDecoder(body)
			for {
				var f api.LogFrame
				if err := dec.Decode(&f); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
				if f.Generation != 0 {
					gen = f.Generation
				}
				if f.Lost > 0 {
					fmt.Fprintf(os.Stderr, "scheduler logs: %d bytes of output were dropped by the agent's log cap before they could be shown\n", f.Lost)
				}
				if _, err := out.Write(f.Data); err != nil {
					return err
				}
				next, ended = f.Next, f.End
				if ended {
					return nil
				}
			}
		})
		switch {
		case ended:
			return nil
		case err != nil && !errors.Is(err, errStreamBroke):
			return err // no replica would stream it
		case gen == 0:
			return fmt.Errorf("%s: the log stream ended before it started", from)
		}
		why := "ended"
		if err != nil {
			why = "broke (" + err.Error() + ")"
		}
		fmt.Fprintf(os.Stderr, "scheduler logs: the stream from %s %s; going on through the next replica that answers\n", from, why)
		q = fmt.Sprintf("%s=%d&%s=%d", api.ParamSince, next, api.ParamLogGeneration, gen)
		c.addrs = lastOf(c.addrs, from) // try the others first
	}
}

// lastOf returns addrs with addr moved to the end.
func lastOf(addrs []string, addr string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if a != addr {
			out = append(out, a)
		}
	}
	if len(out) < len(addrs) {
		out = append(out, addr)
	}
	return out
}

// errStreamBroke marks a stream that ended in an error after it started.
var errStreamBroke = errors.New("stream broke")

// streamOnce opens path on the first replica that answers (retrying until
// the client's timeout, like do) and hands the body to consume. It returns
// the replica, and an error wrapping errStreamBroke when consume failed.
func (c *client) streamOnce(hc *http.Client, path string, consume func(io.Reader) error) (string, error) {
	if c.setupErr != nil {
		return "", c.setupErr
	}
	deadline := time.Now().Add(c.timeout)
	var lastErr error
	for {
		for _, addr := range c.addrs {
			req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
			if err != nil {
				return addr, err
			}
			resp, err := hc.Do(req)
			if err != nil {
				lastErr = fmt.Errorf("%s: %w", addr, err)
				continue
			}
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				herr := answerError(addr, resp.StatusCode, b)
				// 409: not placed on a node yet (just submitted); wait for it.
				if !retryable(herr, http.MethodGet) && resp.StatusCode != http.StatusConflict {
					return addr, herr
				}
				lastErr = herr
				continue
			}
			err = consume(resp.Body)
			resp.Body.Close()
			if err != nil {
				return addr, fmt.Errorf("%w: %v", errStreamBroke, err)
			}
			return addr, nil
		}
		if time.Now().Add(300 * time.Millisecond).After(deadline) {
			return "", lastErr
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// answerError is the error of a non-200 answer, as client.do makes it.
func answerError(addr string, status int, body []byte) error {
	msg := http.StatusText(status)
	var e api.Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if status == http.StatusUnauthorized {
		msg += " (set --token or SCHEDULER_TOKEN)"
	}
	return &httpError{status: status, msg: fmt.Sprintf("%s: %s", addr, msg)}
}

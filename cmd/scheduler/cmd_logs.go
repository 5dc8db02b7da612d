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
// (followers forward to the leader, which relays the agent's stream). When a
// stream ends while the same instance still runs (the replica went away), it
// follows again through the next one; it returns once the instance has ended.
func (c *client) followLogs(id, tail string, out io.Writer) error {
	stream := &http.Client{Transport: c.http.Transport} // no overall timeout
	var gen uint64
	for first := true; ; first = false {
		var w api.Workload
		if err := c.do("GET", "/workloads/"+url.PathEscape(id), nil, &w); err != nil {
			return err
		}
		if !first && (w.Generation != gen || w.State != api.StateRunning) {
			return nil // the instance followed has ended
		}
		gen = w.Generation
		if !first {
			tail = "0" // only what is new; output written in between may be missing
		}
		started := time.Now()
		from, err := c.streamOnce(stream, "/workloads/"+url.PathEscape(id)+"/logs?follow=true&tail="+tail, out)
		switch {
		case err == nil: // the instance ended, or the replica shut down
		case errors.Is(err, errStreamBroke):
			fmt.Fprintf(os.Stderr, "scheduler logs: the stream from %s broke (%v); following again\n", from, err)
		default:
			return err // no replica would stream it
		}
		if time.Since(started) < time.Second {
			time.Sleep(time.Second) // the instance may have ended before the leader noticed
		}
	}
}

// errStreamBroke marks a stream that ended in an error after it started.
var errStreamBroke = errors.New("stream broke")

// streamOnce opens path on the first replica that answers and copies the
// body to out as it comes. It returns the replica, and nil for a stream that
// ended cleanly.
func (c *client) streamOnce(hc *http.Client, path string, out io.Writer) (string, error) {
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
				if !retryable(herr, http.MethodGet) {
					return addr, herr
				}
				lastErr = herr
				continue
			}
			err = copyFlushing(out, resp.Body)
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

// copyFlushing copies r to w piece by piece as it arrives (no buffering
// until a block is full).
func copyFlushing(w io.Writer, r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

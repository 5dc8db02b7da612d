package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/api"
	"github.com/micro-orchestrator/mo/internal/tlsutil"
)

// client is the CLI's connection to the cluster: a list of replica
// addresses tried in turn.
type client struct {
	addrs   []string
	http    *http.Client
	json    bool
	timeout time.Duration
	quiet   bool // no "retrying ..." lines on stderr
	// setupErr is a bad TLS flag or file: every call fails with it at once.
	setupErr error
}

// clientFlags adds the flags every client command shares.
type clientFlags struct {
	addr    *string
	token   *string
	json    *bool
	timeout *time.Duration
	tls     *tlsutil.Files
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	def := os.Getenv("SCHEDULER_ADDR")
	if def == "" {
		def = "127.0.0.1:7001"
	}
	tf := &tlsutil.Files{}
	tlsutil.AddFlags(fs, tf, true)
	return clientFlags{
		tls:     tf,
		addr:    fs.String("addr", def, "comma-separated replica HTTP addresses, tried in turn ($SCHEDULER_ADDR)"),
		token:   fs.String("token", "", "cluster token (default $SCHEDULER_TOKEN)"),
		json:    fs.Bool("json", false, "print JSON"),
		timeout: fs.Duration("timeout", 30*time.Second, "give up after this long (retrying while no leader is elected)"),
	}
}

func (f clientFlags) client() *client {
	if *f.token == "" {
		// Read here, not as the flag's default, so that -h never prints it.
		*f.token = os.Getenv("SCHEDULER_TOKEN")
	}
	tc, err := f.tlsConfig()
	return &client{addrs: splitList(*f.addr), http: api.NewHTTPClient(*f.token, *f.timeout, tc), json: *f.json, timeout: *f.timeout, setupErr: err}
}

// tlsConfig loads the CLI's certificate when TLS flags are given: nil for
// plaintext, or a usage error naming the file at fault.
func (f clientFlags) tlsConfig() (api.TLSClient, error) {
	if !f.tls.Enabled() {
		return nil, nil
	}
	store, err := tlsutil.Load(*f.tls, tlsutil.RoleCLI)
	if err != nil {
		return nil, usageError(err.Error())
	}
	return store.Client(tlsutil.RoleServer), nil
}

// httpError is a non-2xx answer.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// do calls the API: it tries each address in turn, moving on when one is
// unreachable or has no leader, and retries for up to the timeout while the
// cluster elects a leader, saying so on stderr at most once a second. An
// address that cannot be reached is given up after refusedGiveUp, so a dead
// --addr fails within seconds; when it gives up, the error says what each
// address answered and, when a replica told its raft view, why there is no
// leader. out may be nil, or *[]byte for the raw body.
func (c *client) do(method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	if c.setupErr != nil {
		return c.setupErr
	}
	if len(c.addrs) == 0 {
		return usageError("no replica address: pass --addr or set SCHEDULER_ADDR")
	}
	start := time.Now()
	deadline := start.Add(c.timeout)
	tries := newAttempts(c.addrs)
	notes := noticer{quiet: c.quiet}
	for {
		for _, a := range tries.live() {
			err := c.once(a.addr, method, path, body, out)
			if err == nil {
				return nil
			}
			var te *tlsError
			if errors.As(err, &te) {
				// A certificate mismatch at one replica does not mend itself,
				// but another may answer: give this one up, go on.
				a.record(err, time.Now())
				a.gaveUp = true
				continue
			}
			if !retryable(err, method) {
				return err
			}
			a.record(err, time.Now())
		}
		now := time.Now()
		if len(tries.live()) == 0 || now.Add(retryPause).After(deadline) {
			c.askSelf(tries)
			return tries.failure(now.Sub(start))
		}
		notes.maybe(now, func() string { c.askSelf(tries); return tries.notice() })
		time.Sleep(retryPause)
	}
}

func (c *client) once(addr, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if hint := tlsHint(err); hint != "" {
			return &tlsError{fmt.Errorf("%s: %w\n  (%s)", addr, err, hint)}
		}
		return fmt.Errorf("%s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	if resp.StatusCode/100 != 2 {
		var e api.Error
		msg := resp.Status
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		} else if t := strings.TrimSpace(string(b)); strings.Contains(t, "mutual TLS only") {
			msg = t
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (set --token or SCHEDULER_TOKEN)"
		}
		return &httpError{status: resp.StatusCode, msg: fmt.Sprintf("%s: %s", addr, msg)}
	}
	switch o := out.(type) {
	case nil:
	case *[]byte:
		*o = b
	default:
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s: decoding answer: %w", addr, err)
		}
	}
	return nil
}

// printJSON prints v indented.
func printJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// fail prints an error and returns its exit code: 2 for a usage error, else 1.
func fail(cmd string, err error) int {
	// An error may quote user text from the server: escape it line by line
	// (the message itself may span lines).
	lines := strings.Split(err.Error(), "\n")
	for i := range lines {
		lines[i] = escapeText(lines[i])
	}
	fmt.Fprintf(os.Stderr, "scheduler %s: %s\n", cmd, strings.Join(lines, "\n"))
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var he *httpError
	if errors.As(err, &he) && he.status == http.StatusBadGateway {
		fmt.Fprintln(os.Stderr, "  (check with 'scheduler workloads' before you retry a submission)")
	}
	return exitFail
}

// parse parses a command's flags; it returns ok=false and the exit code on
// a usage error or -h.
func parse(fs *flag.FlagSet, args []string, usageLine string, nargs int) (int, bool) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: scheduler %s\n\nFlags:\n", usageLine)
		fs.PrintDefaults()
		printExample(fs.Output(), fs.Name())
	}
	if err := fs.Parse(flagsFirst(fs, args)); err != nil {
		if err == flag.ErrHelp {
			return exitOK, false
		}
		return exitUsage, false
	}
	if nargs >= 0 && fs.NArg() != nargs {
		fmt.Fprintf(os.Stderr, "scheduler: wrong number of arguments\n")
		fs.Usage()
		return exitUsage, false
	}
	return 0, true
}

func itoa(n int) string { return strconv.Itoa(n) }

// flagsFirst moves positional arguments behind the flags, so that
// "logs ID --tail 5" parses like "logs --tail 5 ID". Everything from a "--"
// on is left as it is (a submitted command and its arguments).
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(append(flags, pos...), args[i:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	if len(pos) > 0 {
		flags = append(flags, "--")
	}
	return append(flags, pos...)
}

// usageError is a mistake in how a command was called (exit code 2).
type usageError string

func (e usageError) Error() string { return string(e) }

// retryable reports whether a failed call may be sent again, to the next
// replica or after a pause: always when no leader took it (503) or when it
// never left this machine; for a submission, never once it may have been
// applied, since a second one would create the workloads twice.
func retryable(err error, method string) bool {
	var he *httpError
	if errors.As(err, &he) {
		return he.status == http.StatusServiceUnavailable || (he.status == http.StatusBadGateway && method != http.MethodPost)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return method != http.MethodPost
}

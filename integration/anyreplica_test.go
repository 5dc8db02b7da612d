package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// dialError reports whether err is a failure to connect: nothing reached
// the replica, so another one may be asked.
func dialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// callAny makes an API call through the live replicas in turn: on a dial
// error it tries the next one, and on a 503 (an election, a leader still
// establishing itself) all of them again for a while. A write that may
// have reached a replica is not sent again.
func (tc *testCluster) callAny(method, path string, body any) (int, []byte, error) {
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for {
		for _, r := range tc.replicas {
			if r.proc == nil || !r.proc.alive() {
				continue
			}
			code, b, err := tc.c.call(method, r.http, path, body)
			switch {
			case err == nil && code != http.StatusServiceUnavailable:
				return code, b, nil
			case err == nil:
				last = fmt.Errorf("%s %s: %d %s", method, path, code, bytes.TrimSpace(b))
			case method == http.MethodGet || dialError(err):
				last = err
			default:
				return 0, nil, err
			}
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = errors.New("no live replica")
			}
			return 0, nil, last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mustAny makes a call with callAny, fails the test unless it answers
// want, and decodes the answer into out when out is not nil. It returns
// the body.
func (tc *testCluster) mustAny(t *testing.T, method, path string, body any, want int, out any) []byte {
	t.Helper()
	code, b, err := tc.callAny(method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != want {
		t.Fatalf("%s %s: %d %s; want %d", method, path, code, bytes.TrimSpace(b), want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return b
}

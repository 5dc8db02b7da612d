package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// Checker asks one agent for its status. It must return promptly once ctx is
// cancelled.
type Checker interface {
	Check(ctx context.Context, node api.Node) (api.AgentStatus, error)
}

// maxStatusBytes bounds the /status body read from an agent.
const maxStatusBytes = 8 << 20

// HTTPChecker checks an agent with GET http://<address>/status, sending the
// cluster token; any answer but 200 with a JSON AgentStatus is a failure.
type HTTPChecker struct {
	client *http.Client
}

// NewHTTPChecker returns an HTTPChecker whose client is built by
// api.NewHTTPClient with the cluster token, the per-check timeout and, when
// set, the TLS config for dialing agents.
func NewHTTPChecker(token string, timeout time.Duration, tc api.TLSClient) *HTTPChecker {
	return &HTTPChecker{client: api.NewHTTPClient(token, timeout, tc)}
}

// Check implements Checker.
func (c *HTTPChecker) Check(ctx context.Context, node api.Node) (api.AgentStatus, error) {
	var st api.AgentStatus
	u := url.URL{Scheme: "http", Host: node.Address, Path: "/status"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return st, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return st, err
	}
	defer func() {
		// Drain a little so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /status: %s%s", resp.Status, errorBody(resp.Body))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(&st); err != nil {
		return api.AgentStatus{}, fmt.Errorf("GET /status: bad body: %w", err)
	}
	return st, nil
}

// errorBody returns ": msg" from a JSON error answer, or "".
func errorBody(r io.Reader) string {
	var e api.Error
	if err := json.NewDecoder(io.LimitReader(r, 4<<10)).Decode(&e); err != nil || e.Error == "" {
		return ""
	}
	return ": " + strings.TrimSpace(e.Error)
}

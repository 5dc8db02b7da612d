package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AgentClient makes the leader's calls to node agents.
type AgentClient struct {
	HTTP *http.Client
}

// NewAgentClient returns an agent client sending the token with each call,
// over TLS when tc is set.
func NewAgentClient(token string, timeout time.Duration, tc TLSClient) *AgentClient {
	return &AgentClient{HTTP: NewHTTPClient(token, timeout, tc)}
}

// AgentError is a non-2xx answer from an agent.
type AgentError struct {
	Status  int
	Message string
}

func (e *AgentError) Error() string { return fmt.Sprintf("agent answered %d: %s", e.Status, e.Message) }

// Start asks the agent at addr to start a workload instance.
func (c *AgentClient) Start(ctx context.Context, addr string, req StartRequest) (StartResponse, error) {
	var out StartResponse
	b, err := json.Marshal(req)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodPost, "http://"+addr+"/workloads", bytes.NewReader(b), &out)
	return out, err
}

// Stop asks the agent at addr to stop a workload instance.
func (c *AgentClient) Stop(ctx context.Context, addr, id string, term, generation uint64) error {
	q := url.Values{ParamTerm: {strconv.FormatUint(term, 10)}, ParamGeneration: {strconv.FormatUint(generation, 10)}}
	return c.do(ctx, http.MethodDelete, "http://"+addr+"/workloads/"+url.PathEscape(id)+"?"+q.Encode(), nil, nil)
}

// Status fetches GET /status from the agent at addr.
func (c *AgentClient) Status(ctx context.Context, addr string) (AgentStatus, error) {
	var st AgentStatus
	err := c.do(ctx, http.MethodGet, "http://"+addr+"/status", nil, &st)
	return st, err
}

// Logs fetches the last tail lines of a workload's output.
func (c *AgentClient) Logs(ctx context.Context, addr, id string, tail int) ([]byte, error) {
	u := "http://" + addr + "/workloads/" + url.PathEscape(id) + "/logs?tail=" + strconv.Itoa(tail)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, agentError(resp.StatusCode, b)
	}
	return b, nil
}

func (c *AgentClient) do(ctx context.Context, method, u string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return agentError(resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decoding agent answer: %w", err)
		}
	}
	return nil
}

func agentError(status int, b []byte) error {
	var e Error
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return &AgentError{Status: status, Message: e.Error}
	}
	return &AgentError{Status: status, Message: http.StatusText(status)}
}

package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// StreamLogs opens GET /workloads/{id}/logs?QUERY on the agent at addr and
// returns the body as it comes: with tail (a number, or all) the last lines,
// and with follow=true the output as it is written until the instance ends
// (frames, since and generation as in LogFrame). It uses c's transport
// without the client's overall timeout; ctx ends it.
func (c *AgentClient) StreamLogs(ctx context.Context, addr, id string, q url.Values) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/workloads/"+url.PathEscape(id)+"/logs?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	stream := &http.Client{Transport: c.HTTP.Transport} // no Timeout: a follow lasts as long as the instance
	resp, err := stream.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, agentError(resp.StatusCode, b)
	}
	return resp.Body, nil
}

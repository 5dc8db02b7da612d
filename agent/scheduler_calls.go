package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
)

// Calls to the schedulers at shutdown: the announcement of a restart, and
// the drain that --drain-on-shutdown asks for first.

// restartingTimeout bounds the announcement of a restart, all replicas
// included: it is best effort, and the restart must not wait for it.
const restartingTimeout = 2 * time.Second

// drainRequestTimeout bounds the drain request, all replicas included.
const drainRequestTimeout = 10 * time.Second

// drainPollEvery is how often the node's drain is looked at.
const drainPollEvery = time.Second

// drainWaitSlack is how long past its deadline a drain is waited for (the
// scheduler stops what is left at the deadline).
const drainWaitSlack = time.Minute

// nodeURL is the URL of /nodes/{id}/<what> on the replica at addr.
func nodeURL(addr, id, what string) (string, error) {
	base, err := joinURL(addr)
	if err != nil {
		return "", err
	}
	return base + "/" + url.PathEscape(id) + "/" + what, nil
}

// errNotFound marks a 404 answer, which an older scheduler gives for a call
// it does not know.
var errNotFound = errors.New("404 Not Found")

// postNode posts body to /nodes/{id}/<what> on each replica of addrs in
// turn until one accepts (2xx), within ctx. It returns the replica that
// accepted, or every error.
func postNode(ctx context.Context, client *http.Client, addrs []string, id, what string, body any) (string, error) {
	var errs []error
	for _, a := range addrs {
		u, err := nodeURL(a, id, what)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = api.PostJSON(ctx, client, u, body, nil)
		if err == nil {
			return a, nil
		}
		if strings.HasPrefix(err.Error(), "404 ") {
			err = fmt.Errorf("%w: %v", errNotFound, err)
		}
		errs = append(errs, fmt.Errorf("%s: %w", a, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return "", errors.New("no scheduler address")
	}
	return "", errors.Join(errs...)
}

// announceRestart tells the schedulers that this agent leaves for a
// restart and how long its workloads wait for the next one (best effort,
// bounded by restartingTimeout), and logs the outcome.
func announceRestart(client *http.Client, addrs []string, id string, grace time.Duration, log hclog.Logger) {
	if len(addrs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), restartingTimeout)
	defer cancel()
	began := time.Now()
	via, err := postNode(ctx, client, addrs, id, "restarting", api.RestartingRequest{GraceMS: grace.Milliseconds()})
	took := time.Since(began).Round(time.Millisecond)
	switch {
	case err == nil:
		log.Info("told the scheduler that this node is restarting", "via", via, "grace", grace, "took", took)
	case errors.Is(err, errNotFound):
		log.Warn("the scheduler does not know POST /nodes/{id}/restarting (an older scheduler?): its leader may mark this node offline and move its workloads during the restart",
			"took", took, "error", oneLine(err))
	default:
		log.Warn("cannot tell the scheduler that this node is restarting: its leader may mark this node offline and move its workloads during the restart",
			"took", took, "error", oneLine(err))
	}
}

// drainBody is the body of POST /nodes/{id}/drain.
type drainBody struct {
	Enable   bool         `json:"enable"`
	Deadline api.Duration `json:"deadline"`
}

// requestDrain asks the schedulers to drain this node within deadline.
func requestDrain(client *http.Client, addrs []string, id string, deadline time.Duration) (string, error) {
	if len(addrs) == 0 {
		return "", errors.New("no --join given: no scheduler to ask")
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainRequestTimeout)
	defer cancel()
	return postNode(ctx, client, addrs, id, "drain", drainBody{Enable: true, Deadline: api.Duration(deadline)})
}

// nodeDrain is what the agent reads of a node in GET /nodes/{id} (a struct
// of its own, so that it depends on nothing else of api.Node).
type nodeDrain struct {
	ID       string `json:"id"`
	Draining *bool  `json:"draining"`
}

// nodeDraining reads GET /nodes/{id} (what an agent certificate may read)
// from the replicas in turn and reports whether node id is still draining;
// known is false when the answer has no such node or no draining field.
func nodeDraining(ctx context.Context, client *http.Client, addrs []string, id string) (draining, known bool, err error) {
	var errs []error
	for _, a := range addrs {
		base, err := joinURL(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var n nodeDrain
		if err := getJSON(ctx, client, base+"/"+url.PathEscape(id), &n); err != nil {
			if strings.HasPrefix(err.Error(), "404") {
				return false, false, nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			continue
		}
		if n.ID != id || n.Draining == nil {
			return false, false, nil
		}
		return *n.Draining, true, nil
	}
	return false, false, errors.Join(errs...)
}

// getJSON GETs url and decodes a 200 answer into out.
func getJSON(ctx context.Context, client *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return errors.New(resp.Status)
	}
	return json.Unmarshal(body, out)
}

// oneLine joins the lines of err's text.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
)

// Registration timing: backoff between rounds, request timeout, and how often
// a still-failing registration is logged.
const (
	registerBackoffMin = 200 * time.Millisecond
	registerBackoffMax = 2 * time.Second
	registerTimeout    = 5 * time.Second
	registerLogEvery   = 5 * time.Second
)

// meminfoPath is where the machine's memory is read from.
const meminfoPath = "/proc/meminfo"

// nodeCapacity is the capacity the node registers: the configured one, or
// for a field left at zero what the machine has (the CPUs this process may
// run on ×1000, and MemTotal). A memory it cannot read is registered as 0:
// the node then takes no workload that asks for memory, and says so.
func nodeCapacity(cfg Config, log hclog.Logger) *api.Capacity {
	c := &api.Capacity{CPUMillicores: cfg.CPUMillicores, MemoryMB: cfg.MemoryMB}
	if c.CPUMillicores == 0 {
		c.CPUMillicores = runtime.NumCPU() * 1000
	}
	if c.MemoryMB == 0 {
		mb, err := memTotalMB(meminfoPath)
		if err != nil {
			log.Warn("cannot detect the memory to offer; pass --memory-mb (until then no workload asking for memory is placed here)", "error", err)
		}
		c.MemoryMB = mb
	}
	return c
}

// memTotalMB reads MemTotal from a meminfo file, in MiB.
func memTotalMB(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected MemTotal line %q", path, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb <= 0 {
			return 0, fmt.Errorf("%s: unexpected MemTotal line %q", path, line)
		}
		return int(min(kb/1024, api.MaxMemoryMB)), nil
	}
	return 0, fmt.Errorf("%s: no MemTotal line", path)
}

// register posts the node's registration to the replicas of join, tried in
// turn, round after round with backoff, until one answers 200 or 201 (it
// returns nil) or ctx is done (it returns ctx's error).
func register(ctx context.Context, client *http.Client, join []string, reg api.RegisterRequest, log hclog.Logger) error {
	body, err := json.Marshal(reg)
	if err != nil {
		return err
	}
	urls := make([]string, 0, len(join))
	for _, j := range join {
		u, err := joinURL(j)
		if err != nil {
			return fmt.Errorf("--join %q: %w", j, err)
		}
		urls = append(urls, u)
	}
	if len(urls) == 0 {
		return errors.New("no scheduler address to register with")
	}

	backoff := registerBackoffMin
	var lastLog time.Time
	for round := 1; ; round++ {
		var errs []string
		for _, u := range urls {
			err := postRegistration(ctx, client, u, body)
			if err == nil {
				log.Info("registered with the scheduler", "node_id", reg.ID, "address", reg.Address, "via", u, "rounds", round)
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, err.Error())
		}
		if time.Since(lastLog) >= registerLogEvery {
			lastLog = time.Now()
			log.Warn("registration not accepted yet; retrying", "round", round, "errors", strings.Join(errs, "; "))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, registerBackoffMax)
	}
}

// postRegistration makes one POST /nodes call.
func postRegistration(ctx context.Context, client *http.Client, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		return nil
	}
	var e api.Error
	if json.Unmarshal(msg, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, e.Error)
	}
	return fmt.Errorf("%s: %s", url, resp.Status)
}

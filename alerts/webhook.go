package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/micro-orchestrator/mo/api"
)

// Webhook defaults.
const (
	DefaultWebhookQueue       = 256
	DefaultWebhookAttempts    = 6
	DefaultWebhookBackoff     = 500 * time.Millisecond
	DefaultWebhookMaxBackoff  = 30 * time.Second
	DefaultWebhookPostTimeout = 5 * time.Second
)

// WebhookConfig tunes a Webhook; zero fields take the defaults above.
type WebhookConfig struct {
	// URL receives a JSON POST (api.AlertNotification) per fire and resolve.
	URL string
	// QueueSize bounds the notifications waiting; when full, the oldest is dropped.
	QueueSize int
	// MaxAttempts is the number of tries of one notification before it is given up.
	MaxAttempts int
	// Backoff is the wait after the first failed try; it doubles up to MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one POST.
	Timeout time.Duration
	// Client makes the POSTs; nil builds one with api.NewHTTPClient and no
	// token: the cluster token is never sent to a webhook.
	Client *http.Client
	// Logger receives delivery failures; nil discards them.
	Logger hclog.Logger
}

// WebhookStats are a Webhook's counters since it was made.
type WebhookStats struct {
	Queued  int    // waiting now
	Sent    uint64 // delivered (2xx answer)
	Retries uint64 // failed tries that were retried
	Failed  uint64 // given up after MaxAttempts, or refused with a 4xx
	Dropped uint64 // dropped unsent because the queue was full
}

// Webhook delivers notifications to one URL from a bounded queue, one at a
// time and in order, retrying with exponential backoff. Send never blocks:
// when the queue is full it drops the oldest notification and counts it.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
	log    hclog.Logger
	target string // the URL without path, query or credentials, for logs

	mu    sync.Mutex
	queue []api.AlertNotification
	wake  chan struct{} // capacity 1

	sent, retries, failed, dropped atomic.Uint64
}

// NewWebhook returns a Webhook for cfg.URL; Run delivers its queue.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--alert-webhook %s: want an http:// or https:// URL", RedactURL(cfg.URL))
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultWebhookQueue
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultWebhookAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultWebhookBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultWebhookMaxBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultWebhookPostTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	client := cfg.Client
	if client == nil {
		client = api.NewHTTPClient("", cfg.Timeout, nil)
	}
	return &Webhook{cfg: cfg, client: client, log: cfg.Logger, target: RedactURL(cfg.URL), wake: make(chan struct{}, 1)}, nil
}

// Target returns the webhook URL with its path, query and credentials
// removed: what may appear in logs (a webhook URL often holds a secret).
func (w *Webhook) Target() string { return w.target }

// RedactURL returns scheme://host of a URL, with "/..." when it had a path
// or query: webhook URLs often carry a secret there.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		s += "/..."
	}
	return s
}

// Send queues n for delivery and returns at once. When the queue is full the
// oldest waiting notification is dropped (and counted) to make room.
func (w *Webhook) Send(n api.AlertNotification) {
	w.mu.Lock()
	if len(w.queue) >= w.cfg.QueueSize {
		w.queue = w.queue[1:]
		w.dropped.Add(1)
	}
	w.queue = append(w.queue, n)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (w *Webhook) Stats() WebhookStats {
	w.mu.Lock()
	q := len(w.queue)
	w.mu.Unlock()
	return WebhookStats{Queued: q, Sent: w.sent.Load(), Retries: w.retries.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load()}
}

// Run delivers the queue until ctx is done; what is still queued then is
// abandoned.
func (w *Webhook) Run(ctx context.Context) {
	for {
		w.mu.Lock()
		var n api.AlertNotification
		ok := len(w.queue) > 0
		if ok {
			n = w.queue[0]
			w.queue = w.queue[1:]
		}
		w.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			continue
		}
		w.deliver(ctx, n)
		if ctx.Err() != nil {
			return
		}
	}
}

// deliver tries one notification up to MaxAttempts times.
func (w *Webhook) deliver(ctx context.Context, n api.AlertNotification) {
	body, err := json.Marshal(n)
	if err != nil {
		w.failed.Add(1)
		return
	}
	wait := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		retry, err := w.post(ctx, body)
		if err == nil {
			w.sent.Add(1)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !retry || attempt >= w.cfg.MaxAttempts {
			w.failed.Add(1)
			w.log.Warn("alert webhook delivery given up", "webhook", w.target, "alert", n.Alert.Name,
				"subject", n.Alert.Subject, "status", n.Status, "attempts", attempt, "error", err)
			return
		}
		w.retries.Add(1)
		w.log.Debug("alert webhook delivery failed; retrying", "webhook", w.target, "attempt", attempt, "in", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, w.cfg.MaxBackoff)
	}
}

// post makes one POST; it reports whether a failure is worth retrying.
func (w *Webhook) post(ctx context.Context, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "micro-orchestrator-alerts")
	resp, err := w.client.Do(req)
	if err != nil {
		// The error text holds the URL: say only where it went.
		if ue, ok := err.(*url.Error); ok {
			return true, fmt.Errorf("POST %s: %v", w.target, ue.Err)
		}
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return false, nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return false, fmt.Errorf("POST %s: %s", w.target, resp.Status)
	default:
		return true, fmt.Errorf("POST %s: %s", w.target, resp.Status)
	}
}

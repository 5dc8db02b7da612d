package alerts

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/micro-orchestrator/mo/api"
)

// poll waits for cond with a deadline (no sleeping for state).
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receiver is a webhook endpoint that records the notifications it accepts;
// fail decides the status of each request (0: 200).
type receiver struct {
	mu    sync.Mutex
	got   []api.AlertNotification
	auth  []string
	calls atomic.Int64
	fail  func(call int64) int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n := r.calls.Add(1)
	if r.fail != nil {
		if code := r.fail(n); code != 0 {
			w.WriteHeader(code)
			return
		}
	}
	var note api.AlertNotification
	if err := json.NewDecoder(req.Body).Decode(&note); err != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, note)
	r.auth = append(r.auth, req.Header.Get("Authorization"))
	r.mu.Unlock()
}

func (r *receiver) received() []api.AlertNotification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]api.AlertNotification(nil), r.got...)
}

func note(i int) api.AlertNotification {
	return api.AlertNotification{Status: api.AlertFiring, At: t0, Replica: "s1",
		Alert: api.Alert{Name: api.AlertNodeOffline, Severity: api.SeverityCritical, Subject: "n" + strconv.Itoa(i), Since: t0}}
}

func startWebhook(t *testing.T, cfg WebhookConfig) *Webhook {
	t.Helper()
	w, err := NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func TestWebhookDeliversInOrderWithoutToken(t *testing.T) {
	rec := &receiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	w := startWebhook(t, WebhookConfig{URL: srv.URL + "/hook"})
	for i := 1; i <= 3; i++ {
		w.Send(note(i))
	}
	poll(t, "three deliveries", func() bool { return w.Stats().Sent == 3 })
	got := rec.received()
	for i, n := range got {
		if n.Alert.Subject != "n"+strconv.Itoa(i+1) || n.Status != api.AlertFiring || n.Replica != "s1" {
			t.Fatalf("delivery %d: %+v", i, n)
		}
		if rec.auth[i] != "" {
			t.Fatalf("the webhook got an Authorization header %q", rec.auth[i])
		}
	}
}

func TestWebhookRetriesWithBackoff(t *testing.T) {
	rec := &receiver{fail: func(n int64) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return 0
	}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	w := startWebhook(t, WebhookConfig{URL: srv.URL, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	w.Send(note(1))
	poll(t, "delivery after two failures", func() bool { return w.Stats().Sent == 1 })
	if st := w.Stats(); st.Retries != 2 || st.Failed != 0 || len(rec.received()) != 1 {
		t.Fatalf("stats %+v, received %d", st, len(rec.received()))
	}
}

func TestWebhookGivesUp(t *testing.T) {
	// A 4xx (other than 408/429) is not retried; a 5xx is, up to MaxAttempts.
	rec := &receiver{fail: func(n int64) int {
		if n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusInternalServerError
	}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	w := startWebhook(t, WebhookConfig{URL: srv.URL, MaxAttempts: 3, Backoff: time.Millisecond})
	w.Send(note(1))
	poll(t, "the 4xx given up", func() bool { return w.Stats().Failed == 1 })
	if c := rec.calls.Load(); c != 1 {
		t.Fatalf("a 400 was tried %d times", c)
	}
	w.Send(note(2))
	poll(t, "the 5xx given up", func() bool { return w.Stats().Failed == 2 })
	if c := rec.calls.Load(); c != 4 {
		t.Fatalf("%d calls, want 1 + 3 attempts", c)
	}
}

func TestWebhookQueueDropsOldestWhenFull(t *testing.T) {
	rec := &receiver{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	w, err := NewWebhook(WebhookConfig{URL: srv.URL, QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ { // not running: everything queues
		w.Send(note(i))
	}
	if st := w.Stats(); st.Queued != 4 || st.Dropped != 6 {
		t.Fatalf("stats %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	poll(t, "the queue delivered", func() bool { return w.Stats().Sent == 4 })
	for i, n := range rec.received() {
		if want := "n" + strconv.Itoa(7+i); n.Alert.Subject != want {
			t.Fatalf("delivery %d is %s, want %s (the newest kept)", i, n.Alert.Subject, want)
		}
	}
}

// A webhook that is down (a closed port) or hangs never blocks Send.
func TestWebhookDownNeverBlocksSend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String() + "/hook"
	ln.Close()

	hang := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(hang)

	for _, u := range []string{closedURL, hung.URL} {
		w := startWebhook(t, WebhookConfig{URL: u, QueueSize: 8, Timeout: 50 * time.Millisecond, Backoff: time.Hour})
		sent := make(chan struct{})
		go func() {
			for i := 0; i < 1000; i++ {
				w.Send(note(i))
			}
			close(sent)
		}()
		poll(t, "1000 sends to return", func() bool {
			select {
			case <-sent:
				return true
			default:
				return false
			}
		})
		if st := w.Stats(); st.Queued > 8 || st.Dropped < 1000-8-1 || st.Sent != 0 {
			t.Fatalf("%s: stats %+v", RedactURL(u), st)
		}
	}
}

func TestNewWebhookAndRedact(t *testing.T) {
	for _, bad := range []string{"", "ftp://x/y", "not a url", "http://"} {
		if _, err := NewWebhook(WebhookConfig{URL: bad}); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
	cases := map[string]string{
		"https://hooks.example.com/services/T0/B0/secret": "https://hooks.example.com/...",
		"http://user:pw@127.0.0.1:9/x?token=abc":          "http://127.0.0.1:9/...",
		"http://127.0.0.1:9":                              "http://127.0.0.1:9",
		"http://127.0.0.1:9/":                             "http://127.0.0.1:9",
	}
	for in, want := range cases {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	w, err := NewWebhook(WebhookConfig{URL: "http://u:p@127.0.0.1:9/secret"})
	if err != nil || w.Target() != "http://127.0.0.1:9/..." {
		t.Fatalf("%v %q", err, w.Target())
	}
}

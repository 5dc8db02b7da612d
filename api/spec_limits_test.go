package api

import (
	"strings"
	"testing"
	"time"
)

func TestSpecLimits(t *testing.T) {
	d := func(v time.Duration) Duration { return Duration(v) }
	http := func(c Check) Spec {
		c.Type, c.Port = CheckHTTP, "http"
		return Spec{Ports: []string{"http"}, Check: &c}
	}
	bad := []struct {
		name string
		spec Spec
		want string
	}{
		{"tiny interval", http(Check{Interval: d(time.Nanosecond)}), "check.interval 1ns: at least 100ms"},
		{"tiny timeout", http(Check{Timeout: d(time.Microsecond)}), "check.timeout 1µs: at least 10ms"},
		{"newline in path", http(Check{Path: "/health\n"}), "control character"},
		{"space in path", http(Check{Path: "/a b"}), "space"},
		{"bad escape in path", http(Check{Path: "/%zz"}), "not a valid URL path"},
		{"path on tcp", Spec{Ports: []string{"p"}, Check: &Check{Type: CheckTCP, Port: "p", Path: "/"}}, "path is for http checks"},
		{"port on exec", Spec{Ports: []string{"p"}, Check: &Check{Type: CheckExec, Port: "p", Command: []string{"true"}}}, "not exec"},
		{"tiny restart delay", Spec{Restart: &RestartPolicy{Attempts: 1, Delay: d(time.Nanosecond)}}, "restart.delay 1ns: at least 10ms"},
	}
	for _, c := range bad {
		err := c.spec.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
	// A max_delay alone below the default delay caps the delay, and the
	// normalized spec is valid (the agent validates it again).
	s := Spec{Restart: &RestartPolicy{Attempts: 3, MaxDelay: d(500 * time.Millisecond)}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.Normalize()
	if s.Restart.Delay.D() != 500*time.Millisecond {
		t.Errorf("delay %s, want 500ms", s.Restart.Delay.D())
	}
	if err := s.Validate(); err != nil {
		t.Errorf("normalized spec refused: %v", err)
	}
	// A short interval alone takes a timeout no longer than it.
	h := http(Check{Interval: d(200 * time.Millisecond)})
	h.Normalize()
	if h.Check.Timeout.D() != 200*time.Millisecond {
		t.Errorf("timeout %s, want 200ms", h.Check.Timeout.D())
	}
	if err := h.Validate(); err != nil {
		t.Errorf("normalized spec refused: %v", err)
	}
}

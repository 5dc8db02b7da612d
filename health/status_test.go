package health

import (
	"testing"

	"github.com/micro-orchestrator/mo/api"
)

func TestNextStatus(t *testing.T) {
	th := thresholds{failure: 2, recovery: 2}
	const on, deg, off = api.NodeOnline, api.NodeDegraded, api.NodeOffline
	cases := []struct {
		name                string
		cur                 string
		failures, successes int
		ok, slow            bool
		want                string
	}{
		{"first failure degrades", on, 1, 0, false, false, deg},
		{"threshold reached", deg, 2, 0, false, false, off},
		{"beyond threshold", off, 3, 0, false, false, off},
		{"failure keeps offline", off, 1, 0, false, false, off},
		{"good fast check", on, 0, 1, true, false, on},
		{"slow answer degrades", on, 0, 1, true, true, deg},
		{"degraded heals in one good check", deg, 0, 1, true, false, on},
		{"offline needs recovery threshold", off, 0, 1, true, false, off},
		{"offline recovers", off, 0, 2, true, false, on},
		{"offline recovers slow", off, 0, 2, true, true, deg},
	}
	for _, c := range cases {
		if got := nextStatus(c.cur, c.failures, c.successes, c.ok, c.slow, false, th); got != c.want {
			t.Errorf("%s: nextStatus(%s, f=%d, s=%d, ok=%v, slow=%v) = %s, want %s",
				c.name, c.cur, c.failures, c.successes, c.ok, c.slow, got, c.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Interval != DefaultInterval || c.Timeout != DefaultTimeout || c.FailureThreshold != 2 ||
		c.RecoveryThreshold != 2 || c.ConfirmDelay != DefaultConfirmDelay || c.SlowResponse != DefaultSlowResponse ||
		c.Concurrency != 128 || c.Clock == nil || c.Logger == nil {
		t.Fatalf("defaults = %+v", c)
	}
	if c := (Config{ConfirmDelay: -1}).withDefaults(); c.ConfirmDelay >= 0 {
		t.Fatalf("a negative ConfirmDelay must stay disabled, got %v", c.ConfirmDelay)
	}
}

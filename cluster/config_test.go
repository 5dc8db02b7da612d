package cluster

import (
	"strings"
	"testing"
)

func TestValidateRefusesAProfilerOffLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"":                true,
		"127.0.0.1:6060":  true,
		"localhost:0":     true,
		"[::1]:6060":      true,
		"0.0.0.0:6060":    false,
		"10.0.0.5:6060":   false,
		"127.0.0.1":       false,
		":6060":           false,
		"example.com:123": false,
	} {
		c := DefaultConfig()
		c.ID, c.DataDir, c.Token = "s1", t.TempDir(), "t"
		c.HTTPAddr, c.RaftAddr = "127.0.0.1:7001", "127.0.0.1:7101"
		c.PprofAddr = addr
		err := c.Validate()
		if ok && err != nil {
			t.Errorf("--pprof-addr %q refused: %v", addr, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "--pprof-addr")) {
			t.Errorf("--pprof-addr %q: error %v, want it refused", addr, err)
		}
	}
}

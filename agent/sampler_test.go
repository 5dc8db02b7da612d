package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestParseCPULine(t *testing.T) {
	busy, total, err := parseCPULine([]byte("cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 1 2 3 4\n"))
	if err != nil || total != 990 || busy != 170 {
		t.Errorf("busy %d total %d err %v; want 170 of 990 (guest not counted twice)", busy, total, err)
	}
	for _, bad := range []string{"", "intr 1 2", "cpu  1 2", "cpu  a b c d"} {
		if _, _, err := parseCPULine([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseMeminfo(t *testing.T) {
	got, err := parseMeminfo([]byte("MemTotal:       16000000 kB\nMemFree:  1 kB\nMemAvailable:   12000000 kB\n"))
	if err != nil || got != 25 {
		t.Errorf("got %v %v, want 25", got, err)
	}
	if _, err := parseMeminfo([]byte("MemTotal: 10 kB\n")); err == nil {
		t.Error("no error without MemAvailable")
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses.
	line := "1234 (a (weird) name) S 1 1234 1200 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n"
	st, err := parseProcStat([]byte(line))
	if err != nil || st.state != 'S' || st.ppid != 1 || st.pgrp != 1234 || st.session != 1200 || st.startTime != 987654 {
		t.Errorf("%+v %v", st, err)
	}
	self, err := readProcStat(os.Getpid())
	if err != nil || self.startTime == 0 {
		t.Errorf("own stat: %+v %v", self, err)
	}
}

func TestSampler(t *testing.T) {
	s := newSampler("", hclog.NewNullLogger())
	cpu, mem := s.sample()
	if cpu != 0 || mem <= 0 || mem > 100 {
		t.Errorf("first sample cpu %v mem %v; want cpu 0 (no delta yet) and mem in (0,100]", cpu, mem)
	}
	for range 200000 { // burn a little CPU so that the delta is not empty
		_ = os.Getpid()
	}
	cpu, _ = s.sample()
	if cpu < 0 || cpu > 100 {
		t.Errorf("cpu %v out of range", cpu)
	}
}

func TestSamplerCPUFileDrillHook(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu")
	s := newSampler(path, hclog.NewNullLogger())
	if err := os.WriteFile(path, []byte(" 95.5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cpu, _ := s.sample(); cpu != 95.5 {
		t.Errorf("cpu %v, want 95.5 from the file", cpu)
	}
	for _, bad := range []string{"lots", "-3", "NaN"} {
		_ = os.WriteFile(path, []byte(bad), 0o600)
		if cpu, _ := s.sample(); cpu < 0 || cpu > 100 || cpu == 95.5 {
			t.Errorf("file %q: cpu %v, want the measured value", bad, cpu)
		}
	}
	_ = os.Remove(path)
	if cpu, _ := s.sample(); cpu < 0 || cpu > 100 {
		t.Errorf("missing file: cpu %v", cpu)
	}
}

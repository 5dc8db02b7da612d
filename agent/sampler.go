package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// sampler measures node-wide CPU use (from /proc/stat deltas) and memory use
// (MemTotal and MemAvailable of /proc/meminfo), both in percent.
type sampler struct {
	cpuFile string // drill hook, see Config.CPUFile
	log     hclog.Logger

	buf                 []byte
	prevBusy, prevTotal uint64
	primed              bool
	cpuFileErr          string // last drill-hook error logged, to log each distinct one once
}

func newSampler(cpuFile string, log hclog.Logger) *sampler {
	return &sampler{cpuFile: cpuFile, log: log, buf: make([]byte, 8<<10)}
}

// run samples every interval and publishes the values until ctx is done.
func (s *sampler) run(ctx context.Context, interval time.Duration, publish func(cpu, mem float64)) {
	publish(s.sample())
	// A first CPU figure needs two readings: take the second one early.
	first := time.NewTimer(min(interval, 200*time.Millisecond))
	select {
	case <-ctx.Done():
		first.Stop()
		return
	case <-first.C:
		publish(s.sample())
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			publish(s.sample())
		}
	}
}

// sample takes one measurement. CPU is 0 until two /proc/stat readings exist.
func (s *sampler) sample() (cpu, mem float64) {
	cpu, err := s.sampleCPU()
	if err != nil {
		s.log.Debug("cannot read /proc/stat", "error", err)
	}
	if s.cpuFile != "" {
		if v, err := readCPUFile(s.cpuFile); err != nil {
			if msg := err.Error(); msg != s.cpuFileErr {
				s.cpuFileErr = msg
				s.log.Warn("drill hook --cpu-file unusable; reporting the measured CPU", "error", msg)
			}
		} else {
			s.cpuFileErr = ""
			cpu = v
		}
	}
	mem, err = s.sampleMem()
	if err != nil {
		s.log.Debug("cannot read /proc/meminfo", "error", err)
	}
	return cpu, mem
}

// readCPUFile reads the drill hook's number.
func readCPUFile(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
	if err != nil || v < 0 || v != v {
		return 0, fmt.Errorf("%s does not hold a percentage: %q", path, strings.TrimSpace(string(data)))
	}
	return v, nil
}

// readProc reads a small /proc file into s.buf.
func (s *sampler) readProc(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, s.buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return s.buf[:n], nil
}

func (s *sampler) sampleCPU() (float64, error) {
	data, err := s.readProc("/proc/stat")
	if err != nil {
		return 0, err
	}
	busy, total, err := parseCPULine(data)
	if err != nil {
		return 0, err
	}
	defer func() { s.prevBusy, s.prevTotal, s.primed = busy, total, true }()
	if !s.primed || total <= s.prevTotal || busy < s.prevBusy {
		return 0, nil
	}
	return float64(busy-s.prevBusy) / float64(total-s.prevTotal) * 100, nil
}

// parseCPULine reads the aggregate "cpu" line of /proc/stat: user nice system
// idle iowait irq softirq steal (guest time is already part of user and nice).
// Idle and iowait count as not busy.
func parseCPULine(data []byte) (busy, total uint64, err error) {
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	rest, ok := bytes.CutPrefix(line, []byte("cpu "))
	if !ok {
		return 0, 0, errors.New("no aggregate cpu line in /proc/stat")
	}
	var idle uint64
	fields := bytes.Fields(rest)
	if len(fields) < 4 {
		return 0, 0, errors.New("short cpu line in /proc/stat")
	}
	for i, f := range fields[:min(len(fields), 8)] {
		v, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bad cpu field %q in /proc/stat", f)
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return total - idle, total, nil
}

func (s *sampler) sampleMem() (float64, error) {
	data, err := s.readProc("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return parseMeminfo(data)
}

// parseMeminfo returns (MemTotal - MemAvailable) / MemTotal in percent.
func parseMeminfo(data []byte) (float64, error) {
	var total, avail uint64
	var haveTotal, haveAvail bool
	for len(data) > 0 && !(haveTotal && haveAvail) {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		var dst *uint64
		switch string(key) {
		case "MemTotal":
			dst, haveTotal = &total, true
		case "MemAvailable":
			dst, haveAvail = &avail, true
		default:
			continue
		}
		val = bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(val), []byte("kB")))
		v, err := strconv.ParseUint(string(val), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad %s in /proc/meminfo", key)
		}
		*dst = v
	}
	if !haveTotal || !haveAvail || total == 0 {
		return 0, errors.New("MemTotal or MemAvailable missing from /proc/meminfo")
	}
	if avail > total {
		avail = total
	}
	return float64(total-avail) / float64(total) * 100, nil
}

// Command benchreport gathers the rows of a `make bench` run: the JSON lines
// the integration benchmarks append to a file (MO_BENCH_OUT) and the
// "BENCH {json}" lines of `go test -v` logs. It prints one table of target
// against measured and writes them, with the machine, to a JSON file.
//
//	go run ./scripts/benchreport -rows rows.jsonl -out bench.json -wall 612 log1 log2...
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/micro-orchestrator/mo/internal/benchrow"
)

// row is one measured row, as the benchmarks record it.
type row = benchrow.Row

type machine struct {
	Cores int    `json:"cores"`
	CPU   string `json:"cpu"`
	OS    string `json:"os"`
	Go    string `json:"go"`
}

type report struct {
	Date    string   `json:"date"`
	WallSec float64  `json:"wall_seconds"`
	Machine machine  `json:"machine"`
	Rows    []row    `json:"rows"`
	Failed  []string `json:"failed_steps,omitempty"`
}

func main() {
	rowsFile := flag.String("rows", "", "file of JSON lines, one row each")
	out := flag.String("out", "bench.json", "where to write the report")
	wall := flag.Float64("wall", 0, "wall time of the run in seconds")
	failed := flag.String("failed", "", "comma-separated steps whose test failed")
	flag.Parse()
	var rows []row
	if *rowsFile != "" {
		rows = append(rows, readRows(*rowsFile, "")...)
	}
	for _, log := range flag.Args() {
		r := readRows(log, "BENCH ")
		if len(r) == 0 {
			r = simulatedRows(log)
		}
		rows = append(rows, r...)
	}
	rep := report{Date: time.Now().UTC().Format(time.RFC3339), WallSec: *wall, Rows: rows,
		Machine: machine{Cores: runtime.NumCPU(), CPU: cpuModel(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}}
	for _, m := range strings.Split(*failed, ",") {
		if m = strings.TrimSpace(m); m != "" {
			rep.Failed = append(rep.Failed, m)
		}
	}
	fmt.Printf("\nmachine: %d cores, %s; wall time %.0fs\n\n", rep.Machine.Cores, rep.Machine.CPU, *wall)
	line := func(cols ...any) { fmt.Printf("%-62s %-22s %10s %10s %7s  %-4s %s\n", cols...) }
	line("row", "target", "median", "p99", "n", "met", "note")
	for _, r := range rows {
		med, p99 := num(r.Median, r.Unit), ""
		if r.P99 != 0 {
			p99 = num(r.P99, r.Unit)
		}
		met := "no"
		if r.OK {
			met = "yes"
		}
		line(r.Name, r.Target, med, p99, fmt.Sprint(r.N), met, r.Note)
	}
	for _, m := range rep.Failed {
		fmt.Printf("step failed: %s (the rows it recorded before failing, if any, are above)\n", m)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err == nil {
		err = os.WriteFile(*out, append(b, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("\nwrote %s\n", *out)
}

// readRows reads the rows of a file: every line, or the lines that hold
// prefix followed by a JSON object.
func readRows(path, prefix string) []row {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		if prefix != "" {
			i := strings.Index(text, prefix+"{")
			if i < 0 {
				continue
			}
			text = text[i+len(prefix):]
		}
		var r row
		if json.Unmarshal([]byte(text), &r) == nil && r.Name != "" {
			rows = append(rows, r)
		}
	}
	return rows
}

// The lines of the simulated health scale test (health/simulated_test.go),
// read when its log holds no BENCH line.
var (
	simRound  = regexp.MustCompile(`full rounds: (\d+), time p50=(\S+) p99=(\S+) max`)
	simCPU    = regexp.MustCompile(`monitor process CPU: .* = ([0-9.]+)% of one core`)
	simDetect = regexp.MustCompile(`detection latency .*, (\d+) kills: p50=(\S+) p99=(\S+) max`)
	simAgents = regexp.MustCompile(`SIMULATED: (\d+) agents`)
)

// simulatedRows makes rows of the simulated scale test's report lines.
func simulatedRows(path string) []row {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	text := string(b)
	nodes := "?"
	if m := simAgents.FindStringSubmatch(text); m != nil {
		nodes = m[1]
	}
	name := func(what string) string { return fmt.Sprintf("%s, %s nodes (simulated agents)", what, nodes) }
	msOf := func(s string) float64 {
		d, _ := time.ParseDuration(s)
		return float64(d.Microseconds()) / 1000
	}
	var rows []row
	if m := simRound.FindStringSubmatch(text); m != nil {
		n, _ := strconv.Atoi(m[1])
		p99 := msOf(m[3])
		rows = append(rows, row{Name: name("full health round"), Unit: "ms", Target: "within interval (3s)",
			Median: msOf(m[2]), P99: p99, N: n, OK: p99 < 3000, Note: "HEALTH_SCALE_BENCH=1 go test ./health -run Scale"})
	}
	if m := simCPU.FindStringSubmatch(text); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		rows = append(rows, row{Name: name("leader CPU checking them"), Unit: "%", Target: "report",
			Median: v, N: 1, OK: true, Note: "% of one core over 60s"})
	}
	if m := simDetect.FindStringSubmatch(text); m != nil {
		n, _ := strconv.Atoi(m[1])
		rows = append(rows, row{Name: name("agent killed -> offline"), Unit: "ms", Target: "report",
			Median: msOf(m[2]), P99: msOf(m[3]), N: n, OK: true, Note: "worst case one interval + confirm, about 3.5s"})
	}
	return rows
}

func num(v float64, unit string) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f%s", v, unit)
	}
	return fmt.Sprintf("%.2f%s", v, unit)
}

// cpuModel is the model name in /proc/cpuinfo, when there is one.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

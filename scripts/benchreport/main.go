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
	"runtime"
	"strings"
	"time"
)

type row struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Target string  `json:"target"`
	Median float64 `json:"median"`
	P99    float64 `json:"p99,omitempty"`
	N      int     `json:"n"`
	OK     bool    `json:"ok"`
	Note   string  `json:"note,omitempty"`
}

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
	Missing []string `json:"missing,omitempty"`
}

func main() {
	rowsFile := flag.String("rows", "", "file of JSON lines, one row each")
	out := flag.String("out", "bench.json", "where to write the report")
	wall := flag.Float64("wall", 0, "wall time of the run in seconds")
	missing := flag.String("missing", "", "comma-separated steps that failed or were skipped")
	flag.Parse()
	var rows []row
	if *rowsFile != "" {
		rows = append(rows, readRows(*rowsFile, "")...)
	}
	for _, log := range flag.Args() {
		rows = append(rows, readRows(log, "BENCH ")...)
	}
	rep := report{Date: time.Now().UTC().Format(time.RFC3339), WallSec: *wall, Rows: rows,
		Machine: machine{Cores: runtime.NumCPU(), CPU: cpuModel(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}}
	for _, m := range strings.Split(*missing, ",") {
		if m = strings.TrimSpace(m); m != "" {
			rep.Missing = append(rep.Missing, m)
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
	for _, m := range rep.Missing {
		fmt.Printf("not measured: %s\n", m)
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

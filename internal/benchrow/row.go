// Package benchrow is the record that the gated benchmarks write and that
// `make bench` gathers into bench.json: one JSON line a measured row.
package benchrow

// Row is one measured row. Durations are in milliseconds; a rate row has
// its rate in Median and no P99.
type Row struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Target string  `json:"target"`
	Median float64 `json:"median"`
	P99    float64 `json:"p99,omitempty"`
	N      int     `json:"n"`
	OK     bool    `json:"ok"`
	Note   string  `json:"note,omitempty"`
}

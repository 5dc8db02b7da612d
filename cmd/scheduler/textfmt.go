package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"

	"github.com/micro-orchestrator/mo/api"
)

// escapeText makes user text (names, commands, reasons, messages) safe to
// print on a terminal: control characters are shown Go-style (\n, \t, \x1b,
// \u0085) and bytes that are not UTF-8 as \xNN; everything else, Unicode
// included, is left as it is.
func escapeText(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && api.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case api.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i, r := range s {
		if api.IsControl(r) || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
			return true
		}
	}
	return false
}

// displayWidth is the number of terminal columns s takes: East Asian wide and
// fullwidth characters (CJK, most emoji) take two, combining marks and
// format characters (zero-width joiner, variation selectors) none.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

func runeWidth(r rune) int {
	switch {
	case r < 0x20 || (0x7f <= r && r < 0xa0):
		return 0
	case r < 0x300:
		return 1 // Latin: the common case, without a table lookup
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf), 0x1160 <= r && r <= 0x11ff:
		return 0 // combining; Hangul medial vowels and final consonants join the syllable
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// padRight pads s with spaces to n terminal columns.
func padRight(s string, n int) string {
	if w := displayWidth(s); w < n {
		return s + strings.Repeat(" ", n-w)
	}
	return s
}

// table prints rows in columns two spaces apart, padded by display width
// (unlike text/tabwriter, which counts code points). Every cell is escaped.
type table struct {
	w    io.Writer
	rows [][]string
}

func newTable(w io.Writer) *table { return &table{w: w} }

// row adds a row of cells.
func (t *table) row(cells ...string) {
	r := make([]string, len(cells))
	for i, c := range cells {
		r[i] = escapeText(c)
	}
	t.rows = append(t.rows, r)
}

// flush prints the rows; the last cell of a row is not padded.
func (t *table) flush() {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
			} else {
				b.WriteString(padRight(c, widths[i]+2))
			}
		}
		fmt.Fprintln(t.w, b.String())
	}
	t.rows = nil
}

// countParts lists counts by kind, in the order of known (others after it,
// sorted), leaving out zeros: ["3 running", "1 stopped"].
func countParts(counts map[string]int, known []string) []string {
	order := slices.Clone(known)
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if !slices.Contains(order, k) {
			order = append(order, k)
		}
	}
	var parts []string
	for _, k := range order {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], escapeText(k)))
		}
	}
	return parts
}

// summaryLine counts items by kind, in the order of known (others after it,
// sorted): "500 workloads: 498 running, 2 failed".
func summaryLine(total int, noun string, kinds, known []string) string {
	counts := map[string]int{}
	for _, k := range kinds {
		counts[k]++
	}
	parts := countParts(counts, known)
	s := fmt.Sprintf("%d %s", total, noun)
	if total != 1 {
		s += "s"
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}

// checkEnum is a usage error unless v is empty or one of valid.
func checkEnum(flagName, v string, valid []string) error {
	if v == "" || slices.Contains(valid, v) {
		return nil
	}
	return usageError(fmt.Sprintf("%s %q is not a valid value: want one of %s", flagName, v, strings.Join(valid, ", ")))
}

// yesNo prints a boolean.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTailLines(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc", 1, "c"},
		{"a\nb\nc\n", 0, ""},
		{"\n\n\n", 2, "\n\n"},
		{"one line no newline", 1, "one line no newline"},
	}
	for _, c := range cases {
		got, err := tailLines(strings.NewReader(c.in), int64(len(c.in)), c.n)
		if err != nil || string(got) != c.want {
			t.Errorf("tail %d of %q = %q, %v; want %q", c.n, c.in, got, err, c.want)
		}
	}
	// Lines spanning several scan chunks.
	var b strings.Builder
	for i := range 50000 {
		fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("y", i%7))
	}
	s := b.String()
	got, _ := tailLines(strings.NewReader(s), int64(len(s)), 10000)
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != 10000 || !strings.HasPrefix(lines[0], "line 40000 ") || !strings.HasPrefix(lines[9999], "line 49999 ") {
		t.Errorf("tail 10000 of 50000 lines: %d lines, first %q", len(lines), lines[0])
	}
}

func TestCappedFileDropsOldestHalf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "output.log")
	const capBytes = 8 << 10
	c, err := createCappedFile(path, capBytes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		if _, err := fmt.Fprintf(c, "line %05d\n", i); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(path); fi.Size() > capBytes {
			t.Fatalf("file is %d bytes after line %d, over the cap %d", fi.Size(), i, capBytes)
		}
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, c.marker) {
		t.Errorf("no marker at the start: %q", data[:min(len(data), 80)])
	}
	rest := strings.TrimSuffix(string(data[len(c.marker):]), "\n")
	lines := strings.Split(rest, "\n")
	if lines[len(lines)-1] != "line 04999" {
		t.Errorf("newest line %q, want line 04999", lines[len(lines)-1])
	}
	// Whole lines only, consecutive.
	var first int
	if _, err := fmt.Sscanf(lines[0], "line %05d", &first); err != nil {
		t.Fatalf("first kept line %q is cut: %v", lines[0], err)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("line %05d", first+i); l != want {
			t.Fatalf("line %d is %q, want %q", i, l, want)
		}
	}
	if len(data) < capBytes/4 {
		t.Errorf("only %d bytes kept of a %d cap", len(data), capBytes)
	}
	tail, _ := c.Tail(2)
	if string(tail) != "line 04998\nline 04999\n" {
		t.Errorf("tail %q", tail)
	}

	// A single write bigger than the cap keeps its newest part.
	big := bytes.Repeat([]byte("z"), 3*capBytes)
	copy(big[len(big)-4:], "END\n")
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
	data, _ = os.ReadFile(path)
	if len(data) > capBytes || !bytes.HasSuffix(data, []byte("END\n")) || !bytes.HasPrefix(data, c.marker) {
		t.Errorf("after a huge write: %d bytes, suffix %q", len(data), data[max(0, len(data)-4):])
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Write([]byte("late\n")); n != 5 {
		t.Errorf("write after close reported %d", n)
	}
}

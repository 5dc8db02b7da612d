package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A follower reads every byte in order, and when compaction dropped output
// before it was read, it learns exactly how much and goes on with the rest.
func TestFollowerCopesWithCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "output.log")
	const capBytes = 4 << 10
	c, err := createCappedFile(path, capBytes)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var all strings.Builder // everything ever written
	write := func(from, to int) {
		for i := from; i < to; i++ {
			line := fmt.Sprintf("line %05d\n", i)
			all.WriteString(line)
			if _, err := c.Write([]byte(line)); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 10)
	tail, pos, err := c.snapshot(f, 3)
	if err != nil || string(tail) != "line 00007\nline 00008\nline 00009\n" || pos != int64(all.Len()) {
		t.Fatalf("snapshot: %q at %d, %v", tail, pos, err)
	}
	got, err := c.readSince(f, pos)
	if err != nil || len(got.data) != 0 || got.wait == nil || got.ended {
		t.Fatalf("nothing new: %+v, %v", got, err)
	}
	write(10, 20) // wakes the follower
	select {
	case <-got.wait:
	default:
		t.Fatal("a write did not wake the follower")
	}
	got, _ = c.readSince(f, pos)
	if want := all.String()[pos:]; string(got.data) != want || got.lost != 0 {
		t.Fatalf("read %q (lost %d), want %q", got.data, got.lost, want)
	}
	pos = got.next

	before := pos
	write(20, 2000) // far over the cap: older output is dropped unread
	var read strings.Builder
	var lost int64
	for {
		got, err = c.readSince(f, pos)
		if err != nil {
			t.Fatal(err)
		}
		lost += got.lost
		read.Write(got.data)
		pos = got.next
		if got.wait != nil {
			break
		}
	}
	s := all.String()
	if lost == 0 {
		t.Fatal("no loss reported although the file was compacted past the follower")
	}
	if pos != int64(len(s)) {
		t.Fatalf("follower at %d, output is %d bytes", pos, len(s))
	}
	if want := s[int64(len(s))-int64(read.Len()):]; read.String() != want {
		t.Fatalf("after the loss the follower read %d bytes that are not the newest output", read.Len())
	}
	if lost+int64(read.Len()) != int64(len(s))-before {
		t.Fatalf("lost %d + read %d bytes, but %d were written after the follower's position", lost, read.Len(), int64(len(s))-before)
	}

	// Close ends the follow once everything is read.
	write(2000, 2001)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ = c.readSince(f, pos)
	if string(got.data) != "line 02000\n" || !got.ended {
		t.Fatalf("after close: %+v", got)
	}
	all2, _, _ := c.snapshot(f, -1)
	if !strings.HasPrefix(string(all2), "[agent: older output dropped") || !strings.HasSuffix(string(all2), "line 02000\n") {
		t.Fatalf("snapshot of all: %q...", all2[:min(80, len(all2))])
	}
}

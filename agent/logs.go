package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Bounds of GET /workloads/{id}/logs?tail=N.
const (
	defaultTailLines = 100
	maxTailLines     = 10000
)

// logChunk is the unit of the tail scan and of the move done by compaction.
const logChunk = 64 << 10

// cappedFile is a workload's output.log. Output is appended until a write
// would take the file over max bytes; then the oldest half is dropped: the
// newest bytes (at most max/2, cut at a line boundary) are moved to the start
// of the file behind a marker line, and writing goes on. A single write larger
// than half the cap keeps only its own newest part.
//
// The copier goroutine is the only writer; tail readers share the lock so they
// never see a half-done compaction.
type cappedFile struct {
	path   string
	max    int64
	marker []byte

	mu      sync.RWMutex
	f       *os.File // nil once closed
	size    int64
	err     error         // first write error, output is dropped after it
	written int64         // bytes of output taken in since creation, dropped ones included
	hdr     int64         // length of the marker at the start of the file, 0 before a compaction
	closed  bool          // no more output will come
	changed chan struct{} // closed and cleared at the next write or Close; made on demand by followers
}

// createCappedFile creates (or truncates) path with mode 0600.
func createCappedFile(path string, max int64) (*cappedFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(fileMode); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &cappedFile{
		path:   path,
		max:    max,
		marker: fmt.Appendf(nil, "[agent: older output dropped, output.log is capped at %d bytes]\n", max),
		f:      f,
	}, nil
}

// logState is where a cappedFile stood when its agent left for a restart,
// so that the next agent goes on with the same positions (readSince).
type logState struct {
	Size    int64 `json:"size"`
	Hdr     int64 `json:"hdr"`
	Written int64 `json:"written"`
}

// state returns the file's positions.
func (c *cappedFile) state() logState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return logState{Size: c.size, Hdr: c.hdr, Written: c.written}
}

// openCappedFile opens path (created if missing, kept otherwise) to append
// to it, with the positions st that its previous writer left (nil: counted
// from the file as it is).
func openCappedFile(path string, max int64, st *logState) (*cappedFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	c := &cappedFile{
		path:   path,
		max:    max,
		marker: fmt.Appendf(nil, "[agent: older output dropped, output.log is capped at %d bytes]\n", max),
		f:      f,
		size:   fi.Size(),
	}
	if st != nil && st.Hdr > 0 && st.Hdr <= c.size {
		c.hdr = st.Hdr
	} else if c.size >= int64(len(c.marker)) {
		head := make([]byte, len(c.marker))
		if _, err := f.ReadAt(head, 0); err == nil && bytes.Equal(head, c.marker) {
			c.hdr = int64(len(c.marker))
		}
	}
	c.written = c.size - c.hdr
	if st != nil && st.Written >= st.Size-st.Hdr && c.size >= st.Size {
		c.written = st.Written + (c.size - st.Size) // the bytes dropped before stay counted
	}
	return c, nil
}

// appendFile appends the content of the file at path to c.
func (c *cappedFile) appendFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, logChunk)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			_, _ = c.Write(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Write appends p, compacting first when the cap would be exceeded. It always
// reports len(p) written so the pipe keeps draining; a disk error is kept in
// c.err and later output is dropped.
func (c *cappedFile) Write(p []byte) (int, error) {
	n := len(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil || c.err != nil {
		return n, nil
	}
	defer c.notifyLocked()
	c.written += int64(n) // counted even when part of it is dropped below, so that followers see the loss
	if c.size+int64(len(p)) > c.max {
		budget := c.max / 2
		if int64(len(p)) >= budget-int64(len(c.marker)) {
			p = p[int64(len(p))-(budget-int64(len(c.marker))):]
			c.err = c.rewrite(c.size) // drop everything already written
		} else {
			c.err = c.compact(budget - int64(len(c.marker)))
		}
		if c.err != nil {
			return n, nil
		}
	}
	if _, err := c.f.WriteAt(p, c.size); err != nil {
		c.err = err
		return n, nil
	}
	c.size += int64(len(p))
	return n, nil
}

// compact keeps at most the newest keep bytes, starting after a newline when
// one is found in the first chunk, behind the marker.
func (c *cappedFile) compact(keep int64) error {
	start := c.size - keep
	if start <= int64(len(c.marker)) {
		return nil // cannot happen with size > max/2, but never overlap
	}
	buf := make([]byte, min(logChunk, c.size-start))
	n, err := c.f.ReadAt(buf, start)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 && start+int64(i)+1 < c.size {
		start += int64(i) + 1
	}
	return c.rewrite(start)
}

// rewrite moves [from, size) to just after a marker at the start of the file
// and truncates the rest. Moving forward chunk by chunk is safe because the
// destination is always before the source.
func (c *cappedFile) rewrite(from int64) error {
	if _, err := c.f.WriteAt(c.marker, 0); err != nil {
		return err
	}
	dst := int64(len(c.marker))
	if from < c.size {
		buf := make([]byte, min(logChunk, c.size-from))
		for src := from; src < c.size; {
			n, err := c.f.ReadAt(buf[:min(int64(len(buf)), c.size-src)], src)
			if n > 0 {
				if _, werr := c.f.WriteAt(buf[:n], dst); werr != nil {
					return werr
				}
				src += int64(n)
				dst += int64(n)
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if n == 0 {
				break
			}
		}
	}
	if err := c.f.Truncate(dst); err != nil {
		return err
	}
	c.size = dst
	c.hdr = int64(len(c.marker))
	return nil
}

// Close closes the file for writing; Tail keeps working.
func (c *cappedFile) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	c.closed = true
	c.notifyLocked()
	return err
}

// Tail returns the last n lines of the file.
func (c *cappedFile) Tail(n int) ([]byte, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	f, err := os.Open(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return tailLines(f, c.size, n)
}

// tailLines returns the last n lines of the first size bytes of r. A final
// newline ends the last line rather than starting an empty one.
func tailLines(r io.ReaderAt, size int64, n int) ([]byte, error) {
	if n <= 0 || size <= 0 {
		return []byte{}, nil
	}
	start := int64(0)
	seen := 0
	buf := make([]byte, min(logChunk, size))
	pos := size
scan:
	for pos > 0 {
		chunk := min(int64(len(buf)), pos)
		pos -= chunk
		if _, err := r.ReadAt(buf[:chunk], pos); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		for i := chunk - 1; i >= 0; i-- {
			if buf[i] != '\n' || pos+i == size-1 {
				continue
			}
			seen++
			if seen == n {
				start = pos + i + 1
				break scan
			}
		}
	}
	out := make([]byte, size-start)
	if _, err := r.ReadAt(out, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return out, nil
}

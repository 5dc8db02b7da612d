package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/micro-orchestrator/mo/api"
)

// followChunk bounds one read of a follower, so that it never holds the
// file's lock for long.
const followChunk = 256 << 10

// followWriteTimeout bounds each write of a followed log to a slow client;
// the server's own WriteTimeout would end a long follow.
const followWriteTimeout = time.Minute

// notifyLocked wakes the followers waiting for output; call it under c.mu.
func (c *cappedFile) notifyLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// snapshot returns the last n lines (all of the file when n < 0) and the
// output position just after them, from which a follower goes on.
func (c *cappedFile) snapshot(f io.ReaderAt, n int) ([]byte, int64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if n < 0 {
		out := make([]byte, c.size)
		if _, err := f.ReadAt(out, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		return out, c.written, nil
	}
	out, err := tailLines(f, c.size, n)
	return out, c.written, err
}

// since is what a follower gets from readSince.
type since struct {
	data  []byte
	next  int64           // the position to ask for next
	lost  int64           // bytes dropped by compaction before the follower read them
	wait  <-chan struct{} // closed at the next write, when there was nothing to read
	ended bool            // the output is closed and everything has been read
}

// readSince returns the output from position pos on (at most followChunk
// bytes). A position is a count of bytes taken in since the file was created,
// so compaction, which moves the newest bytes to the start of the file, does
// not invalidate it: what was dropped before it was read is reported as lost.
func (c *cappedFile) readSince(f io.ReaderAt, pos int64) (since, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s since
	start := c.written - (c.size - c.hdr) // position of the file's first byte after the marker
	pos = min(pos, c.written)             // a position from the future (a bad since=) means now
	if pos < start {
		s.lost, pos = start-pos, start
	}
	if pos < c.written {
		off := c.hdr + pos - start
		s.data = make([]byte, min(followChunk, c.size-off))
		n, err := f.ReadAt(s.data, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return since{}, err
		}
		s.data = s.data[:n]
		pos += int64(n)
	}
	s.next = pos
	switch {
	case pos < c.written:
	case c.closed:
		s.ended = true
	default:
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		s.wait = c.changed
	}
	return s, nil
}

// logFile returns the output file of id's latest instance (nil when it
// could not be created) and the instance's generation.
func (s *supervisor) logFile(id string) (*cappedFile, uint64, error) {
	in, _, ok := s.get(id)
	if !ok {
		return nil, 0, fmt.Errorf("%w %q", errUnknownWorkload, id)
	}
	return in.out, in.gen, nil
}

// streamOpts says what streamLogs sends.
type streamOpts struct {
	tail   int     // lines to send first; < 0 for the whole file
	follow bool    // then the output as it is written, until the instance ends
	frames bool    // as api.LogFrame JSON lines
	since  int64   // with frames: resume at this position instead of a tail; < 0 for none
	gen    *uint64 // with frames: the instance the client follows
}

// handleLogsRoute answers GET /workloads/{id}/logs: with follow=true or
// tail=all here, else as before (handleLogs).
func (s *server) handleLogsRoute(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	q := r.URL.Query()
	follow := q.Get("follow") == "true"
	if !follow && q.Get("tail") != "all" {
		s.handleLogs(w, r, ps)
		return
	}
	o := streamOpts{tail: defaultTailLines, follow: follow, frames: follow && q.Get(api.ParamFrames) == "true", since: -1}
	switch v := q.Get("tail"); v {
	case "":
	case "all":
		o.tail = -1
	default:
		var err error
		o.tail, err = strconv.Atoi(v)
		if err != nil || o.tail < 0 || o.tail > maxTailLines {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("tail must be all or a whole number from 0 to %d, not %q", maxTailLines, v))
			return
		}
	}
	if v := q.Get(api.ParamSince); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || !o.frames {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("since must be a position from a log frame, with follow=true&frames=true, not %q", v))
			return
		}
		o.since = n
	}
	if v := q.Get(api.ParamLogGeneration); v != "" {
		g, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("generation must be an unsigned integer, not %q", v))
			return
		}
		o.gen = &g
	}
	s.streamLogs(w, r, ps.ByName("id"), o)
}

// streamLogs writes the last lines of id's output (or, with frames, from
// o.since on) and, with o.follow, every byte written after them, flushed as it
// comes, until the instance's output ends or the client goes away.
func (s *server) streamLogs(w http.ResponseWriter, r *http.Request, id string, o streamOpts) {
	out, gen, err := s.sup.logFile(id)
	if err != nil {
		s.writeError(w, err)
		return
	}
	h := w.Header()
	h["Content-Type"] = contentTypeText
	if o.frames {
		h["Content-Type"] = []string{"application/x-ndjson"}
	}
	h["X-Content-Type-Options"] = noSniff
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // an expired read deadline would cancel the request
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(followWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	frame := func(f api.LogFrame) bool {
		b, _ := json.Marshal(f)
		return send(append(b, '\n'))
	}

	var f *os.File
	if out != nil && (o.gen == nil || *o.gen == gen) {
		f, err = os.Open(out.path) // the file is rewritten in place, so this stays valid
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			s.writeError(w, err)
			return
		}
		if f != nil {
			defer f.Close()
		}
	}
	if f == nil {
		// No output file, or (frames) another instance runs now: the one
		// asked for has ended.
		w.WriteHeader(http.StatusOK)
		if o.frames {
			frame(api.LogFrame{Generation: gen, Next: max(o.since, 0), End: true})
		}
		return
	}
	var data []byte
	pos := o.since
	if pos < 0 {
		if data, pos, err = out.snapshot(f, o.tail); err != nil {
			s.writeError(w, err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	if o.frames {
		if !frame(api.LogFrame{Generation: gen, Data: data, Next: pos}) {
			return
		}
	} else if !send(data) {
		return
	}
	if !o.follow {
		return
	}
	for {
		got, err := out.readSince(f, pos)
		if err != nil {
			s.log.Warn("following a workload's output failed", "id", id, "error", err)
			return
		}
		select {
		case <-s.sup.stopFollow:
			// The agent leaves for a restart and the workload goes on: end
			// without saying the output has ended, so that the client goes on
			// with the next agent (frames: from got.next, its since).
			if len(got.data) > 0 && o.frames {
				frame(api.LogFrame{Data: got.data, Lost: got.lost, Next: got.next})
			} else if len(got.data) > 0 {
				send(got.data)
			}
			return
		default:
		}
		switch {
		case o.frames:
			if (len(got.data) > 0 || got.lost > 0 || got.ended) && !frame(api.LogFrame{Data: got.data, Lost: got.lost, Next: got.next, End: got.ended}) {
				return
			}
		case got.lost > 0 && !send(fmt.Appendf(nil, "[agent: %d bytes of output dropped before they could be sent; output.log is capped at %d bytes]\n", got.lost, out.max)):
			return
		case len(got.data) > 0 && !send(got.data):
			return
		}
		if got.ended {
			return
		}
		pos = got.next
		if got.wait != nil {
			select {
			case <-got.wait:
			case <-r.Context().Done():
				return
			case <-s.sup.stopFollow:
			}
		}
	}
}

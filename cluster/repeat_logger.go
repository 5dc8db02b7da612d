package cluster

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// repeatWindow is how often a repeated raft log line is printed at most.
const repeatWindow = 10 * time.Second

// repeatLimiter lets a repeated line through at most once per window and
// counts the repeats it held back. Lines are the same when they have the
// same level, logger, message and arguments, leaving out the arguments
// that change from one repeat to the next (errors, durations, numbers).
type repeatLimiter struct {
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]*repeat
}

type repeat struct {
	printed    time.Time
	suppressed int
}

func newRepeatLimiter(window time.Duration) *repeatLimiter {
	return &repeatLimiter{window: window, now: time.Now, seen: map[string]*repeat{}}
}

// allow reports whether the line with this key may be printed now, and how
// many repeats of it were held back since it last was.
func (l *repeatLimiter) allow(key string) (bool, int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.seen[key]; ok && now.Sub(e.printed) < l.window {
		e.suppressed++
		return false, 0
	}
	held := 0
	if e, ok := l.seen[key]; ok {
		held = e.suppressed
	}
	if len(l.seen) >= 1024 {
		for k, e := range l.seen {
			if now.Sub(e.printed) >= l.window {
				delete(l.seen, k)
			}
		}
	}
	l.seen[key] = &repeat{printed: now}
	return true, held
}

// repeatKey identifies a line for the limiter.
func repeatKey(level hclog.Level, name, msg string, args []any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\x00%s\x00%s", level, name, msg)
	for i := 0; i+1 < len(args); i += 2 {
		v := args[i+1]
		if varies(v) {
			continue
		}
		fmt.Fprintf(&b, "\x00%v=%v", args[i], v)
	}
	return b.String()
}

// varies reports whether an argument value tends to change between
// repeats of one line: errors (they name ephemeral ports), durations,
// times and numbers (backoffs, terms, indexes).
func varies(v any) bool {
	switch v.(type) {
	case error, time.Duration, time.Time:
		return true
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// repeatLogger is an hclog.Logger that prints a repeated line at most once
// per window, with the number of repeats held back since ("suppressed").
// Raft logs through one: a dead follower makes the leader log "failed to
// heartbeat to" twice a second, for as long as it is down.
type repeatLogger struct {
	hclog.Logger
	lim *repeatLimiter
}

// newRepeatLogger wraps l.
func newRepeatLogger(l hclog.Logger, window time.Duration) hclog.Logger {
	return &repeatLogger{Logger: l, lim: newRepeatLimiter(window)}
}

// Log implements hclog.Logger.
func (q *repeatLogger) Log(level hclog.Level, msg string, args ...any) {
	if level < q.Logger.GetLevel() {
		return // dropped below anyway: not counted as printed
	}
	ok, held := q.lim.allow(repeatKey(level, q.Logger.Name(), msg, args))
	if !ok {
		return
	}
	if held > 0 {
		args = append(args[:len(args):len(args)], "suppressed", held)
	}
	q.Logger.Log(level, msg, args...)
}

// Trace implements hclog.Logger.
func (q *repeatLogger) Trace(msg string, args ...any) { q.Log(hclog.Trace, msg, args...) }

// Debug implements hclog.Logger.
func (q *repeatLogger) Debug(msg string, args ...any) { q.Log(hclog.Debug, msg, args...) }

// Info implements hclog.Logger.
func (q *repeatLogger) Info(msg string, args ...any) { q.Log(hclog.Info, msg, args...) }

// Warn implements hclog.Logger.
func (q *repeatLogger) Warn(msg string, args ...any) { q.Log(hclog.Warn, msg, args...) }

// Error implements hclog.Logger.
func (q *repeatLogger) Error(msg string, args ...any) { q.Log(hclog.Error, msg, args...) }

// With implements hclog.Logger; the new logger shares the limiter.
func (q *repeatLogger) With(args ...any) hclog.Logger {
	return &repeatLogger{Logger: q.Logger.With(args...), lim: q.lim}
}

// Named implements hclog.Logger; the new logger shares the limiter.
func (q *repeatLogger) Named(name string) hclog.Logger {
	return &repeatLogger{Logger: q.Logger.Named(name), lim: q.lim}
}

// ResetNamed implements hclog.Logger; the new logger shares the limiter.
func (q *repeatLogger) ResetNamed(name string) hclog.Logger {
	return &repeatLogger{Logger: q.Logger.ResetNamed(name), lim: q.lim}
}

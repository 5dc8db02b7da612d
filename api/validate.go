package api

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest workload name, in bytes.
const MaxNameLen = 253

// WorkloadStates lists every workload state, in lifecycle order. GET
// /workloads?state= and the CLI refuse any other, so a new state goes here too.
var WorkloadStates = []string{StatePending, StateRunning, StateFailed, StatePermanentlyFailed, StateCompleted, StateStopped}

// ValidState reports whether s is one of WorkloadStates.
func ValidState(s string) bool { return slices.Contains(WorkloadStates, s) }

// NodeStatuses lists every node status.
var NodeStatuses = []string{NodeOnline, NodeDegraded, NodeOffline}

// IsControl reports whether r must never appear in a name: a control
// character (Unicode category Cc: C0, DEL and C1) or a line or paragraph
// separator.
func IsControl(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// CheckPrintable returns an error naming what (for example "name") when s is
// not valid UTF-8 or holds a control character.
func CheckPrintable(what, s string) error {
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			return fmt.Errorf("%s %q is not valid UTF-8 (at byte %d)", what, s, i)
		}
		if IsControl(r) {
			return fmt.Errorf("%s %q holds the control character %U at byte %d; control characters are not allowed", what, s, r, i)
		}
	}
	return nil
}

// ValidateName checks a workload name: non-empty, at most MaxNameLen bytes,
// printable (no control characters). The caller trims it first.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("name is required")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name is longer than %d bytes", MaxNameLen)
	}
	return CheckPrintable("name", name)
}

// ValidateProcess checks what becomes a process's argv and environment, with
// the rules of execve: no NUL byte in the command, an argument or an env
// value; env names non-empty without '=' or NUL. The scheduler applies it
// when a workload is submitted and the agent before it starts one, so that
// the two cannot disagree.
func ValidateProcess(command string, args []string, env map[string]string) error {
	if strings.TrimSpace(command) == "" {
		return errors.New("command is required")
	}
	if strings.IndexByte(command, 0) >= 0 {
		return errors.New("command must not contain NUL bytes")
	}
	for i, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("args[%d] must not contain NUL bytes", i)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env name %q must be non-empty without '=' or NUL", k)
		}
		if strings.IndexByte(env[k], 0) >= 0 {
			return fmt.Errorf("env %s must not contain NUL bytes", k)
		}
	}
	return nil
}

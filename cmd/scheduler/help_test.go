package main

import (
	"os/exec"
	"strings"
	"testing"
)

// help COMMAND and COMMAND -h show the usage line, the flags and examples.
func TestHelpShowsUsageFlagsAndExample(t *testing.T) {
	for _, c := range commands() {
		if strings.HasPrefix(c.name, "_") || c.name == "help" {
			continue
		}
		var code int
		out, _ := capture(t, func() { code = runHelp([]string{c.name}) })
		if code != exitOK {
			t.Errorf("help %s: exit %d", c.name, code)
		}
		for _, want := range []string{"Usage: scheduler " + c.name, "Flags:", "Example", "  scheduler " + c.name} {
			if !strings.Contains(out, want) {
				t.Errorf("help %s lacks %q:\n%s", c.name, want, out)
			}
		}
		_, errOut := capture(t, func() { c.run([]string{"-h"}) })
		if !strings.Contains(errOut, "Example") {
			t.Errorf("%s -h has no example:\n%s", c.name, errOut)
		}
	}
	var code int
	_, errOut := capture(t, func() { code = runHelp([]string{"nosuch"}) })
	if code != exitUsage || !strings.Contains(errOut, "unknown command") {
		t.Errorf("help nosuch: exit %d, %q", code, errOut)
	}
}

func TestCompleteListsCommandsAndFlags(t *testing.T) {
	out, _ := capture(t, func() { runComplete([]string{"commands"}) })
	if !strings.Contains(out, "logs\n") || !strings.Contains(out, "completion\n") || strings.Contains(out, "__complete") {
		t.Errorf("commands:\n%s", out)
	}
	out, _ = capture(t, func() { runComplete([]string{"flags", "logs"}) })
	for _, want := range []string{"-f\n", "--follow\n", "--tail\n", "--addr\n", "--json\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("flags of logs lack %q:\n%s", want, out)
		}
	}
	out, _ = capture(t, func() { runComplete([]string{"states"}) })
	if out != "pending\nrunning\nfailed\npermanently_failed\ncompleted\nstopped\n" {
		t.Errorf("states: %q", out)
	}
}

func TestCompletionScriptsParse(t *testing.T) {
	for shell, script := range map[string]string{"bash": bashCompletion, "zsh": zshCompletion} {
		path, err := exec.LookPath(shell)
		if err != nil {
			t.Logf("%s not installed: not checking its script", shell)
			continue
		}
		cmd := exec.Command(path, "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", shell, err, out)
		}
	}
	out, _ := capture(t, func() { runCompletion([]string{"bash"}) })
	if !strings.Contains(out, "complete -F _scheduler scheduler") {
		t.Errorf("completion bash:\n%s", out)
	}
}

package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/micro-orchestrator/mo/api"
)

// Completion scripts: they ask the binary itself (the hidden __complete
// command) for commands, a command's flags, enumerated values and workload
// IDs, so they never fall out of date.
const bashCompletion = `# bash completion for scheduler: source <(scheduler completion bash)
_scheduler() {
    local cur prev bin cmd
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    bin="${COMP_WORDS[0]}"
    if [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=($(compgen -W "$("$bin" __complete commands 2>/dev/null)" -- "$cur"))
        return
    fi
    cmd="${COMP_WORDS[1]}"
    local sub=""
    [[ ($cmd == job || $cmd == node) && $COMP_CWORD -gt 2 ]] && sub="${COMP_WORDS[2]}"
    case "$prev" in
        --state|-state) COMPREPLY=($(compgen -W "$("$bin" __complete states 2>/dev/null)" -- "$cur")); return ;;
        --node|-node) COMPREPLY=($(compgen -W "$("$bin" __complete nodes 2>/dev/null)" -- "$cur")); return ;;
        --tail|-tail) COMPREPLY=($(compgen -W "all 10 100 1000" -- "$cur")); return ;;
        --deadline|-deadline) COMPREPLY=($(compgen -W "10m 30m 1h 4h" -- "$cur")); return ;;
        --role|-role) COMPREPLY=($(compgen -W "server agent cli" -- "$cur")); return ;;
        --dir|-dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        --ca|-ca|--ca-key|-ca-key) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$("$bin" __complete flags "$cmd" $sub 2>/dev/null)" -- "$cur"))
        return
    fi
    case "$cmd" in
        workload|stop|logs) COMPREPLY=($(compgen -W "$("$bin" __complete ids 2>/dev/null)" -- "$cur")) ;;
        help) COMPREPLY=($(compgen -W "$("$bin" __complete commands 2>/dev/null)" -- "$cur")) ;;
        completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
        backup) COMPREPLY=($(compgen -f -- "$cur")) ;;
        tls) case $COMP_CWORD in 2) COMPREPLY=($(compgen -W "ca cert" -- "$cur")) ;; 3) COMPREPLY=($(compgen -W "create" -- "$cur")) ;; esac ;;
        job)
            if [[ $COMP_CWORD -eq 2 ]]; then
                COMPREPLY=($(compgen -W "$("$bin" __complete job-commands 2>/dev/null)" -- "$cur"))
                return
            fi
            case "$sub" in
                run|plan) COMPREPLY=($(compgen -f -- "$cur")) ;;
                status|scale|history|revert|stop) [[ $COMP_CWORD -eq 3 ]] && COMPREPLY=($(compgen -W "$("$bin" __complete jobs 2>/dev/null)" -- "$cur")) ;;
                help) [[ $COMP_CWORD -eq 3 ]] && COMPREPLY=($(compgen -W "$("$bin" __complete job-commands 2>/dev/null)" -- "$cur")) ;;
            esac ;;
        node)
            if [[ $COMP_CWORD -eq 2 ]]; then
                COMPREPLY=($(compgen -W "$("$bin" __complete node-commands 2>/dev/null)" -- "$cur"))
                return
            fi
            case "$sub" in
                drain|eligibility|purge) [[ $COMP_CWORD -eq 3 ]] && COMPREPLY=($(compgen -W "$("$bin" __complete nodes 2>/dev/null)" -- "$cur")) ;;
                help) [[ $COMP_CWORD -eq 3 ]] && COMPREPLY=($(compgen -W "$("$bin" __complete node-commands 2>/dev/null)" -- "$cur")) ;;
            esac ;;
    esac
}
complete -F _scheduler scheduler
`

const zshCompletion = `#compdef scheduler
# zsh completion for scheduler: scheduler completion zsh > "${fpath[1]}/_scheduler",
# or source <(scheduler completion zsh) after compinit
compdef _scheduler scheduler
_scheduler() {
    local bin=${words[1]} cmd=${words[2]} sub=
    [[ $cmd == job || $cmd == node ]] && (( CURRENT > 3 )) && sub=${words[3]}
    if (( CURRENT == 2 )); then
        compadd -- ${(f)"$($bin __complete commands 2>/dev/null)"}
        return
    fi
    case ${words[CURRENT-1]} in
        --state|-state) compadd -- ${(f)"$($bin __complete states 2>/dev/null)"}; return ;;
        --node|-node) compadd -- ${(f)"$($bin __complete nodes 2>/dev/null)"}; return ;;
        --tail|-tail) compadd -- all 10 100 1000; return ;;
        --deadline|-deadline) compadd -- 10m 30m 1h 4h; return ;;
        --role|-role) compadd -- server agent cli; return ;;
        --dir|-dir) _files -/; return ;;
        --ca|-ca|--ca-key|-ca-key) _files; return ;;
    esac
    if [[ ${words[CURRENT]} == -* ]]; then
        compadd -- ${(f)"$($bin __complete flags $cmd $sub 2>/dev/null)"}
        return
    fi
    case $cmd in
        workload|stop|logs) compadd -- ${(f)"$($bin __complete ids 2>/dev/null)"} ;;
        help) compadd -- ${(f)"$($bin __complete commands 2>/dev/null)"} ;;
        completion) compadd -- bash zsh ;;
        backup) _files ;;
        tls) case $CURRENT in 3) compadd -- ca cert ;; 4) compadd -- create ;; esac ;;
        job)
            if (( CURRENT == 3 )); then
                compadd -- ${(f)"$($bin __complete job-commands 2>/dev/null)"}
                return
            fi
            case $sub in
                run|plan) _files ;;
                status|scale|history|revert|stop) (( CURRENT == 4 )) && compadd -- ${(f)"$($bin __complete jobs 2>/dev/null)"} ;;
                help) (( CURRENT == 4 )) && compadd -- ${(f)"$($bin __complete job-commands 2>/dev/null)"} ;;
            esac ;;
        node)
            if (( CURRENT == 3 )); then
                compadd -- ${(f)"$($bin __complete node-commands 2>/dev/null)"}
                return
            fi
            case $sub in
                drain|eligibility|purge) (( CURRENT == 4 )) && compadd -- ${(f)"$($bin __complete nodes 2>/dev/null)"} ;;
                help) (( CURRENT == 4 )) && compadd -- ${(f)"$($bin __complete node-commands 2>/dev/null)"} ;;
            esac ;;
    esac
}
# autoloaded from fpath: complete now; sourced: only define it
if [[ "${funcstack[1]}" == _scheduler ]]; then
    _scheduler "$@"
fi
`

func runCompletion(args []string) int {
	fs := flag.NewFlagSet("completion", flag.ContinueOnError)
	if code, ok := parse(fs, args, "completion bash|zsh", 1); !ok {
		return code
	}
	switch fs.Arg(0) {
	case "bash":
		fmt.Print(bashCompletion)
	case "zsh":
		fmt.Print(zshCompletion)
	default:
		fmt.Fprintf(os.Stderr, "scheduler completion: want bash or zsh, not %q\n", fs.Arg(0))
		return exitUsage
	}
	return exitOK
}

// runComplete answers the completion scripts, one word a line:
// __complete commands | flags COMMAND [SUBCOMMAND] | states | nodes | ids |
// job-commands | jobs | node-commands.
func runComplete(args []string) int {
	if len(args) == 0 {
		return exitUsage
	}
	switch args[0] {
	case "commands":
		for _, c := range commands() {
			if !strings.HasPrefix(c.name, "_") {
				fmt.Println(c.name)
			}
		}
	case "flags":
		if len(args) < 2 {
			return exitUsage
		}
		for _, f := range commandFlags(args[1], args[2:]...) {
			if len(f) == 1 {
				fmt.Println("-" + f)
			} else {
				fmt.Println("--" + f)
			}
		}
	case "states":
		fmt.Println(strings.Join(api.WorkloadStates, "\n"))
	case "job-commands":
		for _, c := range jobCommands() {
			fmt.Println(c.name)
		}
		fmt.Println("help")
	case "node-commands":
		for _, c := range nodeCommands() {
			fmt.Println(c.name)
		}
		fmt.Println("help")
	case "nodes", "ids", "jobs":
		// A quick stale read of whichever replica answers first; nothing on error.
		fs := flag.NewFlagSet("__complete", flag.ContinueOnError)
		cf := addClientFlags(fs)
		_ = fs.Parse([]string{"--timeout", "2s"})
		c := cf.client()
		if args[0] == "jobs" {
			var l api.JobList
			if c.do("GET", "/jobs?stale=true", nil, &l) == nil {
				for _, j := range l.Jobs {
					fmt.Println(escapeText(j.Name))
				}
			}
			return exitOK
		}
		if args[0] == "nodes" {
			var l api.NodeList
			if c.do("GET", "/nodes?stale=true", nil, &l) == nil {
				for _, n := range l.Nodes {
					fmt.Println(escapeText(n.ID))
				}
			}
			return exitOK
		}
		var l api.WorkloadList
		if c.do("GET", "/workloads?stale=true", nil, &l) == nil {
			for _, w := range l.Workloads {
				fmt.Println(escapeText(w.ID))
			}
		}
	default:
		return exitUsage
	}
	return exitOK
}

// flagLine matches a flag in the output of flag.PrintDefaults.
var flagLine = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][-A-Za-z0-9_]*)`)

// commandFlags returns the flag names of a command (of a job or node
// subcommand, given sub), read from its own -h so that they cannot drift
// from what it parses.
func commandFlags(name string, sub ...string) []string {
	for _, c := range commands() {
		if c.name != name || strings.HasPrefix(name, "_") || name == "help" {
			continue
		}
		help := []string{"-h"}
		if name == "job" && len(sub) > 0 && slices.ContainsFunc(jobCommands(), func(j jobCommand) bool { return j.name == sub[0] }) {
			help = []string{sub[0], "-h"}
		}
		if name == "node" && len(sub) > 0 && slices.ContainsFunc(nodeCommands(), func(n nodeCommand) bool { return n.name == sub[0] }) {
			help = []string{sub[0], "-h"}
		}
		out := captureStderr(func() { c.run(help) })
		var names []string
		for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
			names = append(names, m[1])
		}
		return names
	}
	return nil
}

// captureStderr runs f with os.Stderr sent to a temporary file and returns
// what it printed there.
func captureStderr(f func()) string {
	tmp, err := os.CreateTemp("", "scheduler-complete-")
	if err != nil {
		return ""
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	old := os.Stderr
	os.Stderr = tmp
	f()
	os.Stderr = old
	b, _ := os.ReadFile(tmp.Name())
	return string(b)
}

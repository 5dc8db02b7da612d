package jobfile

import (
	"errors"
	"strings"
	"testing"
)

// body is an HCL job "web" whose line 2 sets command and whose lines from
// 3 on are lines.
func body(lines ...string) string {
	return "job \"web\" {\n  command = \"x\"\n" + strings.Join(lines, "\n") + "\n}\n"
}

// jsonBody is the same in JSON: line 2 sets command, lines from 3 on are
// lines, each a property (the commas are added).
func jsonBody(lines ...string) string {
	s := "{\"job\": {\"web\": {\n  \"command\": \"x\""
	for _, l := range lines {
		s += ",\n" + l
	}
	return s + "\n}}}\n"
}

// TestErrors checks each problem's file:line,column and field, and the
// start of its message: want[i] is a prefix of the i-th line of the error.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, src string
		want            []string
	}{
		// Syntax.
		{"malformed hcl", "web.hcl", body("  count = = 3"), []string{"web.hcl:3,11: Invalid expression"}},
		{"unclosed block", "web.hcl", "job \"web\" {\n  count = 1\n", []string{"web.hcl:1,11: Unclosed configuration block"}},
		{"malformed json", "web.json", jsonBody(`  "count": 3,`), []string{"web.json:3,13: Trailing comma in object"}},
		{"not an object", "web.json", `["job"]`, []string{"web.json:1,2: Incorrect JSON value type"}},

		// The job block.
		{"no job", "web.hcl", "# nothing\n", []string{`web.hcl:1,1: job: no job block`}},
		{"no job json", "web.json", "{}", []string{`web.json:1,1: job: no job block`}},
		{"two jobs", "web.hcl", "job \"a\" { command = \"x\" }\n\njob \"b\" { command = \"x\" }\n",
			[]string{"web.hcl:3,1: job: a second job block (b)"}},
		{"two jobs json", "web.json", "{\"job\": {\n  \"a\": {\"command\": \"x\"},\n  \"b\": {\"command\": \"x\"}\n}}",
			[]string{"web.json:1,2: job: a second job block (b)"}},
		{"no label", "web.hcl", "job {\n  command = \"x\"\n}\n", []string{"web.hcl:1,5: job: Missing name for job"}},
		{"two labels", "web.hcl", "job \"a\" \"b\" {\n}\n", []string{"web.hcl:1,9: job: Extraneous label for job"}},
		{"name not a DNS label", "web.hcl", "job \"Web_1\" {\n  command = \"x\"\n}\n",
			[]string{`web.hcl:1,5: name: job name "Web_1" is not a DNS label`}},
		{"empty name", "web.hcl", "job \"\" {\n  command = \"x\"\n}\n", []string{"web.hcl:1,5: name: a job needs a name"}},
		{"name json", "web.json", "{\"job\": {\"-web\": {\"command\": \"x\"}}}", []string{`web.json:1,10: name: job name "-web"`}},
		{"unknown top level", "web.hcl", "jobs \"web\" {}\n", []string{"web.hcl:1,1: jobs: Unsupported block type"}},

		// Unknown fields and blocks.
		{"unknown argument", "web.hcl", body("  colour = 1"), []string{`web.hcl:3,3: colour: Unsupported argument; An argument named "colour"`}},
		{"unknown block", "web.hcl", body("  service {}"), []string{"web.hcl:3,3: service: Unsupported block type"}},
		{"block as argument", "web.hcl", body("  check = {}"), []string{"web.hcl:3,3: check: Unsupported argument"}},
		{"unknown in a block", "web.hcl", body("  update {", "    maxparallel = 1", "  }"),
			[]string{`web.hcl:4,5: update.maxparallel: Unsupported argument; An argument named "maxparallel" is not expected here. Did you mean "max_parallel"?`}},
		{"unknown json", "web.json", jsonBody(`  "colour": 1`), []string{`web.json:3,3: colour: Extraneous JSON object property`}},
		{"unknown in a block json", "web.json", jsonBody(`  "restart": {"attempts": 1, "tries": 2}`),
			[]string{`web.json:3,30: restart.tries: Extraneous JSON object property`}},
		{"duplicate argument", "web.hcl", body("  count = 1", "  count = 2"), []string{"web.hcl:4,3: Attribute redefined; The argument \"count\" was already set at web.hcl:3,3-8"}},
		{"two check blocks", "web.hcl", body("  ports = [\"http\"]", "  check {", "    type = \"tcp\"", "    port = \"http\"", "  }", "  check {", "  }"),
			[]string{"web.hcl:8,3: check: at most one check block"}},
		{"label on a block", "web.hcl", body("  update \"x\" {}"), []string{"web.hcl:3,10: update: Extraneous label for update"}},

		// Wrong types.
		{"string count", "web.hcl", body(`  count = "three"`), []string{`web.hcl:3,3: count: want a whole number, not "three"`}},
		{"fractional count", "web.hcl", body(`  count = 2.5`), []string{`web.hcl:3,3: count: want a whole number, not 2.5`}},
		{"huge count", "web.hcl", body(`  count = 1e30`), []string{`web.hcl:3,3: count: want a whole number, not 1e+30`}},
		{"string args", "web.hcl", body(`  args = "-v"`), []string{`web.hcl:3,3: args: want a list of strings, not "-v"`}},
		{"null in args", "web.hcl", body(`  args = ["-v", null]`), []string{`web.hcl:3,3: args: want a list of strings, not one holding null`}},
		{"list env", "web.hcl", body(`  env = ["A=1"]`), []string{`web.hcl:3,3: env: want a map of strings, not a list`}},
		{"string bool", "web.hcl", body(`  exclusive = "yes"`), []string{`web.hcl:3,3: exclusive: want true or false, not "yes"`}},
		{"list command", "web.hcl", "job \"web\" {\n  command = [\"sh\"]\n}\n", []string{`web.hcl:2,3: command: want a string, not a list`}},
		{"object type", "web.hcl", body(`  type = {}`), []string{`web.hcl:3,3: type: want a string, not an object`}},
		{"string count json", "web.json", jsonBody(`  "count": "three"`), []string{`web.json:3,3: count: want a whole number, not "three"`}},
		{"bool port json", "web.json", jsonBody(`  "ports": [true, []]`), []string{`web.json:3,3: ports: want a list of strings, not a list`}},
		{"function call", "web.hcl", body(`  type = upper("batch")`), []string{`web.hcl:3,10: type: Function calls not allowed`}},

		// Durations.
		{"unparsable duration", "web.hcl", body("  check {", `    type     = "exec"`, `    command  = ["true"]`, `    interval = "5 seconds"`, "  }"),
			[]string{`web.hcl:6,5: check.interval: duration "5 seconds": want a number with a unit such as "5s" or "500ms"`}},
		{"zero duration", "web.hcl", body("  update {", `    min_healthy_time = "0s"`, "  }"),
			[]string{`web.hcl:4,5: update.min_healthy_time: duration "0s": must be positive`}},
		{"negative duration", "web.hcl", body(`  restart { delay = "-1s" }`),
			[]string{`web.hcl:3,13: restart.delay: duration "-1s": must be positive`}},
		{"number duration", "web.hcl", body(`  restart { max_delay = 5 }`),
			[]string{`web.hcl:3,13: restart.max_delay: duration "5": want a number with a unit`}},
		{"list duration", "web.hcl", body(`  restart { max_delay = ["5s"] }`),
			[]string{`web.hcl:3,13: restart.max_delay: want a duration such as "5s", not a list`}},
		{"zero duration json", "web.json", jsonBody(`  "check": {"type": "exec", "command": ["true"], "grace": "0s"}`),
			[]string{`web.json:3,50: check.grace: duration "0s": must be positive`}},

		// Bounds (api.JobSpec.Validate), at the attribute.
		{"negative count", "web.hcl", body("  count = -1"), []string{"web.hcl:3,3: count: -1: want 0 to 1000"}},
		{"count too high", "web.hcl", body("  count = 1001"), []string{"web.hcl:3,3: count: 1001: want 0 to 1000"}},
		{"max_parallel 0", "web.hcl", body("  update {", "    max_parallel = 0", "  }"),
			[]string{"web.hcl:4,5: update.max_parallel: 0: want 1 to 1000"}},
		{"max_parallel 0 json", "web.json", jsonBody(`  "update": {"max_parallel": 0}`),
			[]string{"web.json:3,14: update.max_parallel: 0: want 1 to 1000"}},
		{"count too high json", "web.json", jsonBody(`  "count": 5000`), []string{"web.json:3,3: count: 5000: want 0 to 1000"}},

		// The rest of Validate: at the attribute, else its block, else the job.
		{"no command", "web.hcl", "job \"web\" {\n  count = 1\n}\n", []string{"web.hcl:1,1: command: command is required"}},
		{"no command json", "web.json", "{\"job\": {\"web\": {\n  \"count\": 1\n}}}", []string{"web.json:1,2: command: command is required"}},
		{"empty command", "web.hcl", "job \"web\" {\n  command = \" \"\n}\n", []string{"web.hcl:2,3: command: command is required"}},
		{"bad type", "web.hcl", body(`  type = "cron"`), []string{`web.hcl:3,3: type: "cron": want service or batch`}},
		{"bad port label", "web.hcl", body(`  ports = ["HTTP"]`), []string{`web.hcl:3,3: ports: port label "HTTP": use 1 to 32`}},
		{"check without port", "web.hcl", body("  check {", `    type = "http"`, "  }"),
			[]string{"web.hcl:3,3: check: a http check needs port"}},
		{"check interval too short", "web.hcl", body(`  ports = ["p"]`, "  check {", `    type     = "tcp"`, `    port     = "p"`, `    interval = "50ms"`, "  }"),
			[]string{"web.hcl:7,5: check.interval: 50ms: at least 100ms"}},
		{"check failures", "web.hcl", body("  check {", `    type     = "exec"`, `    command  = ["true"]`, `    failures = -1`, "  }"),
			[]string{"web.hcl:6,5: check.failures: -1: want 1 to 100"}},
		{"check without port json", "web.json", jsonBody(`  "check": {"type": "http"}`),
			[]string{"web.json:3,3: check: a http check needs port"}},
		{"restart delays", "web.hcl", body("  restart {", `    delay     = "2s"`, `    max_delay = "1s"`, "  }"),
			[]string{"web.hcl:5,5: restart.max_delay: 1s is shorter than restart.delay 2s"}},
		{"resources", "web.hcl", body("  resources {", "    cpu_millicores = -1", "  }"),
			[]string{"web.hcl:4,5: resources.cpu_millicores: -1: want 0 to 1048576"}},
		{"deadline absent", "web.hcl", body("  update {", `    min_healthy_time = "10m"`, "  }"),
			[]string{"web.hcl:3,3: update.healthy_deadline: healthy_deadline 5m0s must be longer than min_healthy_time 10m0s"}},
		{"update order", "web.hcl", body(`  update { order = "random" }`), []string{`web.hcl:3,12: update.order: order "random": want stop_first or start_first`}},

		// Every problem, in the order of the file.
		{"several", "web.hcl", "job \"Web\" {\n  count = 5000\n  colour = \"red\"\n  update {\n    max_parallel = 0\n    healthy_deadline = \"soon\"\n  }\n}\n",
			[]string{
				"web.hcl:1,1: command: command is required",
				`web.hcl:1,5: name: job name "Web" is not a DNS label`,
				"web.hcl:2,3: count: 5000: want 0 to 1000",
				"web.hcl:3,3: colour: Unsupported argument",
				"web.hcl:5,5: update.max_parallel: 0: want 1 to 1000",
				`web.hcl:6,5: update.healthy_deadline: duration "soon"`,
			}},
		{"several json", "web.json", "{\"job\": {\"web\": {\n  \"count\": -2,\n  \"update\": {\"max_parallel\": 0, \"min_healthy_time\": \"1 s\"}\n}}}",
			[]string{
				"web.json:1,2: command: command is required",
				"web.json:2,3: count: -2: want 0 to 1000",
				"web.json:3,14: update.max_parallel: 0: want 1 to 1000",
				`web.json:3,33: update.min_healthy_time: duration "1 s"`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := Parse(tc.file, []byte(tc.src), nil)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %+v, error %v; want an *Error", j, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) || len(e.Problems) != len(lines) {
				t.Fatalf("got %d problems:\n%v\nwant %d:\n%s", len(e.Problems), err, len(tc.want), strings.Join(tc.want, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("problem %d:\ngot  %s\nwant %s...", i, lines[i], w)
				}
			}
		})
	}
}

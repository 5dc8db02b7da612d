# An HTTP service: three instances of python3's http.server, each on the
# port the agent picks for the label "http" and passes as MO_PORT_HTTP.
# The agent does not expand args, so sh does ("$MO_PORT_HTTP" without
# braces is literal in HCL). web.json is the same job in JSON.
job "web" {
  count   = 3
  command = "sh"
  args    = ["-c", "exec python3 -m http.server \"$MO_PORT_HTTP\" --bind 127.0.0.1"]
  ports   = ["http"]

  check {
    type     = "http"
    port     = "http"
    path     = "/"
    interval = "1s"
  }

  update {
    max_parallel     = 1
    min_healthy_time = "3s"
    healthy_deadline = "1m"
    auto_revert      = true
  }
}

package api

// RestartingRequest is the body of POST /nodes/{id}/restarting, sent by an
// agent just before it exits on SIGTERM while keeping its workloads running
// for the next agent on its data dir to adopt. GraceMS is how long, in
// milliseconds, the agent's workloads wait for that next agent: the leader
// keeps the node's workloads where they are for that long (the node is
// restarting, not offline) and treats the node as usual once it has
// registered again (POST /nodes) or the grace has run out.
type RestartingRequest struct {
	GraceMS int64 `json:"grace_ms"`
}

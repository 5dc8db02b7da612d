package api

// Query parameters of GET /workloads/{id}/logs (scheduler and agent) beyond
// tail and follow.
const (
	// ParamFrames asks for the followed log as LogFrame JSON lines.
	ParamFrames = "frames"
	// ParamSince resumes a followed log at a LogFrame.Next (frames only).
	ParamSince = "since"
	// ParamLogGeneration names the instance a resumed follow continues; when
	// another instance runs by now, the answer is a single end frame.
	ParamLogGeneration = "generation"
)

// LogFrame is one JSON line of a followed log in frames form
// (GET /workloads/{id}/logs?follow=true&frames=true). Positions count the
// bytes the instance has written, so a client that lost its stream (a replica
// went away) resumes exactly where it was with since=Next, without gaps or
// repeats.
type LogFrame struct {
	Generation uint64 `json:"generation,omitempty"` // the instance followed; in the first frame
	Data       []byte `json:"data,omitempty"`       // output (base64 in JSON)
	Lost       int64  `json:"lost,omitempty"`       // bytes dropped by the log cap before they could be sent
	Next       int64  `json:"next"`                 // the position after this frame
	End        bool   `json:"end,omitempty"`        // the instance has ended: nothing more comes
}

// Package fsm owns the replicated desired state: nodes, workloads, the
// recovery queue and each replica's HTTP address. Apply is pure and
// deterministic: times and IDs travel inside the commands, and nothing here
// touches the clock, the network or the disk. Snapshot and Restore use the
// versioned state-file JSON.
package fsm

package cluster

import (
	"path/filepath"

	"github.com/micro-orchestrator/mo/internal/atomicfile"
)

// StateFileName is the state file's name inside the data dir.
const StateFileName = "orchestrator_state.json"

// saveStateFile writes the state-file JSON atomically into the data dir.
func (r *Replica) saveStateFile() error {
	b, err := r.fsm.Export()
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(r.cfg.DataDir, StateFileName), b)
}

package cluster

import (
	"os"
	"path/filepath"
)

// StateFileName is the state file's name inside the data dir.
const StateFileName = "orchestrator_state.json"

// saveStateFile writes the state-file JSON atomically into the data dir.
func (r *Replica) saveStateFile() error {
	b, err := r.fsm.Export()
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(r.cfg.DataDir, StateFileName), b)
}

// WriteFileAtomic writes b to path through a temp file in the same folder,
// fsynced and renamed into place, with mode 0600.
func WriteFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

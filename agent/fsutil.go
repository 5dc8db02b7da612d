package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Modes of everything the agent creates in its data dir.
const (
	dirMode  os.FileMode = 0o700
	fileMode os.FileMode = 0o600
)

// ensureDir creates dir (and parents) with mode 0700 and tightens an existing
// dir to 0700.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if fi.Mode().Perm() != dirMode {
		return os.Chmod(dir, dirMode)
	}
	return nil
}

// prepareDataDir creates dir with mode 0700 if needed. An existing dir is
// left as it is (it may be shared, like /tmp); loose reports whether other
// users can enter it, for a warning. Everything the agent puts inside is
// 0700 or 0600 anyway.
func prepareDataDir(dir string) (loose bool, err error) {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return false, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dir)
	}
	return fi.Mode().Perm()&0o077 != 0, nil
}

// lockDataDir takes an exclusive flock on <dir>/agent.lock so that two agents
// never share a data dir (each would kill the other's workloads at startup).
// The lock is released by the returned function or when the process dies.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "agent.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another agent (%s is locked)", dir, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}

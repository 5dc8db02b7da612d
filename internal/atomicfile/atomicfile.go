// Package atomicfile writes files so that readers see the old or the new
// content, never a mix, even across a crash. Replicas use it for the state
// file, the CLI for backups and certificates, and agents for their own
// small records.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Write replaces path with data, mode 0600: temp file in the same folder,
// fsync, rename, fsync of the folder.
func Write(path string, data []byte) error { return WriteMode(path, data, 0o600) }

// WriteMode is Write with the given file mode (whatever the umask).
func WriteMode(path string, data []byte, mode os.FileMode) error {
	tmp, err := WriteTemp(path, data, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteTemp writes data, fsynced and with mode, to a new temporary file
// beside path and returns its name, for a caller that renames several files
// into place only once all are written.
func WriteTemp(path string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	if err := fill(f, data, mode); err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// Create writes data with mode to path, which must not exist yet (the error
// then says so), fsynced, with the folder fsynced too.
func Create(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; pass --force to overwrite it", path)
		}
		return err
	}
	if err := fill(f, data, mode); err != nil {
		_ = os.Remove(path)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// fill sets f's mode, writes data, fsyncs and closes it; f is closed
// whatever happens.
func fill(f *os.File, data []byte, mode os.FileMode) (err error) {
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// SyncDir makes a rename in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

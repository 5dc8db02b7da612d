package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// refuseOverwrite is an error when path exists, unless force is set.
func refuseOverwrite(path string, force bool) error {
	_, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case force:
		return nil
	}
	return fmt.Errorf("%s exists; pass --force to overwrite it", escapeText(path))
}

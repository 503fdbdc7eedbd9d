package monitor

import (
	"os"
	"path/filepath"
	"strings"
)

// ReadState reads the state a previous run saved with WriteState (watch
// --state); a missing or unreadable file is OK, as on the first run.
func ReadState(path string) Status {
	b, err := os.ReadFile(path)
	if err != nil {
		return OK
	}
	switch strings.TrimSpace(string(b)) {
	case "WARNING":
		return Warning
	case "CRITICAL":
		return Critical
	}
	return OK
}

// WriteState saves the state as one line ("CRITICAL\n") through a
// temporary file in the same directory and a rename, so a reader never
// sees half a file.
func WriteState(path string, st Status) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(st.String() + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

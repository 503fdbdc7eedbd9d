package rebuild

import (
	"io/fs"
	"syscall"
)

func inodeOfInfo(fi fs.FileInfo) (uint64, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino, true
	}
	return 0, false
}

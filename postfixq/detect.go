package postfixq

import (
	"os"
	"path/filepath"
)

// IsPostfixQueue reports whether root looks like a Postfix queue_directory:
// it has a deferred/ directory and at least one of the other message queues
// (global/mail_queue.h). Symbolic links do not count.
func IsPostfixQueue(root string) bool {
	isDir := func(name string) bool {
		fi, err := os.Lstat(filepath.Join(root, name))
		return err == nil && fi.IsDir()
	}
	if !isDir("deferred") {
		return false
	}
	for _, d := range []string{"incoming", "active", "maildrop", "hold"} {
		if isDir(d) {
			return true
		}
	}
	return false
}

package qmailq

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

// WriteRaw copies a message's mess file — the message exactly as qmail
// stored it, qmail-queue's own Received line included — to w. The file is
// opened without following symbolic links.
func (q *Queue) WriteRaw(w io.Writer, m *queue.Message) error {
	if m.Path == "" {
		return fmt.Errorf("qmailq: message %s has no mess file: %w", m.ID, os.ErrNotExist)
	}
	id, ok := ParseID(m.ID)
	if !ok {
		return fmt.Errorf("qmailq: %q is not a qmail message id", m.ID)
	}
	rel, err := cleanRel(m.Path)
	if err != nil {
		return err
	}
	dir, _ := splitDir(rel)
	dfd, err := q.dirFD(dir)
	if err != nil {
		return &os.PathError{Op: "open", Path: rel, Err: err}
	}
	fd, err := openatRetry(dfd, strconv.FormatUint(id, 10), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("qmailq: %s: not a regular file", rel)
	}
	if st.Size > MaxBodySize {
		// What ReadContent reads at most: a larger mess is refused before
		// a byte is copied (a sparse 10 GB file costs nothing to plant).
		return &CorruptError{Format: pkgName, Type: -1, Path: rel, Offset: MaxBodySize, Err: fmt.Errorf("mess file of %d bytes, larger than %d", st.Size, int64(MaxBodySize))}
	}
	_, err = io.Copy(w, io.LimitReader(f, MaxBodySize))
	return err
}

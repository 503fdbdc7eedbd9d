package queue

import (
	"io/fs"
	"time"
)

// Mutator is the one place every change to a queue goes through. Paths are
// relative to the mutator's root; an implementation must refuse any path that
// leaves the root or crosses a symbolic link, and must never replace an
// existing file on Rename or Link.
//
// The dry-run implementation records each call and changes nothing, so a bug
// in a command cannot write when the user asked for a preview.
type Mutator interface {
	// Rename moves from to to inside the root, failing with fs.ErrExist
	// when to exists.
	Rename(from, to string) error
	// Remove unlinks a file (or an empty directory).
	Remove(path string) error
	// Link makes a hard link, failing with fs.ErrExist when to exists.
	Link(from, to string) error
	// Mkdir creates a directory with exactly this mode and owner (uid or
	// gid -1 leaves that id as created).
	Mkdir(path string, perm fs.FileMode, uid, gid int) error
	// Mkfifo creates a named pipe with exactly this mode and owner.
	Mkfifo(path string, perm fs.FileMode, uid, gid int) error
	// Create writes a new file (O_EXCL), fsyncs it and sets mode and owner.
	Create(path string, data []byte, perm fs.FileMode, uid, gid int) error
	// Chmod sets the permission bits (through an O_NOFOLLOW descriptor).
	Chmod(path string, perm fs.FileMode) error
	// Chown sets owner and group (-1 leaves one unchanged).
	Chown(path string, uid, gid int) error
	// Chtimes sets access and modification times.
	Chtimes(path string, atime, mtime time.Time) error
}

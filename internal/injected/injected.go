// Package injected remembers which messages of a detached queue were
// already copied into a live queue (requeue --into), so that running the
// same command again after a partial failure (a full disk, a kill) skips
// them instead of injecting them a second time.
//
// The record lives in the detached queue's root, as .qsurgeon-injected: it
// is a fact about that queue's files, and it travels with the queue. Postfix
// (postsuper, showq, the queue managers) and qmail-send look only at their
// own directories, never at other files in the queue root. A message is
// identified by its queue ID and inode, so a file that merely reuses the
// name is not taken for one already injected.
package injected

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Name is the file name of the record in the detached queue's root.
const Name = ".qsurgeon-injected"

// Entry is one injected message.
type Entry struct {
	ID    string    `json:"id"`
	Inode uint64    `json:"inode"`
	Into  string    `json:"into"`             // the live queue directory
	NewID string    `json:"new_id,omitempty"` // its name in the live queue
	Time  time.Time `json:"time"`
}

type key struct {
	id  string
	ino uint64
}

// Log is the open record of one detached queue.
type Log struct {
	path string
	mu   sync.Mutex
	seen map[key]Entry
}

// maxLine bounds a line read back.
const maxLine = 64 << 10

// Open reads the record of the queue at root (none yet is fine). A line
// that cannot be read (one cut by a crash) is skipped: at worst that one
// message is injected again, as it would have been without the record.
func Open(root string) (*Log, error) {
	l := &Log{path: filepath.Join(root, Name), seen: map[key]Entry{}}
	f, err := os.OpenFile(l.path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("injected: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("injected: %s: not a regular file", l.path)
	}
	sc := bufio.NewScanner(io.LimitReader(f, 1<<30))
	sc.Buffer(make([]byte, 4096), maxLine)
	for sc.Scan() {
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.ID != "" {
			l.seen[key{e.ID, e.Inode}] = e
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("injected: %s: %w", l.path, err)
	}
	return l, nil
}

// Done returns the record of message id with inode ino when it was
// injected already.
func (l *Log) Done(id string, ino uint64) (Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.seen[key{id, ino}]
	return e, ok
}

// Add records an injected message: one line, appended in one write and
// fsynced, or (on a full disk) nothing at all and an error. The caller
// stops then: a message injected but not recorded would be injected again
// by the next run.
func (l *Log) Add(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return fmt.Errorf("injected: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("injected: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("injected: %s: not a regular file", l.path)
	}
	size := fi.Size()
	if size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err == nil && last[0] != '\n' {
			b = append([]byte{'\n'}, b...)
		}
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Truncate(size)
		return fmt.Errorf("injected: %s: %w", l.path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Truncate(size)
		return fmt.Errorf("injected: %s: %w", l.path, err)
	}
	l.seen[key{e.ID, e.Inode}] = e
	return nil
}

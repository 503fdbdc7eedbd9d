package quarantine

import (
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
)

// DryRun is the Mover of a dry run: it records every change as the step a
// plan would hold for it and changes nothing, so a plan executed through it
// shows what a real run would do. Lstat reads through Queue
// and Dir; a nil Dir is a quarantine directory not created yet, in which
// nothing exists. It is safe for concurrent use.
type DryRun struct {
	Queue, Dir DirReader

	mu  sync.Mutex
	ops []Step
}

var _ Mover = (*DryRun)(nil)

// Ops returns the recorded changes in order.
func (d *DryRun) Ops() []Step {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Step(nil), d.ops...)
}

func (d *DryRun) add(s Step) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ops = append(d.ops, s)
	return nil
}

// Move records the move.
func (d *DryRun) Move(fromRoot Root, from string, toRoot Root, to string) error {
	return d.add(Step{Op: OpMove, Root: fromRoot, Path: from, DestRoot: toRoot, Dest: to})
}

// Mutator returns a recorder for in-tree changes of r.
func (d *DryRun) Mutator(r Root) queue.Mutator { return dryMutator{d: d, r: r} }

// Lstat reads through the real tree.
func (d *DryRun) Lstat(r Root, p string) (fs.FileInfo, error) {
	t := d.Queue
	if r == InDir {
		t = d.Dir
	}
	if t == nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return t.Lstat(p)
}

// Record records each manifest line.
func (d *DryRun) Record(es ...Entry) error {
	for i := range es {
		e := es[i]
		d.add(Step{Op: OpRecord, Payload: &e})
	}
	return nil
}

// dryMutator records in-tree changes of one root as plan lines.
type dryMutator struct {
	d *DryRun
	r Root
}

func (m dryMutator) Rename(from, to string) error {
	return m.d.add(Step{Op: OpMove, Root: m.r, Path: from, DestRoot: m.r, Dest: to})
}
func (m dryMutator) Remove(p string) error {
	return m.d.add(Step{Op: "remove", Path: fmt.Sprintf("%s:%s", m.r, p)})
}
func (m dryMutator) Link(from, to string) error {
	return m.d.add(Step{Op: "link", Path: fmt.Sprintf("%s:%s -> %s:%s", m.r, from, m.r, to)})
}
func (m dryMutator) Mkdir(p string, perm fs.FileMode, uid, gid int) error {
	return m.d.add(Step{Op: OpMkdir, Root: m.r, Path: p, Perm: perm, UID: uid, GID: gid})
}
func (m dryMutator) Mkfifo(p string, perm fs.FileMode, uid, gid int) error {
	return m.d.add(Step{Op: "mkfifo", Path: fmt.Sprintf("%s:%s", m.r, p)})
}
func (m dryMutator) Create(p string, data []byte, perm fs.FileMode, uid, gid int) error {
	return m.d.add(Step{Op: "create", Path: fmt.Sprintf("%s:%s (%d bytes)", m.r, p, len(data))})
}
func (m dryMutator) Chmod(p string, perm fs.FileMode) error {
	return m.d.add(Step{Op: OpChmod, Root: m.r, Path: p, Perm: perm})
}
func (m dryMutator) Chown(p string, uid, gid int) error {
	return m.d.add(Step{Op: OpChown, Root: m.r, Path: p, UID: uid, GID: gid})
}
func (m dryMutator) Chtimes(p string, atime, mtime time.Time) error {
	return m.d.add(Step{Op: OpChtimes, Root: m.r, Path: p, Atime: atime, Mtime: mtime})
}

package safefs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Op is one recorded Mutator call.
type Op struct {
	// Op is the method name in lower case: rename, remove, link, mkdir,
	// mkfifo, create, chmod, chown, chtimes.
	Op   string
	Path string
	// Dest is the second path of rename and link.
	Dest string
	// Perm is set for mkdir, mkfifo, create and chmod.
	Perm fs.FileMode
	// UID and GID are set for mkdir, mkfifo, create and chown (-1: keep).
	UID, GID int
	// Size is the data length of create.
	Size int
	// Atime and Mtime are set for chtimes.
	Atime, Mtime time.Time
}

// String renders the op as one line of a plan, e.g.
// "rename deferred/A/A1B2C3 -> hold/A1B2C3".
func (o Op) String() string {
	var b strings.Builder
	b.WriteString(o.Op)
	b.WriteString(" ")
	b.WriteString(strconvQuote(o.Path))
	switch o.Op {
	case "rename", "link":
		fmt.Fprintf(&b, " -> %s", strconvQuote(o.Dest))
	case "mkdir", "mkfifo", "create":
		fmt.Fprintf(&b, " mode %04o owner %d:%d", unixMode(o.Perm), o.UID, o.GID)
		if o.Op == "create" {
			fmt.Fprintf(&b, " size %d", o.Size)
		}
	case "chmod":
		fmt.Fprintf(&b, " %04o", unixMode(o.Perm))
	case "chown":
		fmt.Fprintf(&b, " %d:%d", o.UID, o.GID)
	case "chtimes":
		fmt.Fprintf(&b, " atime %s mtime %s", fmtTime(o.Atime), fmtTime(o.Mtime))
	}
	return b.String()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "unchanged"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// DryRun is a queue.Mutator that records every call and changes nothing.
// Paths are checked for syntax (ErrBadPath) exactly as FS does, so a dry run
// reports the same bad paths a real run would refuse. Lstat knows the paths
// the run created (they exist, with inode 0: they have none yet), so a
// caller that looks at what it just made need not know it is in a dry run;
// anything else reads through Base when it is set, so callers re-verify
// identity during a dry run too.
// It is safe for concurrent use.
type DryRun struct {
	Base *FS

	mu   sync.Mutex
	ops  []Op
	made map[string]fs.FileMode // created by the run: the type and mode
}

var _ queue.Mutator = (*DryRun)(nil)
var _ queue.Mutator = (*FS)(nil)

// NewDryRun returns a recorder; base (may be nil) serves Lstat.
func NewDryRun(base *FS) *DryRun { return &DryRun{Base: base} }

// Ops returns a copy of the calls recorded so far, in call order.
func (d *DryRun) Ops() []Op {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Op(nil), d.ops...)
}

func (d *DryRun) root() string {
	if d.Base != nil {
		return d.Base.root
	}
	return "(dry run)"
}

func (d *DryRun) rec(o Op) error {
	if err := checkPath(o.Path, false); err != nil {
		return &Error{Op: o.Op, Root: d.root(), Path: o.Path, Dest: o.Dest, Err: err}
	}
	if o.Dest != "" || o.Op == "rename" || o.Op == "link" {
		if err := checkPath(o.Dest, false); err != nil {
			return &Error{Op: o.Op, Root: d.root(), Path: o.Path, Dest: o.Dest, Err: err}
		}
	}
	d.mu.Lock()
	d.ops = append(d.ops, o)
	d.overlay(o)
	d.mu.Unlock()
	return nil
}

// overlay notes what o changes in the tree Lstat shows.
func (d *DryRun) overlay(o Op) {
	if d.made == nil {
		d.made = map[string]fs.FileMode{}
	}
	put := func(p string, m fs.FileMode) { d.made[p] = m }
	switch o.Op {
	case "mkdir":
		put(o.Path, fs.ModeDir|o.Perm)
	case "mkfifo":
		put(o.Path, fs.ModeNamedPipe|o.Perm)
	case "create":
		put(o.Path, o.Perm)
	case "link":
		put(o.Dest, d.modeLocked(o.Path))
	case "rename":
		put(o.Dest, d.modeLocked(o.Path))
		delete(d.made, o.Path)
	case "remove":
		delete(d.made, o.Path)
	}
}

// modeLocked is the mode of p as the run left it (0 when unknown).
func (d *DryRun) modeLocked(p string) fs.FileMode {
	if m, ok := d.made[p]; ok {
		return m
	}
	if d.Base != nil {
		if fi, err := d.Base.Lstat(p); err == nil {
			return fi.Mode()
		}
	}
	return 0
}

// Rename records a rename.
func (d *DryRun) Rename(from, to string) error { return d.rec(Op{Op: "rename", Path: from, Dest: to}) }

// Remove records a remove.
func (d *DryRun) Remove(p string) error { return d.rec(Op{Op: "remove", Path: p}) }

// RemoveTwin records the remove of a second name (FS.RemoveTwin).
func (d *DryRun) RemoveTwin(p, keep string) error { return d.rec(Op{Op: "remove", Path: p}) }

// Link records a link.
func (d *DryRun) Link(from, to string) error { return d.rec(Op{Op: "link", Path: from, Dest: to}) }

// Mkdir records a mkdir.
func (d *DryRun) Mkdir(p string, perm fs.FileMode, uid, gid int) error {
	return d.rec(Op{Op: "mkdir", Path: p, Perm: perm, UID: uid, GID: gid})
}

// Mkfifo records a mkfifo.
func (d *DryRun) Mkfifo(p string, perm fs.FileMode, uid, gid int) error {
	return d.rec(Op{Op: "mkfifo", Path: p, Perm: perm, UID: uid, GID: gid})
}

// Create records a create (the data itself is not kept).
func (d *DryRun) Create(p string, data []byte, perm fs.FileMode, uid, gid int) error {
	return d.rec(Op{Op: "create", Path: p, Perm: perm, UID: uid, GID: gid, Size: len(data)})
}

// Chmod records a chmod.
func (d *DryRun) Chmod(p string, perm fs.FileMode) error {
	return d.rec(Op{Op: "chmod", Path: p, Perm: perm})
}

// Chown records a chown.
func (d *DryRun) Chown(p string, uid, gid int) error {
	return d.rec(Op{Op: "chown", Path: p, UID: uid, GID: gid})
}

// Chtimes records a chtimes.
func (d *DryRun) Chtimes(p string, atime, mtime time.Time) error {
	return d.rec(Op{Op: "chtimes", Path: p, Atime: atime, Mtime: mtime})
}

// Lstat describes a path the run created (see DryRun); anything else reads
// through Base, and without Base fails with fs.ErrNotExist.
func (d *DryRun) Lstat(p string) (fs.FileInfo, error) {
	d.mu.Lock()
	m, made := d.made[p]
	d.mu.Unlock()
	switch {
	case made:
		return &fileInfo{name: path.Base(p), st: syscall.Stat_t{Mode: unixType(m) | unixMode(m)}}, nil
	case d.Base == nil:
		return nil, &Error{Op: "lstat", Root: d.root(), Path: p, Err: fs.ErrNotExist}
	}
	return d.Base.Lstat(p)
}

// unixType is the S_IFMT bits of a Go file mode's type.
func unixType(m fs.FileMode) uint32 {
	switch {
	case m.IsDir():
		return unix.S_IFDIR
	case m&fs.ModeNamedPipe != 0:
		return unix.S_IFIFO
	case m&fs.ModeSymlink != 0:
		return unix.S_IFLNK
	}
	return unix.S_IFREG
}

// ErrInjected is the error Faulty returns from the call it was told to fail.
var ErrInjected = errors.New("injected fault")

// Faulty wraps a Mutator and fails the FailAt-th mutating call (1-based) and
// every call after it, performing nothing, as if the process had died there.
// FailAt <= 0 never fails, which lets a test count the steps of an action
// first (Calls). Lstat is passed through uncounted when the wrapped Mutator
// has one. It is safe for concurrent use.
type Faulty struct {
	M      queue.Mutator
	FailAt int

	mu    sync.Mutex
	calls int
	done  []Op
}

var _ queue.Mutator = (*Faulty)(nil)

// NewFaulty wraps m so that call number failAt fails.
func NewFaulty(m queue.Mutator, failAt int) *Faulty { return &Faulty{M: m, FailAt: failAt} }

// Calls returns how many mutating calls were attempted, the failed ones
// included.
func (f *Faulty) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Done returns the calls that were passed through to the wrapped Mutator
// (whatever their result), in order.
func (f *Faulty) Done() []Op {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Op(nil), f.done...)
}

func (f *Faulty) step(o Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.FailAt > 0 && f.calls >= f.FailAt {
		return &Error{Op: o.Op, Root: "(fault injector)", Path: o.Path, Dest: o.Dest,
			Err: fmt.Errorf("%w at call %d", ErrInjected, f.calls)}
	}
	f.done = append(f.done, o)
	return nil
}

// Rename passes through unless this call is to fail.
func (f *Faulty) Rename(from, to string) error {
	if err := f.step(Op{Op: "rename", Path: from, Dest: to}); err != nil {
		return err
	}
	return f.M.Rename(from, to)
}

// Remove passes through unless this call is to fail.
func (f *Faulty) Remove(p string) error {
	if err := f.step(Op{Op: "remove", Path: p}); err != nil {
		return err
	}
	return f.M.Remove(p)
}

// RemoveTwin passes through unless this call is to fail; a wrapped
// mutator without it refuses, as rebuild does.
func (f *Faulty) RemoveTwin(p, keep string) error {
	if err := f.step(Op{Op: "remove", Path: p}); err != nil {
		return err
	}
	t, ok := f.M.(interface{ RemoveTwin(p, keep string) error })
	if !ok {
		return fmt.Errorf("safefs: %T cannot remove a second name safely", f.M)
	}
	return t.RemoveTwin(p, keep)
}

// Link passes through unless this call is to fail.
func (f *Faulty) Link(from, to string) error {
	if err := f.step(Op{Op: "link", Path: from, Dest: to}); err != nil {
		return err
	}
	return f.M.Link(from, to)
}

// Mkdir passes through unless this call is to fail.
func (f *Faulty) Mkdir(p string, perm fs.FileMode, uid, gid int) error {
	if err := f.step(Op{Op: "mkdir", Path: p, Perm: perm, UID: uid, GID: gid}); err != nil {
		return err
	}
	return f.M.Mkdir(p, perm, uid, gid)
}

// Mkfifo passes through unless this call is to fail.
func (f *Faulty) Mkfifo(p string, perm fs.FileMode, uid, gid int) error {
	if err := f.step(Op{Op: "mkfifo", Path: p, Perm: perm, UID: uid, GID: gid}); err != nil {
		return err
	}
	return f.M.Mkfifo(p, perm, uid, gid)
}

// Create passes through unless this call is to fail.
func (f *Faulty) Create(p string, data []byte, perm fs.FileMode, uid, gid int) error {
	if err := f.step(Op{Op: "create", Path: p, Perm: perm, UID: uid, GID: gid, Size: len(data)}); err != nil {
		return err
	}
	return f.M.Create(p, data, perm, uid, gid)
}

// Chmod passes through unless this call is to fail.
func (f *Faulty) Chmod(p string, perm fs.FileMode) error {
	if err := f.step(Op{Op: "chmod", Path: p, Perm: perm}); err != nil {
		return err
	}
	return f.M.Chmod(p, perm)
}

// Chown passes through unless this call is to fail.
func (f *Faulty) Chown(p string, uid, gid int) error {
	if err := f.step(Op{Op: "chown", Path: p, UID: uid, GID: gid}); err != nil {
		return err
	}
	return f.M.Chown(p, uid, gid)
}

// Chtimes passes through unless this call is to fail.
func (f *Faulty) Chtimes(p string, atime, mtime time.Time) error {
	if err := f.step(Op{Op: "chtimes", Path: p, Atime: atime, Mtime: mtime}); err != nil {
		return err
	}
	return f.M.Chtimes(p, atime, mtime)
}

// Lstat passes through to the wrapped Mutator's Lstat, uncounted.
func (f *Faulty) Lstat(p string) (fs.FileInfo, error) {
	if l, ok := f.M.(interface {
		Lstat(string) (fs.FileInfo, error)
	}); ok {
		return l.Lstat(p)
	}
	return nil, &Error{Op: "lstat", Root: "(fault injector)", Path: p, Err: errors.ErrUnsupported}
}

package quarantine

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

const nofollow = unix.O_NOFOLLOW

// Root says which tree a step's path is relative to.
type Root = queue.Root

const (
	// InQueue: the queue root (for a restore, the queue restored into).
	InQueue = queue.InQueue
	// InDir: the quarantine directory.
	InDir = queue.InDir
)

// Step kinds.
const (
	OpRecord  = "record"  // append the *Entry in Payload to the manifest
	OpMkdir   = "mkdir"   // create directory Path (an existing one is fine)
	OpMove    = "move"    // rename Path (under Root) to Dest (under DestRoot), same inode (Inode)
	OpChown   = "chown"   // set UID, GID of Path
	OpChmod   = "chmod"   // set Perm of Path
	OpChtimes = "chtimes" // set Atime, Mtime of Path (zero: unchanged)
)

// Step is one change of a plan (queue.Step, every path under its Root). A
// plan is printed for --dry-run and then executed step by step; every step
// can be executed again after a crash (a move whose source is gone and
// whose destination holds the expected inode counts as done).
type Step = queue.Step

// entry returns the manifest entry of a record step.
func entry(s Step) *Entry {
	e, _ := s.Payload.(*Entry)
	return e
}

// Plan is what Quarantine or Restore will do for one message.
type Plan struct {
	queue.Plan
	// Entry is the manifest entry as it will be recorded at the end.
	Entry Entry
	// NewID is the message's name after a restore.
	NewID string
}

// Mover carries out a plan's steps. Disk is the real one; tests wrap it to
// inject faults, and a dry run simply does not execute the plan.
type Mover interface {
	// Move renames from (under fromRoot) to to (under toRoot) without
	// replacing anything, keeping the inode.
	Move(fromRoot Root, from string, toRoot Root, to string) error
	// Mutator returns the queue.Mutator for in-tree changes of r.
	Mutator(r Root) queue.Mutator
	// Lstat describes a path without following a symbolic link.
	Lstat(r Root, p string) (fs.FileInfo, error)
	// Record appends the entries to the manifest, durably, in one write.
	Record(es ...Entry) error
}

// Disk is the Mover acting on the file system: Queue is the queue root,
// Dir the quarantine directory (both opened with safefs, so nothing below
// either root is reached through a symbolic link).
type Disk struct {
	Queue *safefs.FS
	Dir   *safefs.FS
}

func (d *Disk) fs(r Root) *safefs.FS {
	if r == InDir {
		return d.Dir
	}
	return d.Queue
}

// Move uses safefs.MoveBetween (renameat2 RENAME_NOREPLACE); on different
// file systems it fails with safefs.ErrCrossDevice and changes nothing.
func (d *Disk) Move(fromRoot Root, from string, toRoot Root, to string) error {
	return safefs.MoveBetween(d.fs(fromRoot), from, d.fs(toRoot), to)
}

// Mutator returns the safefs.FS of r.
func (d *Disk) Mutator(r Root) queue.Mutator { return d.fs(r) }

// Lstat describes p under r.
func (d *Disk) Lstat(r Root, p string) (fs.FileInfo, error) { return d.fs(r).Lstat(p) }

// Record appends the entries to DIR/manifest.jsonl and fsyncs it.
func (d *Disk) Record(es ...Entry) error {
	return appendManifest(filepath.Join(d.Dir.Root(), ManifestName), es...)
}

// StepError is a failed step of a plan.
type StepError = queue.StepError

// Errors a caller can test with errors.Is.
var (
	// ErrInside: the quarantine directory is inside the queue (or the queue
	// inside it).
	ErrInside = errors.New("the quarantine directory must be outside the queue directory")
	// ErrChanged: a file is not the one the message was read from.
	ErrChanged = queue.ErrChanged
	// ErrMissing: a part recorded in the manifest is neither in the
	// quarantine directory nor in place in the queue.
	ErrMissing = errors.New("part is neither in the quarantine directory nor in the queue")
	// ErrOccupied: the place a part is restored to holds another file.
	ErrOccupied = errors.New("destination holds another file")
	// ErrState: the entry is in a state the operation does not accept.
	ErrState = errors.New("entry is in the wrong state")
	// ErrNotRegular: a message part is not a regular file.
	ErrNotRegular = queue.ErrNotRegular
)

// Execute carries out the plan's steps in order through m and returns the
// final entry. It stops at the first failing step: every step done so far
// stays done, and running a fresh plan (or Restore) later continues from
// there.
func (p *Plan) Execute(m Mover) (Entry, error) {
	return p.Entry, p.run(m, p.Steps)
}

func (p *Plan) run(m Mover, steps []Step) error {
	for _, s := range steps {
		if err := execStep(m, s); err != nil {
			return &StepError{Format: "quarantine", Key: p.Entry.Key, ID: p.Entry.ID, Step: s, Err: err}
		}
	}
	return nil
}

// ExecuteBatch executes many plans (of one kind, each from PlanQuarantine
// or PlanRestore) with two manifest writes in all instead of two per
// message: every plan's opening record is written (and fsynced) before any
// file moves, then each plan's moves run, then the closing records of the
// plans that completed are written together. A fsync per message would
// cost hours on a million-message queue.
//
// errs[i] is plans[i]'s failure (nil when it completed). A plan that
// failed after its opening record stays "quarantining" or "restoring" in
// the manifest, which Restore resumes. When the opening write itself
// fails, nothing is moved and every plan reports that error.
func ExecuteBatch(plans []*Plan, m Mover, progress queue.Progress) (errs []error) {
	errs = make([]error, len(plans))
	var opening []Entry
	for i, p := range plans {
		if !p.framed() {
			errs[i] = fmt.Errorf("quarantine: %s: plan does not open and close with a manifest record", p.Entry.ID)
			continue
		}
		opening = append(opening, *entry(p.Steps[0]))
	}
	if err := m.Record(opening...); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = &StepError{Format: "quarantine", Key: plans[i].Entry.Key, ID: plans[i].Entry.ID, Step: plans[i].Steps[0], Err: err}
			}
		}
		return errs
	}
	var closing []Entry
	var closers []int
	for i, p := range plans {
		if errs[i] == nil {
			if errs[i] = p.run(m, p.Steps[1:len(p.Steps)-1]); errs[i] == nil {
				closing = append(closing, *entry(p.Steps[len(p.Steps)-1]))
				closers = append(closers, i)
			}
		}
		if progress != nil {
			progress(int64(i+1), int64(len(plans)))
		}
	}
	if err := m.Record(closing...); err != nil {
		for _, i := range closers {
			p := plans[i]
			errs[i] = &StepError{Format: "quarantine", Key: p.Entry.Key, ID: p.Entry.ID, Step: p.Steps[len(p.Steps)-1], Err: err}
		}
	}
	return errs
}

// framed reports whether the plan opens and closes with a record step.
func (p *Plan) framed() bool {
	n := len(p.Steps)
	return n >= 2 && p.Steps[0].Op == OpRecord && p.Steps[n-1].Op == OpRecord
}

func execStep(m Mover, s Step) error {
	switch s.Op {
	case OpRecord:
		return m.Record(*entry(s))
	case OpMkdir, OpChown, OpChmod, OpChtimes:
		_, err := s.Apply(m.Mutator(s.Root))
		if s.Op == OpMkdir && errors.Is(err, fs.ErrExist) {
			if fi, lerr := m.Lstat(s.Root, s.Path); lerr == nil && fi.IsDir() {
				return nil
			}
		}
		return err
	case OpMove:
		fi, err := m.Lstat(s.Root, s.Path)
		if errors.Is(err, fs.ErrNotExist) {
			// Done before a crash?
			if dfi, derr := m.Lstat(s.DestRoot, s.Dest); derr == nil && inode(dfi) == s.Inode {
				return nil
			}
			return fmt.Errorf("%w: %w", ErrMissing, err)
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return ErrNotRegular
		}
		if s.Inode != 0 && inode(fi) != s.Inode {
			return fmt.Errorf("%w: inode %d, expected %d", ErrChanged, inode(fi), s.Inode)
		}
		if s.Root == s.DestRoot {
			return m.Mutator(s.Root).Rename(s.Path, s.Dest)
		}
		return m.Move(s.Root, s.Path, s.DestRoot, s.Dest)
	}
	return fmt.Errorf("unknown step %q", s.Op)
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func statOf(fi fs.FileInfo) *syscall.Stat_t {
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return &syscall.Stat_t{}
	}
	return st
}

// unixMode converts Go's FileMode permission and special bits to the Unix
// numbering.
var unixMode = queue.UnixMode

// goMode is the inverse of unixMode.
func goMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// CheckOutside refuses a quarantine directory that is inside the queue
// root, or a queue root inside the quarantine directory (symbolic links
// resolved on both sides), and one on a different file system (a move
// would have to be a copy: safefs.ErrCrossDevice). A directory that does
// not exist yet is judged by the place it would be created in.
func CheckOutside(queueRoot, dir string) error {
	q, err := filepath.EvalSymlinks(queueRoot)
	if err != nil {
		return err
	}
	d, existing, err := resolve(dir)
	if err != nil {
		return err
	}
	if q, err = filepath.Abs(q); err != nil {
		return err
	}
	if d, err = filepath.Abs(d); err != nil {
		return err
	}
	if within(d, q) || within(q, d) {
		return fmt.Errorf("%w: %s and %s", ErrInside, dir, queueRoot)
	}
	var qs, ds unix.Stat_t
	if err := unix.Stat(q, &qs); err != nil {
		return err
	}
	if err := unix.Stat(existing, &ds); err != nil {
		return err
	}
	if qs.Dev != ds.Dev {
		return fmt.Errorf("%w (%s is not on the file system of %s)", safefs.ErrCrossDevice, dir, queueRoot)
	}
	return nil
}

// resolve follows the symbolic links of p's nearest existing ancestor
// (p itself when it exists) and appends the rest; existing is that
// ancestor, resolved.
func resolve(p string) (resolved, existing string, err error) {
	rest := ""
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(r, rest), r, nil
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, fs.ErrNotExist) || parent == p {
			return "", "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// within reports whether p is base or below it.
func within(p, base string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && (rel == "." || (rel != ".." && !strings.HasPrefix(rel, "../")))
}

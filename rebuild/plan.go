package rebuild

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

// Step is one change of a Plan (queue.Step): paths are relative to
// Plan.Base. Besides the queue.Mutator calls, Op may be "rmdir" (remove of
// a directory that is left alone if it is not empty), "unlink" (remove the
// name Path only when it is a second hard link of Dest, which stays) or
// "carry" (copy one message into a new queue, see PlanCarry; Payload is
// its *carry).
type Step = queue.Step

// Plan is a list of changes built read-only, to be shown and then executed
// once (restic prune's plan → print → execute).
type Plan struct {
	// Base (the queue's parent, or the common ancestor of the queue(s)
	// and lost+found) is where the mutator given to Execute must be
	// rooted (safefs.Open(Base)); Title says what the plan does.
	queue.Plan
	// LostFound is the directory (absolute) fragments are moved into; ""
	// when nothing goes there.
	LostFound string
	// Skipped lists problems the plan does not fix, with the reason.
	Skipped []Problem
	// Locks are the queue roots whose lock/sendmutex Execute takes (and
	// holds until it returns), refusing when qmail-send holds it.
	Locks []string

	carried  map[uint64]uint64
	executed bool
}

// String renders the plan: a header, then one numbered line per step.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", p.Title)
	fmt.Fprintf(&b, "paths relative to %s\n", p.Base)
	if p.LostFound != "" {
		fmt.Fprintf(&b, "lost+found: %s\n", p.LostFound)
	}
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, s)
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(&b, "skip  %s\n", s)
	}
	if len(p.Steps) == 0 {
		b.WriteString("nothing to do\n")
	}
	return b.String()
}

// ErrExecuted is returned when a Plan is executed a second time.
var ErrExecuted = errors.New("rebuild: plan already executed; build a new one")

// StepError says which step failed.
type StepError = queue.StepError

// Execute carries out the steps in order through m, which must be rooted
// at p.Base, and stops at the first failure. It first takes
// lock/sendmutex of every queue in p.Locks (failing with
// qmailq.ErrSendRunning when qmail-send holds it) and keeps it until it
// returns. A plan runs once.
func (p *Plan) Execute(m queue.Mutator, progress queue.Progress) error {
	if p.executed {
		return ErrExecuted
	}
	p.executed = true
	if r, ok := m.(interface{ Root() string }); ok {
		if a, err := filepath.Abs(r.Root()); err == nil && filepath.Clean(a) != filepath.Clean(p.Base) {
			return fmt.Errorf("rebuild: the mutator is rooted at %s, the plan at %s", a, p.Base)
		}
	}
	start := 0
	for _, root := range p.Locks {
		unlock, err := qmailq.LockSend(root)
		if errors.Is(err, fs.ErrNotExist) {
			// No sendmutex: qmail-send cannot have started on this queue
			// unless it is unlinked under it; the trigger FIFO tells.
			if triggerHasReader(root) {
				return fmt.Errorf("rebuild: %s: lock/sendmutex is missing but lock/trigger has a reader: %w", root, qmailq.ErrSendRunning)
			}
			// Run the steps that recreate it, then lock.
			rel := relTo(p.Base, filepath.Join(root, "lock/sendmutex"))
			for i, s := range p.Steps {
				if s.Path == rel && s.Op == "create" {
					for j := start; j <= i; j++ {
						if err := p.do(m, j); err != nil {
							return err
						}
						if progress != nil {
							progress(int64(j+1), int64(len(p.Steps)))
						}
					}
					start = i + 1
					break
				}
			}
			unlock, err = qmailq.LockSend(root)
			if err != nil && errors.Is(err, fs.ErrNotExist) && madeThrough(m, rel) {
				// m created it but the disk has none: m writes nothing
				// (a dry run), so there is nothing to lock against.
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("rebuild: %s: %w", root, err)
		}
		defer unlock()
	}
	for i := start; i < len(p.Steps); i++ {
		if err := p.do(m, i); err != nil {
			return err
		}
		if progress != nil {
			progress(int64(i+1), int64(len(p.Steps)))
		}
	}
	return nil
}

// madeThrough reports whether m says rel exists (through its Lstat).
func madeThrough(m queue.Mutator, rel string) bool {
	ls, ok := m.(interface {
		Lstat(string) (fs.FileInfo, error)
	})
	if !ok {
		return false
	}
	_, err := ls.Lstat(rel)
	return err == nil
}

func (p *Plan) do(m queue.Mutator, i int) error {
	s := p.Steps[i]
	handled, err := s.Apply(m)
	switch {
	case handled:
	case s.Op == "unlink":
		err = unlinkTwin(m, s.Path, s.Dest)
	case s.Op == "rmdir":
		err = m.Remove(s.Path)
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			err = nil // something unexpected is inside: leave it, check reports it
		}
	default:
		if c, ok := s.Payload.(*carry); ok {
			err = c.run(m)
		} else {
			err = fmt.Errorf("unknown step %q", s.Op)
		}
	}
	if err != nil {
		return &StepError{Format: "rebuild", N: i + 1, Total: len(p.Steps), Step: s, Err: err}
	}
	return nil
}

// triggerHasReader: opening a FIFO for writing without blocking fails with
// ENXIO when nobody has it open for reading (POSIX); qmail-send keeps
// lock/trigger open for reading (trigger.c:trigger_set()).
func triggerHasReader(root string) bool {
	t, err := openTree(root)
	if err != nil {
		return false
	}
	defer t.close()
	n, err := t.lstat("lock/trigger")
	if err != nil || n.Type != fs.ModeNamedPipe {
		return false
	}
	fd, err := t.openAt("lock/trigger", unix.O_WRONLY|unix.O_NONBLOCK)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// relTo returns target relative to base (both absolute and clean).
func relTo(base, target string) string {
	r, err := filepath.Rel(base, target)
	if err != nil {
		return target
	}
	return filepath.ToSlash(r)
}

// commonBase returns the deepest directory containing all paths.
func commonBase(paths ...string) string {
	base := filepath.Clean(paths[0])
	for _, p := range paths[1:] {
		p = filepath.Clean(p)
		for !(p == base || strings.HasPrefix(p, base+string(filepath.Separator)) || base == string(filepath.Separator)) {
			base = filepath.Dir(base)
		}
	}
	return base
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// devOf returns the device of p or, if p does not exist yet, of its
// nearest existing ancestor.
func devOf(p string) (uint64, error) {
	for {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil {
			return uint64(st.Dev), nil
		}
		if err != unix.ENOENT {
			return 0, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		parent := filepath.Dir(p)
		if parent == p {
			return 0, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		p = parent
	}
}

// unlinkTwin removes the name p only when it is another name of the file
// keep (same inode, two links or more): the data stays under keep, so
// nothing is deleted. The check and the unlink belong to the mutator
// (safefs.FS checks, its dry-run twin records), so no step here asks what
// kind of mutator it was given; one that cannot check refuses.
func unlinkTwin(m queue.Mutator, p, keep string) error {
	t, ok := m.(interface{ RemoveTwin(p, keep string) error })
	if !ok {
		return fmt.Errorf("rebuild: cannot check that %s is a second name of %s; left alone", p, keep)
	}
	return t.RemoveTwin(p, keep)
}

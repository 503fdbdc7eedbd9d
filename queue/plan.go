package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// Root says which tree a Step's paths are relative to. The zero Root is
// the plan's Base (repair, rebuild, carry, swap); a quarantine or restore
// plan names one of two trees in each step.
type Root string

const (
	// InQueue: the queue root (for a restore, the queue restored into).
	InQueue Root = "queue"
	// InDir: the quarantine directory.
	InDir Root = "dir"
)

// Step is one change of a Plan: a Mutator call (Op is its method in lower
// case: mkdir, mkfifo, create, chmod, chown, chtimes, rename, link) or an
// operation of the package that built the plan (quarantine's record and
// move, rebuild's rmdir, unlink and carry), whose data is in Payload.
type Step struct {
	Op string
	// Root is the tree Path is relative to, DestRoot the one of Dest
	// ("": the plan's Base).
	Root     Root
	Path     string
	DestRoot Root
	Dest     string
	// Inode is what a move expects to move (0: not checked).
	Inode uint64
	Perm  fs.FileMode
	UID   int
	GID   int
	Data  []byte
	Atime time.Time
	Mtime time.Time
	// Exist: an existing target is fine (mkdir of a lost+found directory).
	Exist bool
	// Kind and ID name the problem this step fixes ("" for preparation).
	Kind string
	ID   string
	// Why is the human explanation printed with the step.
	Why string
	// Payload is what an operation beyond the Mutator's carries: the
	// manifest entry of a record step, the message of a carry step. A
	// record step prints it.
	Payload any
}

// Apply carries out a step that is one Mutator call through m and reports
// handled=false for any other Op, which the plan's package executes.
func (s Step) Apply(m Mutator) (handled bool, err error) {
	switch s.Op {
	case "mkdir":
		err = m.Mkdir(s.Path, s.Perm, s.UID, s.GID)
		if s.Exist && errors.Is(err, fs.ErrExist) {
			err = nil
		}
	case "mkfifo":
		err = m.Mkfifo(s.Path, s.Perm, s.UID, s.GID)
	case "create":
		err = m.Create(s.Path, s.Data, s.Perm, s.UID, s.GID)
	case "chmod":
		err = m.Chmod(s.Path, s.Perm)
	case "chown":
		err = m.Chown(s.Path, s.UID, s.GID)
	case "chtimes":
		err = m.Chtimes(s.Path, s.Atime, s.Mtime)
	case "rename":
		err = m.Rename(s.Path, s.Dest)
	case "link":
		err = m.Link(s.Path, s.Dest)
	default:
		return false, nil
	}
	return true, err
}

func (s Step) String() string {
	if s.Root != "" || s.Op == "record" {
		return s.rooted()
	}
	var b strings.Builder
	switch s.Op {
	case "rename", "link":
		fmt.Fprintf(&b, "%-7s %s -> %s", s.Op, s.Path, s.Dest)
	case "unlink":
		fmt.Fprintf(&b, "%-7s %s (a second name of %s)", s.Op, s.Path, s.Dest)
	case "mkdir", "mkfifo":
		fmt.Fprintf(&b, "%-7s %s %04o %s", s.Op, s.Path, uint32(s.Perm.Perm()), ownerText(s.UID, s.GID))
	case "create":
		fmt.Fprintf(&b, "%-7s %s %04o %s (%d bytes)", s.Op, s.Path, uint32(s.Perm.Perm()), ownerText(s.UID, s.GID), len(s.Data))
	case "chmod":
		fmt.Fprintf(&b, "%-7s %s %04o", s.Op, s.Path, uint32(s.Perm.Perm()))
	case "chown":
		fmt.Fprintf(&b, "%-7s %s %s", s.Op, s.Path, ownerText(s.UID, s.GID))
	case "chtimes":
		fmt.Fprintf(&b, "%-7s %s mtime %s", s.Op, s.Path, s.Mtime.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(&b, "%-7s %s", s.Op, s.Path)
		if s.Dest != "" {
			fmt.Fprintf(&b, " -> %s", s.Dest)
		}
	}
	if s.Kind != "" || s.Why != "" {
		b.WriteString("   # ")
		if s.Kind != "" {
			b.WriteString(s.Kind)
			if s.ID != "" {
				b.WriteString(" #" + s.ID)
			}
			if s.Why != "" {
				b.WriteString(": ")
			}
		}
		b.WriteString(s.Why)
	}
	return b.String()
}

// rooted renders a step of a two-tree plan (quarantine, restore).
func (s Step) rooted() string {
	switch s.Op {
	case "record":
		return fmt.Sprintf("record %v", s.Payload)
	case "move":
		return fmt.Sprintf("move %s:%s -> %s:%s", s.Root, s.Path, s.DestRoot, s.Dest)
	case "mkdir":
		return fmt.Sprintf("mkdir %s:%s %04o", s.Root, s.Path, uint32(s.Perm.Perm()))
	case "chown":
		return fmt.Sprintf("chown %d:%d %s:%s", s.UID, s.GID, s.Root, s.Path)
	case "chmod":
		return fmt.Sprintf("chmod %04o %s:%s", UnixMode(s.Perm), s.Root, s.Path)
	case "chtimes":
		return fmt.Sprintf("chtimes %s:%s atime=%s mtime=%s", s.Root, s.Path, fmtTime(s.Atime), fmtTime(s.Mtime))
	}
	return s.Op + " " + s.Path
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "unchanged"
	}
	return t.UTC().Format(time.RFC3339)
}

func ownerText(uid, gid int) string {
	u, g := "-", "-"
	if uid >= 0 {
		u = fmt.Sprint(uid)
	}
	if gid >= 0 {
		g = fmt.Sprint(gid)
	}
	return u + ":" + g
}

// UnixMode converts Go's FileMode permission and special bits to the Unix
// numbering (04000 set-uid, 02000 set-gid, 01000 sticky).
func UnixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// Plan is a list of changes built read-only, to be shown and then
// executed once (restic prune's plan → print → execute). rebuild and
// quarantine embed it in their plans, which add what executing needs
// (locks, lost+found, the manifest entry).
type Plan struct {
	// Title says what the plan does.
	Title string
	// Base is the directory every Step path with an empty Root is
	// relative to; the mutator a plan executes through is rooted here.
	Base  string
	Steps []Step
}

// StepError says which step of a plan failed: its number (N of Total),
// or the message (ID, Key) a per-message plan was for.
type StepError struct {
	// Format is the package whose plan it was ("rebuild", "quarantine").
	Format   string
	N, Total int
	ID, Key  string
	Step     Step
	Err      error
}

func (e *StepError) Error() string {
	if e.N > 0 {
		return fmt.Sprintf("%s: step %d of %d (%s %s): %v", e.Format, e.N, e.Total, e.Step.Op, e.Step.Path, e.Err)
	}
	return fmt.Sprintf("%s: %s (%s): %s: %v", e.Format, e.ID, e.Key, e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

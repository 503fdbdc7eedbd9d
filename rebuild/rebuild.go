package rebuild

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// PlanRebuild plans a complete, empty, correct qmail queue in newDir (which
// must not exist; its parent must): every directory, split subdirectory,
// lock file and the trigger FIFO of hier.c, with owners and modes from
// the table. The plan's Base is newDir's parent.
func PlanRebuild(newDir string, split int, bigTodo bool, ids IDs) (*Plan, error) {
	if err := needIDs(ids); err != nil {
		return nil, err
	}
	if split < 1 || split > 1<<16 {
		return nil, fmt.Errorf("rebuild: conf-split %d out of range", split)
	}
	abs, err := filepath.Abs(newDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(abs); !errors.Is(err, fs.ErrNotExist) {
		if err == nil {
			return nil, fmt.Errorf("rebuild: %s already exists; give a new directory", abs)
		}
		return nil, err
	}
	base := filepath.Dir(abs)
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("rebuild: parent of %s is not a directory", abs)
	}
	p := &Plan{Plan: queue.Plan{
		Base:  base,
		Title: fmt.Sprintf("new qmail queue %s (conf-split %d, %s todo)", abs, split, map[bool]string{true: "big", false: "flat"}[bigTodo]),
	}}
	q := filepath.Base(abs)
	for _, r := range Hier(split, bigTodo) {
		rel := q
		if r.Path != "." {
			rel = q + "/" + r.Path
		}
		uid, gid := ids.uid(r.User), ids.gid(r.Group)
		switch r.Type {
		case Dir:
			p.Steps = append(p.Steps, Step{Op: "mkdir", Path: rel, Perm: r.Mode, UID: uid, GID: gid, Why: "hier.c d()/dsplit()"})
		case File:
			p.Steps = append(p.Steps, Step{Op: "create", Path: rel, Data: make([]byte, r.Size), Perm: r.Mode, UID: uid, GID: gid, Why: "hier.c z()"})
		case FIFO:
			p.Steps = append(p.Steps, Step{Op: "mkfifo", Path: rel, Perm: r.Mode, UID: uid, GID: gid, Why: "hier.c p()"})
		}
	}
	return p, nil
}

// Rebuild builds an empty queue in newDir (see PlanRebuild) through m,
// which must be rooted at newDir's parent.
func Rebuild(newDir string, split int, bigTodo bool, ids IDs, m queue.Mutator) error {
	p, err := PlanRebuild(newDir, split, bigTodo, ids)
	if err != nil {
		return err
	}
	return p.Execute(m, nil)
}

// CarryOptions say where carried messages go.
type CarryOptions struct {
	// Split and BigTodo describe the new queue (an empty queue cannot show
	// its todo layout).
	Split   int
	BigTodo bool
	// Old overrides the detection of the old queue's layout.
	Old Options
}

// PlanCarry plans copying the selected messages (by name in the old queue)
// into the new queue newDir, the way qmail-queue makes a message
// (qmail-queue.c:main()): each mess is written to a fresh pid/ file whose
// inode becomes the new id, linked to mess/<id%split>/<id>, then the pid
// file is unlinked. A message not yet preprocessed (todo) gets a new
// intd/<id> linked to todo/<id>; a preprocessed one gets its bounce, local,
// remote and finally info files, each written under pid/ with its times
// and then renamed into place. Envelopes, recipients' done marks, the info
// mtime (birth), local/remote mtimes (next retry) and the mess times and
// group are preserved. The old queue is only read: it stays as it was
// (Swap keeps it too). Messages not in a legal state (S4 or S5) are listed
// in Skipped: repair the old queue first.
//
// newDir need not exist yet when the plan is appended to a PlanRebuild
// plan with Append.
func PlanCarry(oldDir, newDir string, sel []uint64, ids IDs, opts CarryOptions) (*Plan, error) {
	if err := needIDs(ids); err != nil {
		return nil, err
	}
	if opts.Split < 1 {
		return nil, fmt.Errorf("rebuild: the new queue's conf-split is not set")
	}
	oldAbs, newAbs, err := absPair(oldDir, newDir)
	if err != nil {
		return nil, err
	}
	if within(newAbs, oldAbs) || within(oldAbs, newAbs) {
		return nil, fmt.Errorf("rebuild: %s and %s must not contain each other", oldAbs, newAbs)
	}
	if locked, err := qmailq.SendLocked(oldAbs); err == nil && locked {
		return nil, fmt.Errorf("rebuild: %s: %w", oldAbs, qmailq.ErrSendRunning)
	}
	s, err := takeSnapshot(oldAbs, opts.Old.Split, opts.Old.Todo)
	if err != nil {
		return nil, err
	}
	nl := &qmailq.Layout{Root: newAbs, Split: opts.Split, BigTodo: opts.BigTodo}
	base := commonBase(filepath.Dir(newAbs), oldAbs)
	p := &Plan{
		Plan:    queue.Plan{Base: base, Title: fmt.Sprintf("carry %d messages from %s into %s", len(sel), oldAbs, newAbs)},
		Locks:   []string{oldAbs},
		carried: map[uint64]uint64{},
	}
	qnew := relTo(base, newAbs)
	sorted := append([]uint64(nil), sel...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	seq := 0
	for i, id := range sorted {
		if i > 0 && sorted[i-1] == id {
			continue
		}
		m := s.msgs[id]
		idStr := itoa(id)
		if m == nil || len(m.parts[qmailq.PartMess]) != 1 {
			p.Skipped = append(p.Skipped, Problem{Kind: "not-carried", ID: idStr, Detail: "no single mess file with this name in the old queue", Fix: "none"})
			continue
		}
		for _, part := range qmailq.Parts {
			if len(m.parts[part]) > 1 {
				p.Skipped = append(p.Skipped, Problem{Kind: "not-carried", ID: idStr, Detail: "two " + part.Dir() + " files: repair the old queue first", Fix: "none"})
				m = nil
				break
			}
		}
		if m == nil {
			continue
		}
		one := func(pt qmailq.Part) *node {
			if len(m.parts[pt]) == 0 {
				return nil
			}
			return m.parts[pt][0]
		}
		mess := one(qmailq.PartMess)
		todo := one(qmailq.PartTodo)
		if todo == nil {
			todo = one(qmailq.PartIntd) // S3 with a complete envelope is queued the same way
			if todo != nil {
				a := &analysis{s: s}
				if err := a.envelopeOK(todo); err != nil {
					todo = nil
				}
				a.close()
			}
		}
		info := one(qmailq.PartInfo)
		if mess.Size == 0 || todo == nil && info == nil {
			p.Skipped = append(p.Skipped, Problem{Kind: "not-carried", ID: idStr, Path: mess.Rel, Detail: "not a queued message (no envelope, or an empty mess): repair the old queue first", Fix: "none"})
			continue
		}
		c := &carry{
			oldRoot: oldAbs, base: base, newRel: qnew, layout: nl, ids: ids,
			id: id, mess: mess, todo: todo, plan: p, seqp: &seq,
		}
		parts := "mess+todo+intd"
		if todo == nil {
			for _, pt := range []qmailq.Part{qmailq.PartBounce, qmailq.PartLocal, qmailq.PartRemote, qmailq.PartInfo} {
				if n := one(pt); n != nil {
					c.side = append(c.side, sidePart{pt, n})
				}
			}
			parts = "mess"
			for _, sp := range c.side {
				parts += "+" + sp.part.Dir()
			}
		}
		p.Steps = append(p.Steps, Step{Op: "carry", Path: relTo(base, filepath.Join(oldAbs, mess.Rel)), Dest: qnew, ID: idStr, Why: parts + ", new id = inode of a new pid/ file", Payload: c})
	}
	return p, nil
}

type sidePart struct {
	part qmailq.Part
	n    *node
}

type carry struct {
	oldRoot string
	base    string
	newRel  string
	layout  *qmailq.Layout
	ids     IDs
	id      uint64
	mess    *node
	todo    *node
	side    []sidePart
	plan    *Plan
	seqp    *int
}

// maxMess bounds what Carry reads into memory for one file.
const maxMess = 1 << 31

func (c *carry) tmp() string {
	*c.seqp++
	return fmt.Sprintf("%s/pid/%d.%d.%d", c.newRel, os.Getpid(), clock.Now().Unix(), *c.seqp)
}

func (c *carry) run(m queue.Mutator) error {
	t, err := openTree(c.oldRoot)
	if err != nil {
		return err
	}
	defer t.close()
	// Re-check that the old file is the one planned.
	cur, err := t.lstat(c.mess.Rel)
	if err != nil {
		return err
	}
	if cur.Ino != c.mess.Ino || cur.Size != c.mess.Size {
		return fmt.Errorf("%s changed since the plan was made", c.mess.Rel)
	}
	data, err := t.readFile(c.mess.Rel, maxMess)
	if err != nil {
		return err
	}
	uq, us, gq := c.ids.uid(UserQ), c.ids.uid(UserS), c.ids.gid(GroupQ)
	pid := c.tmp()
	// qmail-queue.c:pidopen() + fstat: the new id is the inode.
	if err := m.Create(pid, data, 0o644, uq, c.mess.GID); err != nil {
		return err
	}
	newID, err := c.inode(m, pid)
	if err != nil {
		return err
	}
	c.plan.carried[c.id] = newID
	l := c.layout
	q := func(rel string) string { return c.newRel + "/" + rel }
	messNew := q(l.MessPath(newID))
	if err := m.Link(pid, messNew); err != nil {
		return err
	}
	if err := m.Remove(pid); err != nil {
		return err
	}
	if err := m.Chtimes(messNew, c.mess.Atime, c.mess.Mtime); err != nil {
		return err
	}
	if c.todo != nil {
		env, err := t.readFile(c.todo.Rel, maxEnvelope)
		if err != nil {
			return err
		}
		intd := q(l.IntdPath(newID))
		if err := m.Create(intd, env, 0o644, uq, c.todo.GID); err != nil {
			return err
		}
		if err := m.Chtimes(intd, c.todo.Atime, c.todo.Mtime); err != nil {
			return err
		}
		return m.Link(intd, q(l.TodoPath(newID)))
	}
	for _, sp := range c.side {
		data, err := t.readFile(sp.n.Rel, maxMess)
		if err != nil {
			return err
		}
		tmp := c.tmp()
		if err := m.Create(tmp, data, 0o600, us, gq); err != nil {
			return err
		}
		if err := m.Chtimes(tmp, sp.n.Atime, sp.n.Mtime); err != nil {
			return err
		}
		if err := m.Rename(tmp, q(l.Path(sp.part, newID))); err != nil {
			return err
		}
	}
	return nil
}

// inode finds the inode of a file just created through m: through m's
// own Lstat when it has one, else below Base. (A dry run's recorder
// answers for the files it recorded: inode 0, they have none yet.)
func (c *carry) inode(m queue.Mutator, rel string) (uint64, error) {
	var fi fs.FileInfo
	var err error
	if ls, ok := m.(interface {
		Lstat(string) (fs.FileInfo, error)
	}); ok {
		fi, err = ls.Lstat(rel)
	} else {
		fi, err = os.Lstat(filepath.Join(c.base, rel))
	}
	if err != nil {
		return 0, err
	}
	ino, ok := inodeOfInfo(fi)
	if !ok {
		return 0, fmt.Errorf("%s: no inode number", rel)
	}
	return ino, nil
}

// Carried returns, after Execute, the new id of every carried message by
// its old name.
func (p *Plan) Carried() map[uint64]uint64 {
	out := make(map[uint64]uint64, len(p.carried))
	for k, v := range p.carried {
		out[k] = v
	}
	return out
}

// Append adds the steps, skipped problems and locks of q after p's,
// re-basing paths on the common ancestor of both bases.
func (p *Plan) Append(q *Plan) {
	nb := commonBase(p.Base, q.Base)
	p.rebase(nb)
	q.rebase(nb)
	p.Steps = append(p.Steps, q.Steps...)
	p.Skipped = append(p.Skipped, q.Skipped...)
	p.Locks = append(p.Locks, q.Locks...)
	if q.carried != nil {
		if p.carried == nil {
			p.carried = map[uint64]uint64{}
		}
		// Share the map the carry steps fill.
		for k, v := range p.carried {
			q.carried[k] = v
		}
		p.carried = q.carried
	}
	p.Title += "; " + q.Title
	if q.LostFound != "" {
		p.LostFound = q.LostFound
	}
}

func (p *Plan) rebase(nb string) {
	if nb == p.Base {
		return
	}
	fix := func(rel string) string {
		if rel == "" {
			return ""
		}
		return relTo(nb, filepath.Join(p.Base, rel))
	}
	for i := range p.Steps {
		s := &p.Steps[i]
		s.Path, s.Dest = fix(s.Path), fix(s.Dest)
		if c, ok := s.Payload.(*carry); ok && c.base != nb {
			c.newRel = relTo(nb, filepath.Join(c.base, c.newRel))
			c.base = nb
		}
	}
	p.Base = nb
}

// Carry plans and executes PlanCarry through m (rooted at the plan's
// Base: the common ancestor of newDir's parent and oldDir) and returns the
// new id of every carried message by its old name.
func Carry(oldDir, newDir string, sel []uint64, ids IDs, opts CarryOptions, m queue.Mutator, progress queue.Progress) (map[uint64]uint64, *Plan, error) {
	p, err := PlanCarry(oldDir, newDir, sel, ids, opts)
	if err != nil {
		return nil, nil, err
	}
	err = p.Execute(m, progress)
	return p.Carried(), p, err
}

// absPair makes the old and the new queue's paths absolute.
func absPair(oldDir, newDir string) (oldAbs, newAbs string, err error) {
	if oldAbs, err = filepath.Abs(oldDir); err != nil {
		return "", "", err
	}
	newAbs, err = filepath.Abs(newDir)
	return oldAbs, newAbs, err
}

// PlanSwap plans putting the new queue in the old one's place: the old
// queue is renamed to "<old>.before-rebuild-<time>" (never deleted), then
// the new one to the old name. Both must be on one filesystem.
func PlanSwap(oldDir, newDir string, now time.Time) (*Plan, error) {
	oldAbs, newAbs, err := absPair(oldDir, newDir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{oldAbs, newAbs} {
		fi, err := os.Lstat(d)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("rebuild: %s is not a directory", d)
		}
	}
	if within(newAbs, oldAbs) || within(oldAbs, newAbs) {
		return nil, fmt.Errorf("rebuild: %s and %s must not contain each other", oldAbs, newAbs)
	}
	d1, _ := devOf(oldAbs)
	d2, _ := devOf(newAbs)
	if d1 != d2 {
		return nil, fmt.Errorf("rebuild: %s and %s are on different filesystems; a swap is two renames", oldAbs, newAbs)
	}
	if locked, err := qmailq.SendLocked(oldAbs); err == nil && locked {
		return nil, fmt.Errorf("rebuild: %s: %w", oldAbs, qmailq.ErrSendRunning)
	}
	if now.IsZero() {
		now = clock.Now()
	}
	backup := oldAbs + ".before-rebuild-" + now.UTC().Format("20060102T150405Z")
	for i := 2; ; i++ {
		if _, err := os.Lstat(backup); errors.Is(err, fs.ErrNotExist) {
			break
		}
		backup = oldAbs + ".before-rebuild-" + now.UTC().Format("20060102T150405Z") + "-" + strconv.Itoa(i)
	}
	base := commonBase(filepath.Dir(oldAbs), filepath.Dir(newAbs))
	return &Plan{
		Plan: queue.Plan{
			Base:  base,
			Title: fmt.Sprintf("swap %s into %s (the old queue is kept as %s)", newAbs, oldAbs, backup),
			Steps: []Step{
				{Op: "rename", Path: relTo(base, oldAbs), Dest: relTo(base, backup), Why: "keep the old queue"},
				{Op: "rename", Path: relTo(base, newAbs), Dest: relTo(base, oldAbs), Why: "the new queue takes its place"},
			},
		},
		Locks: []string{oldAbs, newAbs},
	}, nil
}

// Swap plans and executes PlanSwap through m (rooted at the plan's Base,
// the common parent) and returns where the old queue now is.
func Swap(oldDir, newDir string, m queue.Mutator) (string, error) {
	p, err := PlanSwap(oldDir, newDir, time.Time{})
	if err != nil {
		return "", err
	}
	if err := p.Execute(m, nil); err != nil {
		return "", err
	}
	return filepath.Join(p.Base, p.Steps[0].Dest), nil
}

package rebuild

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// PlanRepair builds the plan that fixes problems (as returned by
// CheckQmail on the same queue; nil means every problem found now). It
// re-reads the queue, so the plan matches what is on disk. It refuses
// while qmail-send holds lock/sendmutex.
//
// Nothing that could be mail is deleted: fragments that cannot be put back
// into a legal state are renamed into a new run directory below
// opts.LostFound (default "<queue>.lost+found" next to the queue), which
// must be outside the queue and on its filesystem; each is preceded by a
// "<name>.note" file saying where it came from and why.
func PlanRepair(root string, problems []Problem, ids IDs, opts Options) (*Plan, error) {
	if err := needIDs(ids); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if locked, err := qmailq.SendLocked(abs); err == nil && locked {
		return nil, fmt.Errorf("rebuild: %s: %w; stop it first (svc -d, or qmailctl stop)", abs, qmailq.ErrSendRunning)
	}
	s, err := takeSnapshot(abs, opts.Split, opts.Todo)
	if err != nil {
		return nil, err
	}
	a := analyze(s, ids, opts)
	lf := opts.LostFound
	if lf == "" {
		lf = s.root + ".lost+found"
	}
	if lf, err = filepath.Abs(lf); err != nil {
		return nil, err
	}
	if within(lf, s.root) {
		return nil, fmt.Errorf("rebuild: lost+found %s is inside the queue %s; it must be outside", lf, s.root)
	}
	qdev, err := devOf(s.root)
	if err != nil {
		return nil, err
	}
	ldev, err := devOf(lf)
	if err != nil {
		return nil, err
	}
	if qdev != ldev {
		return nil, fmt.Errorf("rebuild: lost+found %s is not on the queue's filesystem: fragments are moved, never copied", lf)
	}
	now := opts.now()
	run := filepath.Join(lf, "repair-"+now.UTC().Format("20060102T150405Z"))
	for i := 2; ; i++ {
		if _, err := os.Lstat(run); errors.Is(err, fs.ErrNotExist) {
			break
		}
		run = filepath.Join(lf, fmt.Sprintf("repair-%s-%d", now.UTC().Format("20060102T150405Z"), i))
	}
	base := commonBase(filepath.Dir(s.root), lf)
	b := &repairer{
		a:     a,
		s:     s,
		ids:   ids,
		now:   now,
		base:  base,
		qrel:  relTo(base, s.root),
		lf:    lf,
		run:   run,
		dirs:  map[string]bool{},
		final: map[*node]string{},
		plan: &Plan{
			Plan: queue.Plan{
				Base:  base,
				Title: fmt.Sprintf("repair of qmail queue %s (conf-split %d, %s todo)", s.root, s.layout.Split, map[bool]string{true: "big", false: "flat"}[s.layout.BigTodo]),
			},
			Locks: []string{s.root},
		},
	}
	b.keep = func(f finding) bool { return true }
	if problems != nil {
		want := map[string]bool{}
		for _, p := range problems {
			want[p.Kind+"\x00"+p.ID+"\x00"+p.Path] = true
		}
		b.keep = func(f finding) bool { return want[f.Kind+"\x00"+f.ID+"\x00"+f.Path] }
	}
	if err := b.build(); err != nil {
		return nil, err
	}
	if b.usedLF {
		b.plan.LostFound = run
	}
	return b.plan, nil
}

type repairer struct {
	a     *analysis
	s     *snapshot
	ids   IDs
	now   time.Time
	base  string
	qrel  string
	lf    string
	run   string
	plan  *Plan
	keep  func(finding) bool
	dirs  map[string]bool
	final map[*node]string // where a message file ends up
	seq   int
	moved map[string]bool // queue-relative paths already moved to lost+found

	usedLF bool
}

// q maps a queue-relative path to a Base-relative one.
func (b *repairer) q(rel string) string {
	if rel == "." || rel == "" {
		return b.qrel
	}
	if b.qrel == "." {
		return rel
	}
	return b.qrel + "/" + rel
}

// eachRename calls fn, parts in the order given, for every file of m not
// moved to lost+found whose name under the message's final id differs
// from where it is, and records that final name.
func (b *repairer) eachRename(m *msg, final uint64, order []qmailq.Part, fn func(p qmailq.Part, n *node, dst string)) {
	for _, p := range order {
		for _, n := range m.parts[p] {
			if b.moved[n.Rel] {
				continue
			}
			dst := b.s.layout.Path(p, final)
			b.final[n] = dst
			if dst != n.Rel {
				fn(p, n, dst)
			}
		}
	}
}

func (b *repairer) add(s Step) { b.plan.Steps = append(b.plan.Steps, s) }

// lfDir makes sure the lost+found directory for queue-relative dir rel is
// created by the plan.
func (b *repairer) lfDir(rel string) string {
	chain := []string{b.lf, b.run}
	if rel != "." && rel != "" {
		cur := b.run
		for _, c := range strings.Split(rel, "/") {
			cur = filepath.Join(cur, c)
			chain = append(chain, cur)
		}
	}
	for _, d := range chain {
		r := relTo(b.base, d)
		if !b.dirs[r] {
			b.dirs[r] = true
			b.add(Step{Op: "mkdir", Path: r, Perm: 0o700, UID: -1, GID: -1, Exist: d == b.lf, Why: "lost+found"})
		}
	}
	return relTo(b.base, chain[len(chain)-1])
}

// toLF moves one queue entry into lost+found, after writing its note.
func (b *repairer) toLF(n *node, kind, id, why string) {
	if b.moved[n.Rel] {
		return
	}
	b.moved[n.Rel] = true
	b.usedLF = true
	dir := b.lfDir(path.Dir(n.Rel))
	dst := dir + "/" + path.Base(n.Rel)
	var note bytes.Buffer
	fmt.Fprintf(&note, "qsurgeon repair moved this out of the qmail queue; nothing was deleted.\n")
	fmt.Fprintf(&note, "from: %s\n", filepath.Join(b.s.root, n.Rel))
	fmt.Fprintf(&note, "to: %s\n", filepath.Join(b.base, dst))
	if id != "" {
		fmt.Fprintf(&note, "message: %s\n", id)
	}
	fmt.Fprintf(&note, "problem: %s\n", kind)
	fmt.Fprintf(&note, "why: %s\n", why)
	fmt.Fprintf(&note, "file: %s, %d bytes, owner %d:%d, mode %04o, inode %d, mtime %s\n", typeName(n.Type), n.Size, n.UID, n.GID, uint32(n.Perm.Perm()), n.Ino, n.Mtime.UTC().Format(time.RFC3339))
	fmt.Fprintf(&note, "planned: %s\n", b.now.UTC().Format(time.RFC3339))
	b.add(Step{Op: "create", Path: dst + ".note", Data: note.Bytes(), Perm: 0o600, UID: -1, GID: -1, Kind: kind, ID: id, Why: "note for " + n.Rel})
	b.add(Step{Op: "rename", Path: b.q(n.Rel), Dest: dst, Kind: kind, ID: id, Why: "to lost+found"})
}

func (b *repairer) build() error {
	a, s := b.a, b.s
	l := s.layout
	b.moved = map[string]bool{}
	var skipped []Problem
	// Findings by kind of target.
	hier := map[string][]finding{}
	msgs := map[uint64][]finding{}
	var others []finding
	for _, f := range a.findings {
		if !b.keep(f) {
			continue
		}
		switch {
		case f.msg != nil:
			msgs[f.msg.ID] = append(msgs[f.msg.ID], f)
		case f.rule != nil || (f.act == actChown || f.act == actChmod):
			hier[f.Path] = append(hier[f.Path], f)
		default:
			others = append(others, f)
		}
		if f.act == actWait || f.act == actNone && f.Severity != SeverityNote {
			// A note (a state qmail cleans up itself) needs no fix.
			skipped = append(skipped, f.Problem)
		}
	}

	// 1. The hierarchy, in hier.c order (parents before children).
	for _, r := range Hier(l.Split, l.BigTodo) {
		for _, f := range hier[r.Path] {
			uid, gid := b.ids.uid(r.User), b.ids.gid(r.Group)
			switch f.act {
			case actMkdir:
				b.add(Step{Op: "mkdir", Path: b.q(r.Path), Perm: r.Mode, UID: uid, GID: gid, Kind: f.Kind, Why: "hier.c"})
			case actReplace:
				b.toLF(f.node, f.Kind, "", f.Detail)
				fallthrough
			case actMkfile, actMkfifo:
				if r.Type == FIFO {
					b.add(Step{Op: "mkfifo", Path: b.q(r.Path), Perm: r.Mode, UID: uid, GID: gid, Kind: f.Kind, Why: "hier.c p()"})
				} else {
					b.add(Step{Op: "create", Path: b.q(r.Path), Data: make([]byte, r.Size), Perm: r.Mode, UID: uid, GID: gid, Kind: f.Kind, Why: "hier.c z()"})
				}
			}
		}
		for _, f := range hier[r.Path] {
			b.ownerFix(f, b.q(r.Path))
		}
		delete(hier, r.Path)
	}
	// Owner/mode of entries outside the table (none today) are left.
	for _, fs := range hier {
		for _, f := range fs {
			if f.act != actNone && f.act != actWait {
				skipped = append(skipped, f.Problem)
			}
		}
	}

	// 2. Strays and stale pid files.
	var drain []finding
	for _, f := range others {
		switch f.act {
		case actLostFound:
			for _, n := range f.nodes {
				b.toLF(n, f.Kind, f.ID, f.Detail)
			}
		case actDrainDir:
			drain = append(drain, f)
		}
	}

	// 3a. Whole messages and single parts to lost+found.
	ids := make([]uint64, 0, len(msgs))
	for id := range msgs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	moveMsg := map[uint64]bool{}
	for _, id := range ids {
		for _, f := range msgs[id] {
			switch f.act {
			case actLostFound, actAsideTodo, actAsideIntd, actAsideBounce:
				for _, n := range lfOrder(f.nodes) {
					b.toLF(n, f.Kind, f.ID, f.Detail)
				}
			case actMakeInfo, actRewriteChannel:
				// The broken file goes aside first; 3c writes the new one.
				for _, n := range f.nodes {
					b.toLF(n, f.Kind, f.ID, f.Detail)
				}
				if f.act == actRewriteChannel {
					b.toLF(f.node, f.Kind, f.ID, f.Detail)
				}
				moveMsg[id] = true
			case actMoveMsg, actLinkIntd, actLinkTodo:
				moveMsg[id] = true
			}
			if (f.act == actChown || f.act == actChmod) && !a.lost[id] {
				moveMsg[id] = true
			}
		}
	}

	// 3b. Renames to the right name and subdirectory, scheduled so that no
	// rename meets an occupied name (renames never replace).
	occupied := map[string]bool{}
	for _, m := range s.msgs {
		for _, ns := range m.parts {
			for _, n := range ns {
				if !b.moved[n.Rel] {
					occupied[n.Rel] = true
				}
			}
		}
	}
	// A message keeps its name (wrong-subdir only): the old paths are in
	// subdirectories qmail-send never looks in (fnmake_*() build every
	// path from id % split), so each rename makes a part visible; the
	// channel files come before info (an info without its channel files
	// goes to messdone(), which deletes it and the mess: qmail-send.c
	// pqadd(), messdone()) and mess comes last (a mess without info or
	// todo is removed by cleanup_do() once its atime is 36 h old).
	//
	// A message renamed to its inode number (id-not-inode) is visible under
	// both names, and no order of single renames is safe: info under either
	// name without all its channel files there is "finished" by messdone(),
	// and a mess without info or todo is cleaned up. So its files are
	// first linked to the new name (mess first: the new name has no info
	// yet, so qmail-send's pqstart() never looks at it; at worst
	// cleanup_do() unlinks that second name of the mess), then info (todo
	// for a message not yet preprocessed: pqadd() and messdone() leave an
	// id with todo alone) is renamed, the one step that moves the message
	// from the old name to the new, complete one, then the old names are
	// unlinked (the same files stay under the new names; an old name left
	// by a crash has no info, so qmail-send ignores it, and cleanup_do()'s
	// foop only unlinks the second name of the mess and intd).
	type mv struct {
		op       string // rename, link, unlink
		from, to string
	}
	pending := map[uint64][]mv{}
	for _, id := range ids {
		if !moveMsg[id] || a.lost[id] {
			continue
		}
		m := s.msgs[id]
		final := a.final[id]
		var list []mv
		if final == id {
			var messList []mv
			b.eachRename(m, final, []qmailq.Part{qmailq.PartBounce, qmailq.PartLocal, qmailq.PartRemote, qmailq.PartInfo, qmailq.PartTodo, qmailq.PartIntd, qmailq.PartMess}, func(p qmailq.Part, n *node, dst string) {
				if p == qmailq.PartMess {
					messList = append(messList, mv{"rename", n.Rel, dst})
				} else {
					list = append(list, mv{"rename", n.Rel, dst})
				}
			})
			list = append(list, messList...)
		} else {
			// The todo that stays (a stale one went to lost+found in 3a).
			commit := qmailq.PartInfo
			for _, n := range m.parts[qmailq.PartTodo] {
				if !b.moved[n.Rel] {
					commit = qmailq.PartTodo
				}
			}
			var links, commits, unlinks []mv
			b.eachRename(m, final, []qmailq.Part{qmailq.PartMess, qmailq.PartIntd, qmailq.PartBounce, qmailq.PartLocal, qmailq.PartRemote, qmailq.PartInfo, qmailq.PartTodo}, func(p qmailq.Part, n *node, dst string) {
				switch {
				case p == commit:
					commits = append(commits, mv{"rename", n.Rel, dst})
				case commit == qmailq.PartTodo && p != qmailq.PartMess && p != qmailq.PartIntd:
					// info, local, remote of a message not yet
					// preprocessed: todo_do() rewrites them.
					links = append(links, mv{"rename", n.Rel, dst})
				default:
					if tw := m.twin[n]; tw == nil || tw.Rel != dst {
						links = append(links, mv{"link", n.Rel, dst})
					}
					unlinks = append(unlinks, mv{"unlink", n.Rel, dst})
				}
			})
			// Unlink the old names in the order qmail leaves a message:
			// bounce first (qmail-send.c:messdone()), mess last.
			sort.SliceStable(unlinks, func(i, j int) bool { return unlinkRank(unlinks[i].from) < unlinkRank(unlinks[j].from) })
			list = append(append(links, commits...), unlinks...)
		}
		if len(list) > 0 {
			pending[id] = list
		}
	}
	blocked := map[uint64]bool{}
	for progress := true; progress && len(pending) > 0; {
		progress = false
		for _, id := range ids {
			mvs, ok := pending[id]
			if !ok {
				continue
			}
			free := true
			for _, x := range mvs {
				if x.op != "unlink" && occupied[x.to] {
					free = false
				}
			}
			if !free {
				continue
			}
			kind := KindWrongSubdir
			if a.final[id] != id {
				kind = KindIDNotInode
			}
			for _, x := range mvs {
				switch x.op {
				case "rename":
					b.add(Step{Op: "rename", Path: b.q(x.from), Dest: b.q(x.to), Kind: kind, ID: itoa(id)})
					delete(occupied, x.from)
					occupied[x.to] = true
				case "link":
					b.add(Step{Op: "link", Path: b.q(x.from), Dest: b.q(x.to), Kind: kind, ID: itoa(id), Why: "the new name first; the old one goes once info has moved"})
					occupied[x.to] = true
				case "unlink":
					b.add(Step{Op: "unlink", Path: b.q(x.from), Dest: b.q(x.to), Kind: kind, ID: itoa(id), Why: "old name; the file stays as " + x.to})
					delete(occupied, x.from)
				}
			}
			delete(pending, id)
			progress = true
		}
	}
	for id, mvs := range pending {
		blocked[id] = true
		skipped = append(skipped, Problem{Kind: KindIDNotInode, ID: itoa(id), Path: mvs[0].from, Detail: "cannot be renamed: " + mvs[0].to + " or another target name stays occupied", Fix: "none automatic: move the occupying files away by hand, then run repair again"})
	}

	// 3c. Links, recreated info, owners and modes at the final paths.
	for _, id := range ids {
		if a.lost[id] || blocked[id] {
			continue
		}
		m := s.msgs[id]
		final := a.final[id]
		for _, f := range msgs[id] {
			switch f.act {
			case actLinkIntd:
				b.add(Step{Op: "link", Path: b.q(l.TodoPath(final)), Dest: b.q(l.IntdPath(final)), Kind: f.Kind, ID: f.ID, Why: "intd and todo are one inode (qmail-queue.c)"})
			case actLinkTodo:
				b.add(Step{Op: "link", Path: b.q(l.IntdPath(final)), Dest: b.q(l.TodoPath(final)), Kind: f.Kind, ID: f.ID, Why: "qmail-queue's last step: the message is queued"})
			case actMakeInfo:
				b.makeInfo(m, final, f)
			case actRewriteChannel:
				b.rewriteChannel(final, f)
			}
		}
		for _, f := range msgs[id] {
			if f.act != actChown && f.act != actChmod || b.moved[f.node.Rel] {
				continue
			}
			dst := b.final[f.node]
			if dst == "" {
				dst = f.node.Rel
			}
			b.ownerFix(f, b.q(dst))
		}
	}

	// 4. Directories that were emptied.
	for _, f := range drain {
		b.add(Step{Op: "rmdir", Path: b.q(f.node.Rel), Kind: f.Kind, Why: "emptied; qmail never reads it"})
	}
	b.plan.Skipped = skipped
	return nil
}

// unlinkRank orders the old names of a message renamed to its inode.
func unlinkRank(rel string) int {
	return map[string]int{"bounce": 0, "local": 1, "remote": 2, "info": 3, "todo": 4, "intd": 5, "mess": 6}[strings.SplitN(rel, "/", 2)[0]]
}

// lfOrder sorts the files of one message into the order they leave for
// lost+found, each prefix of which leaves a state qmail-send can meet
// without losing or doubling a recipient:
//
// mess first: info and channel files without mess only defer ("unable to
// open message" in qmail-spawn), todo without mess makes todo_do() fail and
// retry, whereas a mess left without info and todo is unlinked by
// qmail-send.c:cleanup_do() once its atime is 36 h old; the inode stays
// taken in lost+found, so no new message can inherit a bounce file. Then
// info (the message is invisible: pqstart() scans info/ only), then
// bounce, channel files, todo, intd. Not qmail's own elimination order
// (messdone() removes the channel files before info): a crash between
// those would leave info without channel files, which pqadd() sends to
// messdone(), which deletes info and has qmail-clean unlink mess.
func lfOrder(ns []*node) []*node {
	rank := map[string]int{"mess": 0, "info": 1, "bounce": 2, "local": 3, "remote": 4, "todo": 5, "intd": 6}
	out := append([]*node(nil), ns...)
	sort.SliceStable(out, func(i, j int) bool {
		return rank[strings.SplitN(out[i].Rel, "/", 2)[0]] < rank[strings.SplitN(out[j].Rel, "/", 2)[0]]
	})
	return out
}

func (b *repairer) ownerFix(f finding, p string) {
	switch f.act {
	case actChown:
		b.add(Step{Op: "chown", Path: p, UID: f.uid, GID: f.gid, Kind: f.Kind, ID: f.ID})
	case actChmod:
		b.add(Step{Op: "chmod", Path: p, Perm: f.perm, Kind: f.Kind, ID: f.ID})
	}
}

// tmpName returns a fresh name in pid/ shaped like qmail-queue's
// pid/<pid>.<time>.<seq> (qmail-queue.c:pidopen()): qmail-clean removes
// such files once they are 36 h old, so an interrupted plan leaves nothing
// qmail does not know how to clean.
func (b *repairer) tmpName() string {
	for {
		b.seq++
		name := fmt.Sprintf("pid/%d.%d.%d", os.Getpid(), b.now.Unix(), b.seq)
		if _, err := os.Lstat(filepath.Join(b.s.root, name)); errors.Is(err, fs.ErrNotExist) {
			return name
		}
	}
}

// makeInfo recreates info/<id> ("F<sender>\0", qmail-send.c:todo_do())
// with the sender the analysis found evidence for (never a guessed null
// sender); the birth (info mtime) is the broken info's mtime when there was
// one, else the mess mtime, when qmail-queue wrote it.
func (b *repairer) makeInfo(m *msg, final uint64, f finding) {
	l := b.s.layout
	birth := m.one(qmailq.PartMess, l).Mtime
	if len(f.nodes) > 0 {
		birth = f.nodes[0].Mtime
	}
	tmp := b.tmpName()
	uid, gid := b.ids.uid(UserS), b.ids.gid(GroupQ)
	b.add(Step{Op: "create", Path: b.q(tmp), Data: qmailq.Info{Sender: f.sender}.Bytes(), Perm: 0o600, UID: uid, GID: gid, Kind: f.Kind, ID: f.ID, Why: "new info, sender from " + f.evidence})
	b.add(Step{Op: "chtimes", Path: b.q(tmp), Atime: birth, Mtime: birth, Kind: f.Kind, ID: f.ID, Why: "birth"})
	b.add(Step{Op: "rename", Path: b.q(tmp), Dest: b.q(l.InfoPath(final)), Kind: f.Kind, ID: f.ID})
}

// rewriteChannel writes a local/remote file back with the records the
// analysis kept (qmailq.Channel.Bytes, the format of todo_do()), with the
// old file's mtime: qmail-send's next-retry time (pqadd()).
func (b *repairer) rewriteChannel(final uint64, f finding) {
	l := b.s.layout
	part := partOf[strings.SplitN(f.node.Rel, "/", 2)[0]]
	tmp := b.tmpName()
	uid, gid := b.ids.uid(UserS), b.ids.gid(GroupQ)
	b.add(Step{Op: "create", Path: b.q(tmp), Data: f.channel.Bytes(), Perm: 0o600, UID: uid, GID: gid, Kind: f.Kind, ID: f.ID, Why: fmt.Sprintf("%s rewritten with %d record(s)", part.Dir(), len(f.channel.Recipients))})
	b.add(Step{Op: "chtimes", Path: b.q(tmp), Atime: f.node.Atime, Mtime: f.node.Mtime, Kind: f.Kind, ID: f.ID, Why: "next retry time"})
	b.add(Step{Op: "rename", Path: b.q(tmp), Dest: b.q(l.Path(part, final)), Kind: f.Kind, ID: f.ID})
}

// readHead reads at most max bytes from the start of a regular file.
func (t *tree) readHead(rel string, max int64) ([]byte, error) {
	f, err := t.openRegular(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// returnPathOf returns the address of the first Return-Path header of a
// message header block ("" for "<>") and whether there is one.
func returnPathOf(head []byte) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(head))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			return "", false
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "Return-Path") {
			continue
		}
		val = strings.TrimSpace(val)
		if val == "<>" {
			return "", true
		}
		if a, err := mail.ParseAddress(val); err == nil {
			return a.Address, true
		}
		return strings.Trim(val, "<>"), true
	}
	return "", false
}

package quarantine

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Into restores into a different (live) queue, the one queueFS is:
	// Postfix: the message file goes into maildrop/ID as postsuper -r puts
	// it (owner mail_owner, mode 0700, times now), pickup re-injects it
	// under a new ID, and the defer/bounce/trace logs stay in quarantine.
	// qmail: the parts go into that queue under the name of the mess inode,
	// as in a plain restore (Layout must describe that queue).
	Into bool
	// Layout is the layout of the qmail queue restored into (required for
	// qmail; qmailq.DetectLayout or Queue.Layout).
	Layout *qmailq.Layout
	// MaildropUID (Postfix Into) owns the maildrop file; 0 means the owner
	// of the target's maildrop/ directory (mail_owner). pickup treats a
	// file as requeued only when its owner is mail_owner
	// (pickup.c: MAIL_IS_REQUEUED).
	MaildropUID int
	// Now is the time stamped by Into and the manifest; zero: clock.Now().
	Now time.Time
	// MasterRunning: a Postfix master runs on the target queue. A message
	// that was in active/ then goes back into incoming/ instead, since a
	// running qmgr scans incoming/ and deferred/ but reads active/ only at
	// its start (qmgr.c: qmgr_active_feed is fed from incoming/deferred).
	MasterRunning bool
}

// qmailInOrder is the order parts of a qmail message come back: mess first
// and the file that makes the message visible last. A preprocessed message
// becomes visible with info/ (qmail-send.c:pqstart scans info/ only), so
// bounce, local and remote go before it; a todo message becomes visible
// with todo/ (after mess and intd: qmail-queue.c's own order), and the
// info/local/remote of a half-preprocessed one follow it, since todo_do
// redoes them anyway and pqadd skips an id whose todo exists.
var qmailInOrder = []qmailq.Part{qmailq.PartMess, qmailq.PartIntd, qmailq.PartTodo, qmailq.PartBounce, qmailq.PartLocal, qmailq.PartRemote, qmailq.PartInfo}

// PlanRestore works out how entry e (from dir's manifest) goes back into
// the queue queueFS, without changing anything. Parts already in place
// (an interrupted quarantine or restore) are skipped; a part that is
// nowhere, or a destination holding another file, refuses the whole
// message before anything is moved.
func PlanRestore(e Entry, dir, queueFS *safefs.FS, opt RestoreOptions) (*Plan, error) {
	switch e.State {
	case StateQuarantined, StateQuarantining, StateRestoring:
	default:
		return nil, fmt.Errorf("quarantine: %s (%s): %w: %s", e.ID, e.Key, ErrState, e.State)
	}
	if err := CheckOutside(queueFS.Root(), dir.Root()); err != nil {
		return nil, err
	}
	now := opt.Now
	if now.IsZero() {
		now = clock.Now()
	}
	d := &Disk{Queue: queueFS, Dir: dir}
	switch e.MTA {
	case queue.Postfix:
		if opt.Into {
			return planPostfixInto(e, d, opt, now)
		}
		return planPostfix(e, d, opt, now)
	case queue.Qmail:
		if opt.Layout == nil {
			return nil, errors.New("quarantine: restoring a qmail message needs the layout of the queue")
		}
		return planQmail(e, d, opt, now)
	}
	return nil, fmt.Errorf("quarantine: %s: unknown MTA %q", e.ID, e.MTA)
}

// Restore puts entry e back into the queue queueFS and records it in dir's
// manifest; it returns the message's name in that queue. It is PlanRestore
// executed on disk. For qmail the caller holds qmailq.LockSend on that
// queue.
func Restore(e Entry, dir, queueFS *safefs.FS, opt RestoreOptions) (newID string, err error) {
	p, err := PlanRestore(e, dir, queueFS, opt)
	if err != nil {
		return "", err
	}
	if _, err := p.Execute(&Disk{Queue: queueFS, Dir: dir}); err != nil {
		return "", err
	}
	return p.NewID, nil
}

func planQmail(e Entry, d *Disk, opt RestoreOptions, now time.Time) (*Plan, error) {
	byName := map[string]Part{}
	for _, pt := range e.Parts {
		byName[pt.Name] = pt
	}
	newID := e.ID
	if m, ok := byName[qmailq.PartMess.Dir()]; ok {
		// The mess inode never changes through renames, and qmail requires
		// the name to be the inode (qmail-queue.c: id = inode of pid file).
		newID = strconv.FormatUint(m.Inode, 10)
	}
	id, ok := qmailq.ParseID(newID)
	if !ok {
		return nil, fmt.Errorf("quarantine: %s: %q is not a qmail id", e.Key, newID)
	}
	targets := map[string]string{}
	var order []Part
	for _, p := range qmailInOrder {
		if pt, ok := byName[p.Dir()]; ok {
			targets[pt.Name] = opt.Layout.Path(p, id)
			order = append(order, pt)
		}
	}
	if len(order) != len(e.Parts) {
		return nil, fmt.Errorf("quarantine: %s: manifest lists parts that are not qmail parts", e.Key)
	}
	return planParts(e, d, order, targets, newID, opt, now, false)
}

func planPostfix(e Entry, d *Disk, opt RestoreOptions, now time.Time) (*Plan, error) {
	// Postfix: the message first, then its logs: a crash in between leaves
	// a message without (some of) its logs, never a log without its
	// message.
	var order []Part
	targets := map[string]string{}
	for _, pt := range e.Parts {
		targets[pt.Name] = pt.QueuePath
		if pt.Name == "message" {
			order = append([]Part{pt}, order...)
			if opt.MasterRunning && path.Dir(pt.QueuePath) == queue.Active {
				targets[pt.Name] = path.Join(queue.Incoming, path.Base(pt.QueuePath))
			}
		} else {
			order = append(order, pt)
		}
	}
	return planParts(e, d, order, targets, e.ID, opt, now, true)
}

// where a part is now.
type where int

const (
	inDir where = iota
	inPlace
	inOldPlace
)

func locate(e Entry, d *Disk, pt Part, target string) (where, error) {
	fail := func(err error) error { return fmt.Errorf("quarantine: %s (%s): %s: %w", e.ID, e.Key, pt.DirPath, err) }
	fi, err := d.Lstat(InDir, pt.DirPath)
	if err == nil {
		if !fi.Mode().IsRegular() {
			return 0, fail(ErrNotRegular)
		}
		if inode(fi) != pt.Inode {
			return 0, fail(fmt.Errorf("%w: inode %d, recorded %d", ErrChanged, inode(fi), pt.Inode))
		}
		// A freed inode number is soon reused: a file replaced in the
		// quarantine directory can have the old one. Renames keep size
		// and mtime, so these tell the replacement apart.
		if fi.Size() != pt.Size || !fi.ModTime().Equal(pt.MTime) {
			return 0, fail(fmt.Errorf("%w: size %d mtime %s, recorded %d %s", ErrChanged, fi.Size(), fi.ModTime().UTC().Format(time.RFC3339Nano), pt.Size, pt.MTime.Format(time.RFC3339Nano)))
		}
		if tfi, terr := d.Lstat(InQueue, target); terr == nil {
			return 0, fmt.Errorf("quarantine: %s (%s): %s: %w (inode %d)", e.ID, e.Key, target, ErrOccupied, inode(tfi))
		} else if !errors.Is(terr, fs.ErrNotExist) {
			return 0, fail(terr)
		}
		return inDir, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return 0, fail(err)
	}
	if fi, err := d.Lstat(InQueue, target); err == nil && fi.Mode().IsRegular() && inode(fi) == pt.Inode {
		return inPlace, nil
	}
	if target != pt.QueuePath {
		if fi, err := d.Lstat(InQueue, pt.QueuePath); err == nil && fi.Mode().IsRegular() && inode(fi) == pt.Inode {
			return inOldPlace, nil
		}
	}
	return 0, fail(ErrMissing)
}

func planParts(e Entry, d *Disk, order []Part, targets map[string]string, newID string, opt RestoreOptions, now time.Time, mkdirs bool) (*Plan, error) {
	final := e
	final.NewID = newID
	final.RestoredTo = d.Queue.Root()
	final.Into = opt.Into
	final.Time = now.UTC()
	p := &Plan{NewID: newID}
	start := final
	start.State = StateRestoring
	p.Steps = append(p.Steps, Step{Op: OpRecord, Payload: &start})
	madeDirs := map[string]bool{}
	for _, pt := range order {
		target := targets[pt.Name]
		w, err := locate(e, d, pt, target)
		if err != nil {
			return nil, err
		}
		switch w {
		case inPlace:
			continue
		case inOldPlace:
			if e.MTA == queue.Postfix {
				// Never taken out (an interrupted quarantine): a
				// Postfix message keeps its name, so leave it where
				// it is rather than touch active/ under a live qmgr.
				continue
			}
			p.Steps = append(p.Steps, Step{Op: OpMove, Root: InQueue, Path: pt.QueuePath, DestRoot: InQueue, Dest: target, Inode: pt.Inode})
			continue
		}
		// In the quarantine directory: put owner and mode back first if
		// something changed them, so the file never appears in the queue
		// wrongly owned.
		fi, err := d.Lstat(InDir, pt.DirPath)
		if err != nil {
			return nil, err
		}
		st := statOf(fi)
		if int(st.Uid) != pt.UID || int(st.Gid) != pt.GID {
			p.Steps = append(p.Steps, Step{Op: OpChown, Root: InDir, Path: pt.DirPath, UID: pt.UID, GID: pt.GID})
		}
		if unixMode(fi.Mode()) != pt.Mode {
			p.Steps = append(p.Steps, Step{Op: OpChmod, Root: InDir, Path: pt.DirPath, Perm: goMode(pt.Mode)})
		}
		if e.MTA == queue.Qmail && pt.Name == qmailq.PartMess.Dir() {
			// qmail-send.c:cleanup_do removes a mess whose atime is older
			// than 36 hours while it has no info/ and no todo/: if this
			// restore is interrupted before info/todo are back, a fresh
			// atime keeps the mess until the restore is resumed.
			p.Steps = append(p.Steps, Step{Op: OpChtimes, Root: InDir, Path: pt.DirPath, Atime: now})
		}
		parent := path.Dir(target)
		if !madeDirs[parent] {
			if _, err := d.Lstat(InQueue, parent); errors.Is(err, fs.ErrNotExist) {
				if !mkdirs {
					return nil, fmt.Errorf("quarantine: %s (%s): queue directory %s is missing (check/repair the queue first)", e.ID, e.Key, parent)
				}
				// Postfix hash directories: 0700, owned like the message
				// (postsuper's mail_queue_mkdirs runs as mail_owner).
				var missing []string
				for dd := parent; dd != "."; dd = path.Dir(dd) {
					if _, err := d.Lstat(InQueue, dd); err == nil {
						break
					}
					missing = append(missing, dd)
				}
				for i := len(missing) - 1; i >= 0; i-- {
					p.Steps = append(p.Steps, Step{Op: OpMkdir, Root: InQueue, Path: missing[i], Perm: 0o700, UID: pt.UID, GID: pt.GID})
				}
			} else if err != nil {
				return nil, err
			}
			madeDirs[parent] = true
		}
		p.Steps = append(p.Steps, Step{Op: OpMove, Root: InDir, Path: pt.DirPath, DestRoot: InQueue, Dest: target, Inode: pt.Inode})
	}
	final.State = StateRestored
	done := final
	p.Steps = append(p.Steps, Step{Op: OpRecord, Payload: &done})
	p.Entry = final
	return p, nil
}

// planPostfixInto puts the message file into maildrop/ID of the queue
// d.Queue is, the way postsuper -r does (postsuper.c:requeue_one: rename
// into maildrop, utime now): a complete queue file owned by mail_owner with
// mode 0700 (no S_IROTH), which pickup recognises as requeued
// (MAIL_IS_REQUEUED) and cleanup gives a new ID. The owner and mode are
// set while the file is still in the quarantine directory, so pickup
// never sees it half-prepared. The logs stay in quarantine: they belong to
// the old ID, which the live queue may be using.
func planPostfixInto(e Entry, d *Disk, opt RestoreOptions, now time.Time) (*Plan, error) {
	var msg *Part
	for i := range e.Parts {
		if e.Parts[i].Name == "message" {
			msg = &e.Parts[i]
		}
	}
	if msg == nil {
		return nil, fmt.Errorf("quarantine: %s (%s): no message file recorded", e.ID, e.Key)
	}
	target := path.Join(queue.Maildrop, e.ID)
	final := e
	final.NewID = e.ID
	final.RestoredTo = d.Queue.Root()
	final.Into = true
	final.Time = now.UTC()
	final.Note = "re-injected through maildrop (pickup assigns a new queue ID); defer/bounce/trace logs stay in quarantine"
	p := &Plan{NewID: e.ID}
	start := final
	start.State = StateRestoring
	p.Steps = append(p.Steps, Step{Op: OpRecord, Payload: &start})

	fi, err := d.Lstat(InDir, msg.DirPath)
	switch {
	case err == nil:
		if !fi.Mode().IsRegular() || inode(fi) != msg.Inode || fi.Size() != msg.Size || !fi.ModTime().Equal(msg.MTime) {
			return nil, fmt.Errorf("quarantine: %s (%s): %s: %w", e.ID, e.Key, msg.DirPath, ErrChanged)
		}
		if _, terr := d.Lstat(InQueue, target); terr == nil {
			return nil, fmt.Errorf("quarantine: %s (%s): %s: %w", e.ID, e.Key, target, ErrOccupied)
		}
		uid := opt.MaildropUID
		if uid == 0 {
			md, err := d.Lstat(InQueue, queue.Maildrop)
			if err != nil {
				return nil, fmt.Errorf("quarantine: %s: the target queue has no usable maildrop: %w", e.ID, err)
			}
			uid = int(statOf(md).Uid)
		}
		st := statOf(fi)
		if int(st.Uid) != uid {
			p.Steps = append(p.Steps, Step{Op: OpChown, Root: InDir, Path: msg.DirPath, UID: uid, GID: -1})
		}
		if unixMode(fi.Mode()) != 0o700 {
			p.Steps = append(p.Steps, Step{Op: OpChmod, Root: InDir, Path: msg.DirPath, Perm: 0o700})
		}
		p.Steps = append(p.Steps, Step{Op: OpMove, Root: InDir, Path: msg.DirPath, DestRoot: InQueue, Dest: target, Inode: msg.Inode})
		p.Steps = append(p.Steps, Step{Op: OpChtimes, Root: InQueue, Path: target, Atime: now, Mtime: now})
	case errors.Is(err, fs.ErrNotExist):
		tfi, terr := d.Lstat(InQueue, target)
		switch {
		case terr == nil && inode(tfi) == msg.Inode:
			p.Steps = append(p.Steps, Step{Op: OpChtimes, Root: InQueue, Path: target, Atime: now, Mtime: now})
		case e.State == StateRestoring && e.Into:
			// An interrupted restore after the move: pickup has already
			// taken the file (it removes it once cleanup has copied it).
		default:
			return nil, fmt.Errorf("quarantine: %s (%s): %s: %w", e.ID, e.Key, msg.DirPath, ErrMissing)
		}
	default:
		return nil, err
	}
	final.State = StateRestored
	done := final
	p.Steps = append(p.Steps, Step{Op: OpRecord, Payload: &done})
	p.Entry = final
	return p, nil
}

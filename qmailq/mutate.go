package qmailq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Mutations of one qmail message, made through a queue.Mutator rooted at the
// queue directory (a dry-run mutator records the plan; a fault injector can
// cut them at any step). They change files qmail-send keeps in memory, so the
// caller must hold lock/sendmutex (LockSend) for the whole run: qmail-send is
// then stopped and cannot start. qmail-smtpd and qmail-queue may still run;
// that is why a message that looks half-written is refused (ErrInProgress).

// Errors of the mutations. Test with errors.Is.
var (
	// ErrChanged: the message's files are not what was read: the mess file
	// was replaced or vanished, or the message moved between todo and
	// preprocessed. Nothing was done.
	ErrChanged = errors.New("message changed since it was read")
	// ErrInProgress: the message has neither todo nor info and its mess
	// file was modified less than OssifiedAge ago: qmail-queue may still
	// be writing it (qmail-send.c:cleanup_do waits the same 36 hours).
	// ActOptions.AllowYoungOrphan overrides.
	ErrInProgress = errors.New("message may still be being written by qmail-queue")
	// ErrWrongQueue: the action does not apply to a message in this state
	// (requeue or expire of a message not yet preprocessed, which
	// qmail-send handles at its next todo scan anyway).
	ErrWrongQueue = errors.New("action does not apply to a message in this state")
	// ErrNotRegular: a file at a message path is a directory, FIFO,
	// socket or device. Nothing was done.
	ErrNotRegular = errors.New("not a regular file at a message path")
)

// OssifiedAge is qmail-send.c's OSSIFIED (129600 s): how old an orphaned mess
// file must be before qmail itself removes it.
const OssifiedAge = 36 * time.Hour

// DefaultQueueLifetime is qmail-send's default queuelifetime (604800 s).
const DefaultQueueLifetime = 604800 * time.Second

// ActionError reports a refused or failed mutation, naming the action, the
// message id and the file concerned.
type ActionError struct {
	Action string
	ID     string
	Path   string
	Err    error
}

func (e *ActionError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("qmailq: %s %s: %v", e.Action, e.ID, e.Err)
	}
	return fmt.Sprintf("qmailq: %s %s (%s): %v", e.Action, e.ID, e.Path, e.Err)
}

func (e *ActionError) Unwrap() error { return e.Err }

// ActOptions tune the mutations.
type ActOptions struct {
	// Now is the current time for Requeue and Expire; zero means
	// time.Now().
	Now time.Time
	// Lifetime is qmail's queuelifetime for Expire; zero means
	// QueueLifetime(root).
	Lifetime time.Duration
	// AllowYoungOrphan lets Delete remove a message with neither todo nor
	// info whose mess is younger than OssifiedAge.
	AllowYoungOrphan bool
	// Unfinished gives, for a message ID, when an earlier delete by
	// qsurgeon started removing it without finishing (its journal's
	// started record with no outcome: the run was killed). A young
	// fragment whose mess has not changed since then is what that run
	// left: Delete finishes it. A mess changed later is someone else's.
	Unfinished func(id string) (started time.Time, ok bool)
}

func (o ActOptions) now() time.Time {
	if o.Now.IsZero() {
		return clock.Now()
	}
	return o.Now
}

// file is one existing file of a message at act time.
type file struct {
	loc  Location
	path string
	st   unix.Stat_t
}

// present is every file of a message found at act time, per part.
type present struct {
	id    uint64
	parts [numParts][]file
}

func (p *present) has(part Part) bool { return len(p.parts[part]) > 0 }

// lstat describes rel below the root without following a symbolic link.
func (q *Queue) lstat(rel string) (*unix.Stat_t, error) {
	dir, base := path.Split(rel)
	dfd, err := q.dirFD(path.Clean(dir))
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: path.Join(q.Root(), rel), Err: err}
	}
	var st unix.Stat_t
	if err := fstatatRetry(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: path.Join(q.Root(), rel), Err: err}
	}
	return &st, nil
}

// locate finds the files of message id as they are now: where qmail looks
// for each part (fmtqfn.c) and wherever the last Walk saw a copy (a wrong
// subdirectory, a directory beyond the split).
func (q *Queue) locate(action string, id uint64) (*present, error) {
	l := q.layout
	var locs []Location
	add := func(loc Location) {
		for _, x := range locs {
			if x == loc {
				return
			}
		}
		locs = append(locs, loc)
	}
	for _, p := range Parts {
		sub := Flat
		if l.IsSplit(p) {
			sub = l.Subdir(id)
		}
		add(Location{Part: p, Subdir: sub})
	}
	if inv := q.inv.Load(); inv != nil {
		for _, loc := range inv.Locations(id) {
			add(loc)
		}
	}
	pr := &present{id: id}
	ids := strconv.FormatUint(id, 10)
	for _, loc := range locs {
		rel := loc.Path(id)
		st, err := q.lstat(rel)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, &ActionError{Action: action, ID: ids, Path: rel, Err: err}
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG, unix.S_IFLNK:
			// A symbolic link is removed as such, never followed.
		default:
			return nil, &ActionError{Action: action, ID: ids, Path: rel, Err: ErrNotRegular}
		}
		pr.parts[loc.Part] = append(pr.parts[loc.Part], file{loc: loc, path: rel, st: *st})
	}
	return pr, nil
}

// verify locates msg's files and checks they are still the message that was
// read: the same mess file (inode, size, mtime) or still none, and the same
// state (todo or preprocessed).
func (q *Queue) verify(action string, msg *queue.Message) (*present, error) {
	id, ok := ParseID(msg.ID)
	if !ok || msg.MTA != queue.Qmail {
		return nil, &ActionError{Action: action, ID: msg.ID, Err: fmt.Errorf("not a qmail message id")}
	}
	pr, err := q.locate(action, id)
	if err != nil {
		return nil, err
	}
	fail := func(p, format string, args ...any) error {
		return &ActionError{Action: action, ID: msg.ID, Path: p, Err: fmt.Errorf("%w: "+format, append([]any{ErrChanged}, args...)...)}
	}
	if msg.Path != "" {
		var mess *file
		for i := range pr.parts[PartMess] {
			if pr.parts[PartMess][i].path == msg.Path {
				mess = &pr.parts[PartMess][i]
			}
		}
		switch {
		case mess == nil:
			return nil, fail(msg.Path, "mess file vanished")
		case msg.Inode == 0:
			// The reader could not open it (a symbolic link, never
			// followed): it must still not be a regular file.
			if mess.st.Mode&unix.S_IFMT == unix.S_IFREG {
				return nil, fail(msg.Path, "now a regular file")
			}
		case mess.st.Ino != msg.Inode:
			return nil, fail(msg.Path, "inode %d, read as %d", mess.st.Ino, msg.Inode)
		case mess.st.Size != msg.FileSize || !time.Unix(mess.st.Mtim.Unix()).Equal(msg.ModTime):
			return nil, fail(msg.Path, "size or mtime changed")
		}
	} else {
		// Read without a mess file: one now (not a symbolic link or
		// other odd entry the reader reported) is a new message.
		for _, f := range pr.parts[PartMess] {
			if f.st.Mode&unix.S_IFMT == unix.S_IFREG {
				return nil, fail(f.path, "a mess file appeared (a new message with this id?)")
			}
		}
	}
	if state := queueName(pr.has(PartInfo), pr.has(PartTodo)); msg.Queue != "" && state != msg.Queue {
		return nil, fail("", "now in %s, read in %s", state, msg.Queue)
	}
	return pr, nil
}

// deleteOrder is the crash-safe removal order (qmail-queue.md §5.9,
// qmail-send.c:messdone and qmail-clean.c). For a preprocessed message it
// is qmail's own elimination: bounce (so no stale bounce/N can be attached
// to a later message that gets this inode; qmail-send.c:todo_do never
// removes it), the channel files, info, then what qmail-clean removes for
// "foop/": intd, mess. Cut anywhere, qmail finishes the job itself: info
// without channel files is "done" at the next start and eliminated.
//
// For a message not yet preprocessed, todo goes first (qmail-send stops
// seeing it), then intd (qmail-clean's order for "todo/"), then any partial
// preprocessing output in the same order as above, then mess. Cut anywhere,
// the rest is a state qmail tolerates: mess (+intd) alone is cleaned by
// cleanup_do after 36 hours; info with mess is delivered normally.
func deleteOrder(pr *present) []Part {
	if pr.has(PartTodo) {
		return []Part{PartTodo, PartIntd, PartBounce, PartLocal, PartRemote, PartInfo, PartMess}
	}
	return []Part{PartBounce, PartLocal, PartRemote, PartInfo, PartIntd, PartMess}
}

// Delete removes every file of msg (as read by Read: its mess is
// re-verified first) in the crash-safe order of deleteOrder, every copy
// of each part (wrong subdirectories included), and always tries
// bounce/ID, a missing file being no error.
//
// A message with neither todo nor info whose mess is younger than
// OssifiedAge is refused with ErrInProgress: qmail-queue may be writing it.
func (q *Queue) Delete(m queue.Mutator, msg *queue.Message, opt ActOptions) error {
	const action = "delete"
	pr, err := q.verify(action, msg)
	if err != nil {
		return err
	}
	if !pr.has(PartTodo) && !pr.has(PartInfo) && !opt.AllowYoungOrphan {
		now := opt.now()
		var started time.Time
		var ours bool
		if opt.Unfinished != nil {
			started, ours = opt.Unfinished(msg.ID)
		}
		for _, f := range pr.parts[PartMess] {
			if f.st.Mode&unix.S_IFMT != unix.S_IFREG {
				continue
			}
			mtime, ctime := time.Unix(f.st.Mtim.Unix()), time.Unix(f.st.Ctim.Unix())
			if ours && !mtime.After(started) && !ctime.After(started) {
				continue // left by our own killed delete: ours to finish
			}
			age := now.Sub(mtime)
			if c := now.Sub(ctime); c < age {
				age = c
			}
			if age < OssifiedAge {
				return &ActionError{Action: action, ID: msg.ID, Path: f.path,
					Err: fmt.Errorf("%w (mess changed %s ago, no todo/ and no info/ entry)", ErrInProgress, age.Round(time.Second))}
			}
		}
	}
	bounce := q.layout.BouncePath(pr.id)
	for _, part := range deleteOrder(pr) {
		files := pr.parts[part]
		if part == PartBounce {
			found := false
			for _, f := range files {
				found = found || f.path == bounce
			}
			if !found {
				files = append(files, file{path: bounce})
			}
		}
		// The copy where qmail looks goes last, so that a cut leaves
		// the canonical file, which qmail sees, rather than a stray.
		canon := q.layout.Path(part, pr.id)
		for _, pass := range []bool{false, true} {
			for _, f := range files {
				if (f.path == canon) != pass {
					continue
				}
				if err := m.Remove(f.path); err != nil && !(part == PartBounce && f.path == bounce && errors.Is(err, fs.ErrNotExist)) {
					if errors.Is(err, fs.ErrNotExist) {
						err = fmt.Errorf("%w: vanished: %w", ErrChanged, err)
					}
					return &ActionError{Action: action, ID: msg.ID, Path: f.path, Err: err}
				}
			}
		}
	}
	return nil
}

// Requeue makes qmail-send try every pending recipient of msg as soon as it
// starts: it sets the mtime (and atime) of the local and remote channel
// files to now, as qmail-queue.md §5.8 describes (qmail-send.c:pqadd
// schedules each channel file at its mtime when it starts). Only for a
// preprocessed message: one still in todo/ is processed at start anyway
// (ErrWrongQueue). A message whose channel files are all done has none
// left; that is no error.
func (q *Queue) Requeue(m queue.Mutator, msg *queue.Message, opt ActOptions) error {
	const action = "requeue"
	pr, err := q.verify(action, msg)
	if err != nil {
		return err
	}
	if !pr.has(PartInfo) || pr.has(PartTodo) {
		return &ActionError{Action: action, ID: msg.ID, Err: fmt.Errorf("%w: not preprocessed (qmail-send processes todo/ at start)", ErrWrongQueue)}
	}
	now := opt.now().Truncate(time.Second)
	for _, part := range []Part{PartLocal, PartRemote} {
		for _, f := range pr.parts[part] {
			if f.st.Mode&unix.S_IFMT != unix.S_IFREG {
				continue
			}
			if err := m.Chtimes(f.path, now, now); err != nil {
				return &ActionError{Action: action, ID: msg.ID, Path: f.path, Err: err}
			}
		}
	}
	return nil
}

// Expire makes msg's next delivery attempt its last: the info mtime, which
// qmail-send takes as the message's birth, is set to now − lifetime − 1 s,
// so that qmail-send.c's "recent > birth + lifetime" test holds and
// temporary failures turn into bounces (qmail-queue.md §5.8). The atime is
// left alone. The attempt itself happens at the channel files' next retry
// time; call Requeue as well to have it at the next start.
func (q *Queue) Expire(m queue.Mutator, msg *queue.Message, opt ActOptions) error {
	const action = "expire"
	pr, err := q.verify(action, msg)
	if err != nil {
		return err
	}
	if !pr.has(PartInfo) || pr.has(PartTodo) {
		return &ActionError{Action: action, ID: msg.ID, Err: fmt.Errorf("%w: not preprocessed", ErrWrongQueue)}
	}
	life := opt.Lifetime
	if life <= 0 {
		if life, err = QueueLifetime(q.Root()); err != nil {
			return &ActionError{Action: action, ID: msg.ID, Err: err}
		}
	}
	birth := opt.now().Truncate(time.Second).Add(-life - time.Second)
	for _, f := range pr.parts[PartInfo] {
		if f.st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		if err := m.Chtimes(f.path, time.Time{}, birth); err != nil {
			return &ActionError{Action: action, ID: msg.ID, Path: f.path, Err: err}
		}
	}
	return nil
}

// QueueLifetime reads control/queuelifetime next to the queue directory
// (root/../control, qmail's layout: /var/qmail/queue and
// /var/qmail/control), as qmail-send.c:getcontrols does with
// control.c:control_readint: the leading digits of the first line, and
// DefaultQueueLifetime when the file does not exist or does not start with
// a digit (control_readint then returns 0 and qmail keeps its default).
func QueueLifetime(root string) (time.Duration, error) {
	p := filepath.Join(filepath.Dir(filepath.Clean(root)), "control", "queuelifetime")
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultQueueLifetime, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return 0, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == 0 {
		return DefaultQueueLifetime, nil
	}
	if n > 12 {
		return 0, fmt.Errorf("qmailq: %s: number too large: %q", p, b[:n])
	}
	v, _ := strconv.ParseInt(string(b[:n]), 10, 64)
	return time.Duration(v) * time.Second, nil
}

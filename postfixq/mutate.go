package postfixq

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/queue"
)

// The mutations below do to one message exactly what postsuper does to one
// queue ID (postsuper/postsuper.c: delete_one, hold_one, release_one,
// requeue_one, and -e), through a queue.Mutator rooted at the queue
// directory, so that a dry-run mutator records the plan and a fault injector
// can cut an action at any step. Before acting each one re-verifies that the
// file it read is still there (same path, same inode, still a ready regular
// file: global/mail_open_ok.c), because short queue IDs are reused.
//
// Differences from postsuper, all on the safe side: a rename never replaces
// an existing file (postsuper's rename(2) would), a message in active/ is
// refused while master runs (ActOptions.UnsafeActive overrides), and a file
// whose inode changed since it was read is skipped with ErrChanged instead of
// being acted on by name.

// Errors of the mutations. Test with errors.Is.
var (
	// ErrChanged: the message file vanished, was replaced (other inode) or
	// is no longer a ready queue file since it was read. Nothing was done.
	ErrChanged = queue.ErrChanged
	// ErrActiveLive: the message is in active/ and the Postfix master
	// runs; qmgr owns active files (doc §7 rule 3). Nothing was done.
	ErrActiveLive = errors.New("message is in the active queue while Postfix is running")
	// ErrWrongQueue: the action does not apply to a message in this queue
	// (hold from hold or maildrop, release from anything but hold, requeue
	// or expire from maildrop, or a queue that holds no messages).
	ErrWrongQueue = fmt.Errorf("%w to this queue", queue.ErrWrongQueue)
	// ErrNotRead: the Message lacks what re-verification needs (ID, path,
	// inode), or its path does not match its queue and ID.
	ErrNotRead = errors.New("message was not read from this queue")
)

// ActionError reports a mutation that was refused or failed, naming the
// action, the queue ID and the path: queue.ActionError with Format
// "postfixq".
type ActionError = queue.ActionError

// ActOptions say what the caller knows about the running system.
type ActOptions struct {
	// MasterRunning: a Postfix master runs on this queue directory
	// (MasterRunning). Messages in active/ are then refused.
	MasterRunning bool
	// UnsafeActive acts on active/ even while master runs, as postsuper
	// would (qmgr keeps the message in memory; see doc §4.2).
	UnsafeActive bool
	// Now is the time Requeue stamps (postsuper: utime(path, now));
	// zero means clock.Now().
	Now time.Time
}

// messageQueues are the queues postsuper acts on by ID (MESSAGE_QUEUE:
// expected mode MAIL_QUEUE_STAT_READY).
var messageQueues = map[string]bool{
	queue.Maildrop: true, queue.Incoming: true, queue.Active: true,
	queue.Deferred: true, queue.Hold: true,
}

// Lstat describes a path below the queue root without following a
// symbolic link (the read side of the re-verification; callers may use it
// too). The result's Sys() is a *unix.Stat_t.
func (s *Spool) Lstat(rel string) (*unix.Stat_t, error) {
	// One openat2 for the whole path: a missing file (the common case
	// when looking a queue ID up queue by queue) costs one system call.
	// O_PATH|O_NOFOLLOW gives a descriptor of a final symbolic link
	// itself, which fstat then reports as one.
	fd, err := s.openBeneath(rel, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: path.Join(s.root, rel), Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: path.Join(s.root, rel), Err: err}
	}
	return &st, nil
}

// begin refuses a message in a queue the action does not apply to
// (wrongQueue) and then verifies it is still the file that was read.
func (s *Spool) begin(action string, msg *queue.Message, opt ActOptions, wrongQueue bool) (*unix.Stat_t, error) {
	if wrongQueue {
		return nil, &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: msg.Path, Err: fmt.Errorf("%w: %s", ErrWrongQueue, msg.Queue)}
	}
	return s.verify(action, msg, opt)
}

// verify re-checks msg against the file system and returns its current
// stat. It applies postsuper's mail_open_ok test (regular file, owner bits
// rwx) plus the inode comparison postsuper cannot make.
func (s *Spool) verify(action string, msg *queue.Message, opt ActOptions) (*unix.Stat_t, error) {
	fail := func(err error) error {
		return &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: msg.Path, Err: err}
	}
	if msg.ID == "" || msg.Path == "" || msg.Inode == 0 || !ValidName(msg.ID) {
		return nil, fail(ErrNotRead)
	}
	if err := checkRel(msg.Path); err != nil {
		return nil, fail(fmt.Errorf("%w: %v", ErrNotRead, err))
	}
	q, _, _ := strings.Cut(msg.Path, "/")
	if q != msg.Queue || path.Base(msg.Path) != msg.ID {
		return nil, fail(fmt.Errorf("%w: path %s is not %s/.../%s", ErrNotRead, msg.Path, msg.Queue, msg.ID))
	}
	if !messageQueues[q] {
		return nil, fail(fmt.Errorf("%w: %s holds no messages postsuper acts on", ErrWrongQueue, q))
	}
	if q == queue.Active && opt.MasterRunning && !opt.UnsafeActive {
		return nil, fail(ErrActiveLive)
	}
	st, err := s.Lstat(msg.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fail(fmt.Errorf("%w: vanished: %w", ErrChanged, err))
		}
		return nil, fail(err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fail(fmt.Errorf("%w: no longer a regular file", ErrChanged))
	case st.Ino != msg.Inode:
		return nil, fail(fmt.Errorf("%w: inode %d, read as %d (queue ID reused?)", ErrChanged, st.Ino, msg.Inode))
	case st.Mode&unix.S_IRWXU != unix.S_IRWXU:
		return nil, fail(fmt.Errorf("%w: mode %04o is not ready", ErrChanged, st.Mode&0o7777))
	case st.Nlink != 1:
		// Postfix creates, renames and removes queue files, never links
		// them: a second link is a file from elsewhere (possibly outside
		// the queue) under a queue name, and acting on it would change
		// that file.
		return nil, fail(fmt.Errorf("%w: %d hard links (a Postfix queue file has one)", ErrChanged, st.Nlink))
	}
	return st, nil
}

// WarmLogs looks up the bounce, defer and trace logs of queue ID id (an
// lstat each, by the same confined path lookup Delete's unlinks take) and
// changes nothing: a delete that follows finds their directory entries and
// inodes in the kernel's cache instead of reading them from disk one
// unlink at a time. Missing logs are the common case and not an error.
func (s *Spool) WarmLogs(id string) {
	if !ValidName(id) {
		return
	}
	for _, svc := range []string{LogBounce, LogDefer, LogTrace} {
		_, _ = s.Lstat(s.LogPath(svc, id))
	}
}

// Delete removes a message the way postsuper -d does (delete_one): the
// bounce, defer and trace logfiles first (hashed paths, ENOENT ignored), so
// that no log outlives its message, then the message file. Any message
// queue, maildrop included.
func (s *Spool) Delete(m queue.Mutator, msg *queue.Message, opt ActOptions) error {
	const action = "delete"
	if _, err := s.verify(action, msg, opt); err != nil {
		return err
	}
	// postsuper.c log_queue_names order: bounce, defer, trace.
	for _, svc := range []string{LogBounce, LogDefer, LogTrace} {
		p := s.LogPath(svc, msg.ID)
		if err := m.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: p, Err: err}
		}
	}
	if err := m.Remove(msg.Path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: vanished: %w", ErrChanged, err)
		}
		return &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: msg.Path, Err: err}
	}
	return nil
}

// Hold moves a message from incoming, active or deferred to hold/ID
// (postsuper -h, hold_one): one rename, same inode, logs untouched. Never
// from maildrop (unsanitized mail) nor hold.
func (s *Spool) Hold(m queue.Mutator, msg *queue.Message, opt ActOptions) error {
	const action = "hold"
	st, err := s.begin(action, msg, opt, msg.Queue == queue.Maildrop || msg.Queue == queue.Hold)
	if err != nil {
		return err
	}
	return s.move(m, action, msg, queue.Hold, st)
}

// Release moves a held message to deferred (postsuper -H, release_one),
// hashed as the deferred queue is. The mtime is left alone, as postsuper
// leaves it; the defer log stays.
func (s *Spool) Release(m queue.Mutator, msg *queue.Message, opt ActOptions) error {
	const action = "release"
	st, err := s.begin(action, msg, opt, msg.Queue != queue.Hold)
	if err != nil {
		return err
	}
	return s.move(m, action, msg, queue.Deferred, st)
}

// Requeue moves a message from hold, incoming, active or deferred to
// maildrop/ID and sets its access and modification times to now
// (postsuper -r, requeue_one). pickup and cleanup then resubmit it under a
// new ID. Like postsuper it leaves the logs alone ("to avoid losing a race
// where the queue manager decides to bounce mail").
func (s *Spool) Requeue(m queue.Mutator, msg *queue.Message, opt ActOptions) error {
	const action = "requeue"
	st, err := s.begin(action, msg, opt, msg.Queue == queue.Maildrop)
	if err != nil {
		return err
	}
	if err := s.move(m, action, msg, queue.Maildrop, st); err != nil {
		return err
	}
	now := opt.Now
	if now.IsZero() {
		now = clock.Now()
	}
	now = now.Truncate(time.Second) // utime(2) has whole seconds
	dst := s.MessagePath(queue.Maildrop, msg.ID)
	var terr error
	if v, ok := m.(safefs.Verified); ok {
		terr = v.ChtimesFile(dst, now, now, st.Ino) // the file just moved, by descriptor
	} else {
		terr = m.Chtimes(dst, now, now)
	}
	if err := terr; err != nil {
		// postsuper only warns here ("reset time stamps"); the message is
		// requeued all the same, but the caller should know.
		return &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: dst, Err: fmt.Errorf("requeued, but resetting its time stamps failed: %w", err)}
	}
	return nil
}

// Expire sets the group-execute bit on a message (postsuper -e:
// MAIL_QUEUE_STAT_EXPIRE), through an O_NOFOLLOW descriptor, keeping every
// other mode bit; qmgr then returns it to the sender at its next attempt.
// Not in maildrop. A message already expired is left as it is.
func (s *Spool) Expire(m queue.Mutator, msg *queue.Message, opt ActOptions) error {
	const action = "expire"
	st, err := s.begin(action, msg, opt, msg.Queue == queue.Maildrop)
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IXGRP != 0 {
		return nil
	}
	var err2 error
	if v, ok := m.(safefs.Verified); ok {
		// fchmod of the verified inode, never of whatever has the name.
		err2 = v.ChmodFile(msg.Path, safefs.FileMode(st.Mode|unix.S_IXGRP), st.Ino)
	} else {
		err2 = m.Chmod(msg.Path, safefs.FileMode(st.Mode|unix.S_IXGRP))
	}
	if err2 != nil {
		return &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: msg.Path, Err: notVerified(err2)}
	}
	return nil
}

// move renames msg into queue dstQueue under its ID, creating missing
// queue and hash directories 0700 with the message's owner first, as
// postsuper's postrename does with mail_queue_mkdirs (it runs as
// mail_owner). The rename never replaces an existing file.
func (s *Spool) move(m queue.Mutator, action string, msg *queue.Message, dstQueue string, st *unix.Stat_t) error {
	dst := s.MessagePath(dstQueue, msg.ID)
	if dstQueue != queue.Maildrop { // maildrop (mode 1730, group postdrop) is never created here
		dir := path.Dir(dst)
		var missing []string
		for d := dir; d != "."; d = path.Dir(d) {
			if _, err := s.Lstat(d); err == nil {
				break
			} else if !errors.Is(err, fs.ErrNotExist) {
				return &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: d, Err: err}
			}
			missing = append(missing, d)
		}
		for i := len(missing) - 1; i >= 0; i-- {
			if err := m.Mkdir(missing[i], 0o700, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrExist) {
				return &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: missing[i], Err: err}
			}
		}
	}
	var err error
	if v, ok := m.(safefs.Verified); ok {
		err = v.RenameFile(msg.Path, dst, st.Ino)
	} else {
		err = m.Rename(msg.Path, dst)
	}
	if err != nil {
		err = notVerified(err)
		if errors.Is(err, fs.ErrNotExist) {
			if _, lerr := s.Lstat(msg.Path); errors.Is(lerr, fs.ErrNotExist) {
				err = fmt.Errorf("%w: vanished: %w", ErrChanged, err)
			}
		}
		return &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: msg.Path, Err: err}
	}
	return nil
}

// notVerified makes a safefs refusal to act on a file that is no longer
// the verified one an ErrChanged (the message is skipped, not failed).
func notVerified(err error) error {
	if errors.Is(err, safefs.ErrNotVerified) {
		return fmt.Errorf("%w: %w", ErrChanged, err)
	}
	return err
}

package postfixq

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/queue"
)

// Re-injection from a detached queue (the seed 000 move: the flooded queue
// directory was swapped out for an empty one, and only the legitimate mail
// is to be sent again through the live instance).
//
// The message goes into the live maildrop/ as a complete queue file, the way
// postsuper -r puts one there (postsuper/postsuper.c:requeue_one: rename to
// maildrop/ID, then utime now). pickup (pickup/pickup.c:pickup_service)
// takes every maildrop entry that passes mail_open_ok
// (global/mail_open_ok.c: mail_queue_id_ok name, regular file, owner bits
// rwx); it never compares a maildrop name with the file's inode. It treats
// the file as requeued, i.e. trusts its C record and envelope, when
// MAIL_IS_REQUEUED holds (pickup.c: st_uid == var_owner_uid and no S_IROTH
// bit), so the file must be owned by mail_owner with mode 0700. cleanup
// then gives the message a new queue ID, keeps the first T (arrival) and W,
// writes a new create_time and drops the D and / recipients
// (postfix-queue.md §2 "Maildrop file vs queue file").
//
// postsuper -s (run by every `postfix start` and `postfix reload`) does
// compare maildrop names with inodes (postsuper.c:super: maildrop is a
// MESSAGE_QUEUE), so a copied file is named after its own new inode, as
// global/mail_queue.c:mail_queue_enter names every file it creates.
//
// The defer/bounce/trace logs of the detached message are not carried: they
// belong to the old ID in the old queue, and the live queue may use that ID.

// DefaultMaxCopy is the largest message file IntoMaildrop copies (when it
// cannot move) unless IntoOptions.MaxCopy says otherwise. The copy is held
// in memory once.
const DefaultMaxCopy = 1 << 30

// ErrTooLarge: the message file is larger than IntoOptions.MaxCopy and would
// have to be copied. Nothing was done.
var ErrTooLarge = errors.New("message file too large to copy")

// IntoOptions tune IntoMaildrop.
type IntoOptions struct {
	// Move moves a file from the detached queue (srcRel, relative to its
	// root) to the live queue (dstRel, relative to the live root) keeping
	// its inode and never replacing dstRel: the CLI passes a closure over
	// safefs.MoveBetween, or a recorder in a dry run. It is used only when
	// both queues are on one filesystem and the file is already owned by
	// mail_owner with a mode pickup accepts as requeued; otherwise, or when
	// Move is nil, the message is copied and the detached file stays.
	Move func(srcRel, dstRel string) error
	// OwnerUID and OwnerGID are the live instance's mail_owner. Zero (root
	// can never be mail_owner: postfix-script refuses it) means the owner
	// of the live maildrop/ directory (postfix, 1730 postfix:postdrop) and
	// the group of the live incoming/ directory (0700 postfix:postfix).
	OwnerUID, OwnerGID int
	// LongIDs names a copied file with a long queue ID
	// (enable_long_queue_ids = yes in the live instance).
	LongIDs bool
	// SourceMasterRunning: a master runs on the detached queue directory
	// (MasterRunning); a message in its active/ is then refused.
	SourceMasterRunning bool
	// MaxCopy caps the size of a copied file; 0 means DefaultMaxCopy.
	MaxCopy int64
	// Now stamps the file (postsuper -r: utime now) and a copy's queue ID;
	// zero means clock.Now().
	Now time.Time
}

// Into reports what IntoMaildrop did with one message.
type Into struct {
	// ID is the file's name in the live maildrop/; pickup and cleanup give
	// the message yet another queue ID when they take it. Empty when a dry
	// run could not know the new file's inode.
	ID string
	// Path is "maildrop/ID" relative to the live root.
	Path string
	// Moved: the file was renamed into the live queue (same inode) and has
	// left the detached queue. Otherwise it was copied and is still there.
	Moved bool
}

// IntoMaildrop puts msg, read from the detached queue s, into the live
// queue's maildrop/ as postsuper -r would have put it there, so that the
// live pickup re-injects it under a new queue ID. live is the live queue
// (read side: owners, inodes) and m the Mutator rooted at the live queue
// directory through which every change goes (dry run, fault injection).
// One call handles one message; rate limiting is the caller's.
//
// A file that is already a requeue candidate (owner mail_owner, no S_IROTH,
// ready) on the live filesystem is moved with opt.Move, keeping its ID
// (which encodes its inode) and getting its times set to now. Any other
// file is copied: written as maildrop/<usec>.<pid>.qsurgeon with mode 0600
// (a name pickup skips: mail_queue_id_ok refuses '.'), fsynced, chmod 0700,
// then renamed without replacing to a queue ID made of the time and its
// own inode. A crash before that rename leaves only the dot-named file,
// which pickup never opens. A maildrop file of the detached queue (a
// postdrop submission, not a queue file) keeps its owner and mode, so that
// pickup treats it as the new submission it still is.
func (s *Spool) IntoMaildrop(live *Spool, m queue.Mutator, msg *queue.Message, opt IntoOptions) (Into, error) {
	const action = "into-maildrop"
	fail := func(p string, err error) (Into, error) {
		return Into{}, &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: p, Err: err}
	}
	st, err := s.verify(action, msg, ActOptions{MasterRunning: opt.SourceMasterRunning})
	if err != nil {
		return Into{}, err
	}
	now := opt.Now
	if now.IsZero() {
		now = clock.Now()
	}
	md, err := live.Lstat(queue.Maildrop)
	if err != nil {
		return fail(queue.Maildrop, fmt.Errorf("live queue has no usable maildrop: %w", err))
	}
	if md.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fail(queue.Maildrop, errors.New("live maildrop is not a directory"))
	}
	uid, gid := opt.OwnerUID, opt.OwnerGID
	if uid == 0 {
		uid = int(md.Uid)
	}
	if gid == 0 {
		if in, err := live.Lstat(queue.Incoming); err == nil && in.Mode&unix.S_IFMT == unix.S_IFDIR {
			gid = int(in.Gid)
		} else {
			gid = -1
		}
	}

	// What the file must look like in the live maildrop.
	fromMaildrop := msg.Queue == queue.Maildrop
	wantUID, wantGID, wantMode := uid, gid, uint32(0o700)
	if fromMaildrop {
		wantUID, wantGID, wantMode = int(st.Uid), int(st.Gid), st.Mode&0o7777
	}
	requeued := int(st.Uid) == uid && st.Mode&unix.S_IROTH == 0
	movable := opt.Move != nil && st.Dev == md.Dev && (fromMaildrop || requeued)

	if movable {
		id := msg.ID
		if ino, err := IDInode(id); err != nil || ino != st.Ino {
			id = s.newID(now, st.Ino, opt.LongIDs)
		}
		dst := path.Join(queue.Maildrop, id)
		if err := opt.Move(msg.Path, dst); err != nil {
			return fail(msg.Path, err)
		}
		t := now.Truncate(time.Second) // utime(2) has whole seconds
		if err := m.Chtimes(dst, t, t); err != nil {
			// postsuper only warns here ("reset time stamps").
			return Into{ID: id, Path: dst, Moved: true}, &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: dst,
				Err: fmt.Errorf("moved into maildrop, but resetting its time stamps failed: %w", err)}
		}
		return Into{ID: id, Path: dst, Moved: true}, nil
	}

	data, err := s.readWhole(msg, st, opt.MaxCopy)
	if err != nil {
		return fail(msg.Path, err)
	}
	usec := now.Nanosecond() / 1000
	tmp := path.Join(queue.Maildrop, fmt.Sprintf("%d.%d.qsurgeon", usec, os.Getpid()))
	if err := m.Create(tmp, data, 0o600, wantUID, wantGID); err != nil {
		return fail(tmp, err)
	}
	undo := func() { m.Remove(tmp) }
	var ino uint64
	known := true
	if tst, err := live.Lstat(tmp); err == nil {
		ino = tst.Ino
	} else if errors.Is(err, fs.ErrNotExist) {
		known = false // a recording Mutator: nothing was created
	} else {
		undo()
		return fail(tmp, err)
	}
	id := s.newID(now, ino, opt.LongIDs)
	dst := path.Join(queue.Maildrop, id)
	// mail_stream.c:mail_stream_finish_file: fchmod to the ready mode only
	// once the content is complete.
	if err := m.Chmod(tmp, safefs.FileMode(wantMode)); err != nil {
		undo()
		return fail(tmp, err)
	}
	if err := m.Rename(tmp, dst); err != nil {
		undo()
		return fail(tmp, err)
	}
	if !known {
		id = ""
	}
	return Into{ID: id, Path: dst}, nil
}

// newID makes a queue ID for a file created now with inode ino, as
// global/mail_queue.c:mail_queue_enter does.
func (s *Spool) newID(now time.Time, ino uint64, long bool) string {
	usec := now.Nanosecond() / 1000
	if long {
		return NewLongID(now.Unix(), usec, ino)
	}
	return NewShortID(usec, ino)
}

// readWhole reads msg's file completely, re-checking that it is still the
// inode that was verified.
func (s *Spool) readWhole(msg *queue.Message, want *unix.Stat_t, max int64) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxCopy
	}
	f, st, err := s.openFile(msg.Path)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != want.Ino || st.Dev != want.Dev {
		return nil, fmt.Errorf("%w: replaced while being opened", ErrChanged)
	}
	if st.Size > max {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, st.Size, max)
	}
	data := make([]byte, st.Size)
	n, err := f.ReadAt(data, 0)
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == st.Size) {
		return nil, fmt.Errorf("read: %w", err)
	}
	// A file that grew since fstat is not what was verified.
	var one [1]byte
	if k, _ := f.ReadAt(one[:], st.Size); k != 0 {
		return nil, fmt.Errorf("%w: grew while being read", ErrChanged)
	}
	return data, nil
}

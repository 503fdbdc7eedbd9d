package postfixq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/queue"
)

// WalkOrder is the order in which Walk visits the message queues: showq's
// order (showq/showq.c: maildrop, active, incoming, deferred, hold; the
// shared doc §6 for 3.7), then corrupt and saved, which showq never lists.
var WalkOrder = []string{
	queue.Maildrop, queue.Active, queue.Incoming, queue.Deferred, queue.Hold,
	queue.Corrupt, queue.Saved,
}

// logDirs are the bounce(8) logfile directories.
var logDirs = []string{LogDefer, LogBounce, LogTrace}

// Note kinds: why Walk skipped a directory entry.
const (
	// NoteInProgress: a queue file whose owner bits are not rwx, i.e.
	// still being written (global/mail_open_ok.c). Left alone.
	NoteInProgress = "in progress"
	// NoteSymlink: a symbolic link, never followed (file or hash dir).
	NoteSymlink = "symbolic link"
	// NoteNotRegular: a FIFO, socket, device, ...
	NoteNotRegular = "not a regular file"
	// NoteBadName: a name mail_queue_id_ok refuses (other than a
	// temporary name).
	NoteBadName = "bad file name"
	// NoteTemporary: "usec.pid" files being created
	// (mail_queue.c:mail_queue_enter) and postsuper's "ID#FIX" names.
	NoteTemporary = "temporary file"
	// NoteUnexpectedDir: a directory that is not a one-character hash
	// directory (or any directory in maildrop, which is never hashed).
	NoteUnexpectedDir = "unexpected directory"
	// NoteUnreadable: a directory or entry that could not be read.
	NoteUnreadable = "unreadable"
)

// Note reports a directory entry Walk did not turn into a message, so that
// a command can show it; nothing is ever done to such an entry.
type Note struct {
	Path   string // relative to the queue root
	Kind   string // one of the Note* constants
	Detail string
}

// Options configure Open.
type Options struct {
	// Config, when set, decides which directories are hashed and how deep
	// (hash_queue_names, hash_queue_depth), e.g. from LoadConfig. When nil
	// the hashing is discovered from the tree itself.
	Config *Config
	// OnNote is called by Walk (from the walking goroutine) for every
	// entry it skips. May be nil.
	OnNote func(Note)
	// SkipLogs makes Read leave the defer and bounce logs alone: no
	// delay/bounce reasons and no Bouncing flag, two opens fewer per
	// message. For selections that need neither; AttachLogs adds them to
	// a message later.
	SkipLogs bool
	// SkipAttrs makes Read leave Message.Attrs nil; the well-known
	// attributes (SASL user, client, HELO, create_time) are still read.
	SkipAttrs bool
}

// Spool is a Postfix queue directory read directly from disk. It
// implements queue.Source. Its methods may be called concurrently, except
// that one Walk should run at a time per OnNote callback.
type Spool struct {
	root   string
	rootFD int
	depth  map[string]int
	opts   Options
}

var _ queue.Source = (*Spool)(nil)

// Open opens the queue directory root (the instance's queue_directory).
// Hashing comes from opts.Config when given. Otherwise it follows Postfix's
// defaults (hash_queue_names = deferred, defer; hash_queue_depth = 1) unless
// the tree shows consistently that a directory is hashed otherwise: queue
// files only inside one-character subdirectories (at the depth they are
// found) make it hashed, queue files only at its top make it flat. An empty
// or stray subdirectory proves nothing: the postfix user can mkdir hold/0,
// and taking that for hashing would write held mail where Postfix (which
// opens a message by the path hash_queue_names gives) never looks.
// Close releases the directory descriptor.
func Open(root string, opts Options) (*Spool, error) {
	fd, err := safefs.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	s := &Spool{root: root, rootFD: fd, depth: make(map[string]int), opts: opts}
	all := append(append([]string{}, WalkOrder...), logDirs...)
	if c := opts.Config; c != nil {
		for _, d := range all {
			if d == queue.Maildrop {
				continue // postsuper: "maildrop queue must not be hashed"
			}
			for _, n := range c.HashQueueNames {
				if strings.EqualFold(n, d) {
					s.depth[d] = c.HashQueueDepth
				}
			}
		}
		return s, nil
	}
	unknown := map[string]bool{}
	found := 0
	for _, d := range all {
		if d == queue.Maildrop {
			continue
		}
		depth, known := s.probeDepth(d)
		if !known {
			unknown[d] = true
			continue
		}
		s.depth[d] = depth
		found = max(found, depth)
	}
	if found == 0 {
		found = 1
	}
	for d := range unknown {
		// global/mail_params.h DEF_HASH_QUEUE_NAMES "deferred, defer".
		if d == queue.Deferred || d == LogDefer {
			s.depth[d] = found
		}
	}
	return s, nil
}

// probeDepth looks at up to probeLimit entries below dir for queue files
// (regular files with a queue ID for a name). Files only at the top: flat
// (known). Files only inside one-character subdirectories: hashed as deep
// as the first one found (known). Both, or none: not known, and Open
// applies Postfix's default.
func (s *Spool) probeDepth(dir string) (depth int, known bool) {
	budget := 4096
	top, sub := s.probeFiles(dir, 0, &budget)
	switch {
	case top && sub < 0:
		return 0, true
	case !top && sub > 0:
		return sub, true
	}
	return 0, false
}

// probeFiles reports whether dir holds queue files itself and the depth
// (relative to the probed queue directory) of the first queue file found in
// a one-character subdirectory, -1 when none.
func (s *Spool) probeFiles(dir string, level int, budget *int) (top bool, sub int) {
	sub = -1
	if level > 8 || *budget <= 0 {
		return false, -1
	}
	f, err := s.openDir(dir)
	if err != nil {
		return false, -1
	}
	defer f.Close()
	var subdirs []string
	for *budget > 0 {
		ents, err := f.ReadDir(256)
		for _, e := range ents {
			*budget--
			name := e.Name()
			switch {
			case len(name) == 1 && e.Type()&fs.ModeType == fs.ModeDir:
				subdirs = append(subdirs, name)
			case e.Type().IsRegular() && ValidName(name):
				top = true
			}
		}
		if err != nil || len(ents) == 0 {
			break
		}
	}
	for _, d := range subdirs {
		t, sd := s.probeFiles(dir+"/"+d, level+1, budget)
		if t {
			return top, level + 1
		}
		if sd > 0 {
			return top, sd
		}
		if *budget <= 0 {
			break
		}
	}
	return top, -1
}

// Close releases the root directory descriptor.
func (s *Spool) Close() error {
	if s.rootFD < 0 {
		return nil
	}
	err := unix.Close(s.rootFD)
	s.rootFD = -1
	return err
}

// MTA returns queue.Postfix.
func (s *Spool) MTA() queue.MTA { return queue.Postfix }

// Root returns the queue directory.
func (s *Spool) Root() string { return s.root }

// HashDepth returns how many hash levels dir ("deferred", "defer", ...)
// uses: 0 for a flat directory.
func (s *Spool) HashDepth(dir string) int { return s.depth[dir] }

// MessagePath returns the path of a message file relative to the root,
// hashed as global/mail_queue.c:mail_queue_path would: "deferred/7/7A6D1BE4D7".
func (s *Spool) MessagePath(queueName, id string) string {
	return queueName + "/" + HashDir(id, s.depth[queueName]) + id
}

// LogPath returns the path of a defer/bounce/trace logfile relative to the
// root: hashed like its directory ("defer/7/7A6D1BE4D7", "bounce/7A6D1BE4D7").
func (s *Spool) LogPath(service, id string) string {
	return service + "/" + HashDir(id, s.depth[service]) + id
}

func (s *Spool) note(n Note) {
	if s.opts.OnNote != nil {
		s.opts.OnNote(n)
	}
}

// Walk lists the messages of every queue in WalkOrder, descending into
// every one-character subdirectory (global/mail_scan_dir.c, postsuper.c)
// except in maildrop, which Postfix never hashes. It reads directories in
// chunks and never builds a whole-queue list. It reports only regular
// files with a valid name whose owner bits are rwx; everything else goes
// to Options.OnNote and is left alone. Missing queue directories are
// skipped silently.
func (s *Spool) Walk(ctx context.Context, fn func(queue.Ref) error) error {
	for _, q := range WalkOrder {
		if err := s.walkDir(ctx, q, q, q != queue.Maildrop, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Spool) walkDir(ctx context.Context, q, dir string, hashed bool, fn func(queue.Ref) error) error {
	f, err := s.openDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && dir == q {
			return nil
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			s.note(Note{Path: dir, Kind: NoteSymlink, Detail: "directory is a symbolic link; not descended"})
			return nil
		}
		s.note(Note{Path: dir, Kind: NoteUnreadable, Detail: err.Error()})
		return nil
	}
	defer f.Close()
	dfd := int(f.Fd())
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, rerr := f.ReadDir(512)
		for _, e := range ents {
			name := e.Name()
			rel := dir + "/" + name
			typ := e.Type()
			switch {
			case typ&fs.ModeSymlink != 0:
				s.note(Note{Path: rel, Kind: NoteSymlink, Detail: "never followed"})
				continue
			case typ.IsDir():
				if hashed && len(name) == 1 {
					if err := s.walkDir(ctx, q, rel, true, fn); err != nil {
						return err
					}
				} else {
					s.note(Note{Path: rel, Kind: NoteUnexpectedDir})
				}
				continue
			case strings.ContainsAny(name, ".#"):
				s.note(Note{Path: rel, Kind: NoteTemporary})
				continue
			case !ValidName(name):
				s.note(Note{Path: rel, Kind: NoteBadName})
				continue
			case typ.IsRegular():
				// d_type says regular: Read's fstat of the opened file
				// checks the owner bits (mail_open_ok.c) and reports a
				// file still being written as queue.ErrNotReady, so no
				// lstat here (one system call fewer per message).
				if err := fn(queue.Ref{Queue: q, ID: name, Path: rel}); err != nil {
					return err
				}
				continue
			}
			var st unix.Stat_t
			if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if err != unix.ENOENT { // vanished: not worth a note
					s.note(Note{Path: rel, Kind: NoteUnreadable, Detail: err.Error()})
				}
				continue
			}
			if st.Mode&unix.S_IFMT != unix.S_IFREG {
				s.note(Note{Path: rel, Kind: NoteNotRegular})
				continue
			}
			if st.Mode&0o700 != 0o700 {
				s.note(Note{Path: rel, Kind: NoteInProgress, Detail: fmt.Sprintf("mode %04o", st.Mode&0o7777)})
				continue
			}
			if err := fn(queue.Ref{Queue: q, ID: name, Path: rel}); err != nil {
				return err
			}
		}
		if rerr != nil || len(ents) == 0 {
			if rerr != nil && rerr != io.EOF {
				s.note(Note{Path: dir, Kind: NoteUnreadable, Detail: rerr.Error()})
			}
			return nil
		}
	}
}

// checkRel refuses a path that is not a plain relative path inside the
// root: no "..", no empty or "." elements, not absolute.
func checkRel(rel string) error {
	if strings.IndexByte(rel, 0) >= 0 {
		return fmt.Errorf("postfixq: bad queue path %q", rel)
	}
	for rest := rel; ; { // no allocation: this runs for every file read
		el, more, found := strings.Cut(rest, "/")
		if el == ".." || el == "." || el == "" {
			return fmt.Errorf("postfixq: bad queue path %q", rel)
		}
		if !found {
			return nil
		}
		rest = more
	}
}

// openBeneath opens rel below the root without following any symbolic
// link on the way (safefs.OpenBeneath).
func (s *Spool) openBeneath(rel string, flags int) (int, error) {
	if err := checkRel(rel); err != nil {
		return -1, err
	}
	return safefs.OpenBeneath(s.rootFD, rel, flags, 0)
}

func (s *Spool) openDir(rel string) (*os.File, error) {
	fd, err := s.openBeneath(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(s.root, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(s.root, rel)), nil
}

// openFile opens a queue or log file for reading and fstats it
// (safefs.OpenRegular: O_NOFOLLOW, O_NONBLOCK, O_NOATIME when permitted).
// Anything but a regular file is refused without blocking: a FIFO planted
// where a message or a logfile belongs must not hang a reader.
func (s *Spool) openFile(rel string) (fdReader, *unix.Stat_t, error) {
	if err := checkRel(rel); err != nil {
		return -1, nil, err
	}
	st := new(unix.Stat_t)
	fd, err := safefs.OpenRegular(s.rootFD, rel, st)
	if err == safefs.ErrNotRegular {
		return -1, nil, fmt.Errorf("postfixq: %s: %s", rel, NoteNotRegular)
	}
	if err != nil {
		return -1, nil, &fs.PathError{Op: "open", Path: filepath.Join(s.root, rel), Err: err}
	}
	return fdReader(fd), st, nil
}

// fdReader is an io.ReaderAt over a raw descriptor (pread), without the
// allocations of an *os.File.
type fdReader int

func (f fdReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pread(int(f), p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

func (f fdReader) close() { unix.Close(int(f)) }

// fdStream reads an fdReader from the start, sequentially.
type fdStream struct {
	f   fdReader
	off int64
}

func (s *fdStream) Read(p []byte) (int, error) {
	n, err := s.f.ReadAt(p, s.off)
	s.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// Read reads one message's envelope (never its body), its file metadata
// and its defer and bounce logs. The file is opened once, with
// O_NOFOLLOW and O_NOATIME, below the root without crossing a symbolic
// link. A corrupt file gives a Message with Err set (a *CorruptError);
// the error return is for a file that vanished (fs.ErrNotExist), is not a
// regular file, is still being written (ErrInProgress), or cannot be
// opened.
func (s *Spool) Read(ref queue.Ref) (*queue.Message, error) {
	m, _, err := s.ReadEnvelope(ref)
	return m, err
}

// ReadEnvelope is Read that also returns the Envelope details.
func (s *Spool) ReadEnvelope(ref queue.Ref) (*queue.Message, *Envelope, error) {
	rel := ref.Path
	if rel == "" {
		rel = s.MessagePath(ref.Queue, ref.ID)
	}
	f, st, err := s.openFile(rel)
	if err != nil {
		return nil, nil, err
	}
	defer f.close()
	if st.Mode&0o700 != 0o700 {
		return nil, nil, fmt.Errorf("%w: %s (mode %04o)", ErrInProgress, rel, st.Mode&0o7777)
	}
	m, env := parseEnvelopeFile(f, st.Size, rel, !s.opts.SkipAttrs)
	if ref.Queue != "" {
		m.Queue = ref.Queue
	}
	if ref.ID != "" {
		m.ID = ref.ID
	}
	m.Inode = st.Ino
	m.Mode = safefs.FileMode(st.Mode)
	m.UID, m.GID = int(st.Uid), int(st.Gid)
	m.ModTime = time.Unix(st.Mtim.Unix())
	m.ForcedExpire = st.Mode&unix.S_IXGRP != 0 // mail_queue.h MAIL_QUEUE_STAT_EXPIRE
	if m.Queue == queue.Deferred {
		// qmgr_active.c:qmgr_active_defer stores the next attempt in mtime.
		m.NextRetry = m.ModTime
	}
	if m.Arrival.IsZero() {
		m.Arrival = m.ModTime // showq: mtime when there is no T record
	}
	if !s.opts.SkipLogs {
		s.AttachLogs(m)
	}
	return m, env, nil
}

// AttachLogs reads a message's defer and bounce logs into its recipients'
// reasons, statuses and actions, and sets Bouncing. Read does it itself
// unless Options.SkipLogs. A log that cannot be read is a Problem.
func (s *Spool) AttachLogs(m *queue.Message) {
	entries, err := s.ReadLog(LogDefer, m.ID)
	ApplyLog(m, entries)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.Problems = append(m.Problems, "defer log: "+err.Error())
	}
	entries, err = s.ReadLog(LogBounce, m.ID)
	if err == nil || errors.Is(err, ErrLogTooLarge) {
		// qmgr_active.c:qmgr_active_done sends a non-delivery report
		// whenever a non-empty bounce logfile exists.
		m.Bouncing = len(entries) > 0 || s.logNonEmpty(LogBounce, m.ID)
	}
	ApplyLog(m, entries)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.Problems = append(m.Problems, "bounce log: "+err.Error())
	}
}

func (s *Spool) logNonEmpty(service, id string) bool {
	f, st, err := s.openFile(s.LogPath(service, id))
	if err != nil {
		return false
	}
	f.close()
	return st.Size > 0
}

// ReadLog reads and parses a defer, bounce or trace logfile
// (fs.ErrNotExist when there is none), streaming with bounded memory
// (ReadLogFrom); a logfile beyond the bounds gives the entries read so far
// and an error matching ErrLogTooLarge.
func (s *Spool) ReadLog(service, id string) ([]LogEntry, error) {
	rel := s.LogPath(service, id)
	f, _, err := s.openFile(rel)
	if err != nil {
		return nil, err
	}
	defer f.close()
	entries, err := ReadLogFrom(&fdStream{f: f})
	if err != nil {
		return entries, fmt.Errorf("postfixq: %s: %w", rel, err)
	}
	return entries, nil
}

// ReadContent reads a message's headers (and body when opt.Body is set).
func (s *Spool) ReadContent(m *queue.Message, opt queue.ContentOptions) (*queue.Content, error) {
	f, st, err := s.openMessage(m)
	if err != nil {
		return nil, err
	}
	defer f.close()
	return ReadContent(f, st.Size, m.Path, opt)
}

// WriteRaw writes the message content as RFC 5322 text (what
// `postcat -bh` prints), for show --raw and export.
func (s *Spool) WriteRaw(w io.Writer, m *queue.Message) error {
	f, st, err := s.openMessage(m)
	if err != nil {
		return err
	}
	defer f.close()
	return WriteRaw(w, f, st.Size, m.Path)
}

func (s *Spool) openMessage(m *queue.Message) (fdReader, *unix.Stat_t, error) {
	rel := m.Path
	if rel == "" {
		rel = s.MessagePath(m.Queue, m.ID)
	}
	return s.openFile(rel)
}

// MasterRunning reports whether a Postfix master process runs on the
// queue directory root, the way `master -t` (master/master.c, used by
// postfix-script status) tests it: open pid/master.pid and try
// flock(LOCK_EX|LOCK_NB). No file, or getting the lock (released at
// once), means not running; EWOULDBLOCK means running. The pid file stays
// after `postfix stop`, so its mere existence proves nothing.
func MasterRunning(root string) (bool, error) {
	p := filepath.Join(root, "pid", "master.pid")
	// O_NONBLOCK: a FIFO at pid/master.pid must not hang the check. A
	// pid file that is not a regular file is an error, not "not running":
	// master writes a regular file, and whether master runs decides what
	// may be touched.
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, &fs.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, &fs.PathError{Op: "open", Path: p, Err: safefs.ErrNotRegular}
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	switch err {
	case nil:
		unix.Flock(fd, unix.LOCK_UN)
		return false, nil
	case unix.EWOULDBLOCK:
		return true, nil
	}
	return false, &fs.PathError{Op: "flock", Path: p, Err: err}
}

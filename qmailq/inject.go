package qmailq

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Re-injection from a detached queue (the seed 000 move: the flooded queue
// was swapped out for an empty one, and only the legitimate mail is to be
// sent again through the live qmail).
//
// Inject makes the new message exactly the way qmail-queue.c:main() does
// (qmail-queue.md §3.1), through a queue.Mutator rooted at the LIVE queue:
//
//  1. pid/<pid>.<time>.<seq> created O_EXCL (seq 1..9), owner qmailq, mode
//     0644, with the whole message, fsynced; its inode N is the new id
//     (messnum = pidst.st_ino);
//  2. link to mess/<N%split>/<N>, unlink the pid file;
//  3. intd/<N> created O_EXCL with "u<uid>\0p<pid>\0F<sender>\0T<rcpt>\0...",
//     fsynced, then linked to todo/<N> (split paths on big-todo builds): from
//     that link on the message is queued;
//  4. lock/trigger pulled (triggerpull.c: open O_WRONLY|O_NDELAY, write one
//     byte, ignore every error).
//
// The message bytes are kept exactly as the detached mess file holds them,
// original qmail Received line included; qmail-queue would prepend one more
// line ("Received: (qmail N invoked by uid U)"), which we do not, so the
// trace stays what it was. qmail-send gives the message a new birth (info
// mtime), so queuelifetime starts again, as for any new message.
//
// Interrupted at any step, the live queue holds only states qmail itself
// leaves when qmail-queue dies at that step and cleans up on its own: a
// pid/ file (qmail-clean removes it after 36 hours), a mess file without
// todo (qmail-send.c:cleanup_do after 36 hours), mess+intd without todo
// (the same).
//
// Inject never takes lock/sendmutex: qmail-queue runs next to a live
// qmail-send, and so may this.

// Errors of re-injection. Test with errors.Is.
var (
	// ErrNoRecipients: the message has no pending recipient left.
	ErrNoRecipients = errors.New("no pending recipients")
	// ErrBadEnvelope: an address cannot be handed to qmail-queue: longer
	// than 1002 bytes (qmail-queue.c ADDR 1003, exit 11) or holding a NUL.
	ErrBadEnvelope = errors.New("address cannot be queued by qmail")
	// ErrStaleParts: a file of the new id (intd, todo, info, local,
	// remote or bounce) already exists in the live queue although its
	// mess did not: qmail-queue would fail (exit 65/66) or qmail-send would
	// mix it into the new message. The live queue needs a check/repair.
	ErrStaleParts = errors.New("the live queue already holds files of the new id")
	// ErrTooLarge: the mess file is larger than InjectOptions.MaxSize.
	ErrTooLarge = errors.New("mess file too large to re-inject")
)

// DefaultMaxInject is the largest mess file Inject reads into memory unless
// InjectOptions.MaxSize says otherwise.
const DefaultMaxInject = 1 << 30

// MaxAddr is the longest address qmail-queue accepts (qmail-queue.c: ADDR
// 1003 including the NUL).
const MaxAddr = 1002

// VirtualDomains is control/virtualdomains as qmail-send reads it
// (control.c:control_readfile, constmap with flagcolon).
type VirtualDomains struct {
	m map[string]string // lower-cased key -> prefix
}

// LoadVirtualDomains reads a virtualdomains file. A missing file is no
// virtual domains at all (qmail-send: control_readfile returns 0), not an
// error. Lines are stripped of trailing blanks; empty lines, lines starting
// with '#' and lines without ':' are skipped; a later line for the same
// key wins (constmap.c inserts at the head of its hash chain); keys match
// case-insensitively (constmap.c hash and case_diffb).
func LoadVirtualDomains(file string) (*VirtualDomains, error) {
	v := &VirtualDomains{m: map[string]string{}}
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		k, p, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v.m[strings.ToLower(k)] = p
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("qmailq: %s: %w", file, err)
	}
	return v, nil
}

// DefaultVirtualDomains loads control/virtualdomains next to the queue
// directory root (root/../control, qmail's layout).
func DefaultVirtualDomains(root string) (*VirtualDomains, error) {
	return LoadVirtualDomains(filepath.Join(filepath.Dir(filepath.Clean(root)), "control", "virtualdomains"))
}

// Strip removes the "<prefix>-" that qmail-send's rewrite() put in front of
// a local recipient of a virtual domain, exactly as
// qmail-send.c:stripvdomprepend does: look the domain up, then each suffix
// starting at a '.', then the empty key; the first key found decides; an
// empty prefix, or an address not starting with "<prefix>-", is left alone.
// A nil VirtualDomains strips nothing.
func (v *VirtualDomains) Strip(addr string) string {
	if v == nil || len(v.m) == 0 {
		return addr
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	domain := addr[at+1:]
	for i := 0; i <= len(domain); i++ {
		if i != 0 && i != len(domain) && domain[i] != '.' {
			continue
		}
		prefix, ok := v.m[strings.ToLower(domain[i:])]
		if !ok {
			continue
		}
		if prefix == "" || !strings.HasPrefix(addr, prefix) || len(addr) <= len(prefix) || addr[len(prefix)] != '-' {
			return addr
		}
		return addr[len(prefix)+1:]
	}
	return addr
}

// ResendEnvelope returns what a re-injection of msg hands to qmail: the sender
// and the pending recipients, local ones with their virtual-domain prefix
// removed (qmail-queue.md §5.9: else qmail-send adds it a second time).
// Recipients of a message not yet preprocessed (todo) are as the original
// caller gave them and are kept. Done recipients are never resent.
func ResendEnvelope(msg *queue.Message, vd *VirtualDomains) (sender string, rcpts []string, err error) {
	for _, r := range msg.Pending() {
		a := r.Address
		if r.Channel == queue.ChannelLocal {
			a = vd.Strip(a)
		}
		rcpts = append(rcpts, a)
	}
	if len(rcpts) == 0 {
		return "", nil, ErrNoRecipients
	}
	for _, a := range append([]string{msg.Sender}, rcpts...) {
		if len(a) > MaxAddr || strings.IndexByte(a, 0) >= 0 {
			return "", nil, fmt.Errorf("%w: %.60q", ErrBadEnvelope, a)
		}
	}
	return msg.Sender, rcpts, nil
}

// InjectOptions tune Inject and InjectViaQmailQueue.
type InjectOptions struct {
	// VirtualDomains of the live qmail (DefaultVirtualDomains); nil strips
	// no prefix.
	VirtualDomains *VirtualDomains
	// OwnerUID owns the new mess, intd and todo (qmailq: qmail-queue is
	// setuid qmailq); 0 means the owner of the live mess/ directory.
	OwnerUID int
	// OwnerGID is their group; 0 means the group of the detached mess
	// file, i.e. what qmail-queue gave the original (the caller's egid,
	// qmail-queue.md §4.2).
	OwnerGID int
	// PID is written as the p record and in the pid/ file name; 0 means
	// os.Getpid(). The u record is always os.Getuid(), as qmail-queue
	// writes getuid().
	PID int
	// MaxSize caps the mess file read into memory; 0 means
	// DefaultMaxInject.
	MaxSize int64
	// Now names the pid/ file; zero means clock.Now().
	Now time.Time
}

// Inject re-injects msg, read from the detached queue src, into the live
// queue live: a new message through pid/, mess/, intd/ and todo/ exactly as
// qmail-queue makes one, every change through m (a Mutator rooted at the
// live queue root), then pulls the live lock/trigger so a running
// qmail-send picks it up at once. It returns the new id (the new mess
// inode; 0 when m only recorded the plan). The detached queue is never
// changed. One call handles one message; rate limiting is the caller's.
func (src *Queue) Inject(live *Queue, m queue.Mutator, msg *queue.Message, opt InjectOptions) (uint64, error) {
	const action = "inject"
	fail := func(p string, err error) (uint64, error) {
		return 0, &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: p, Err: err}
	}
	if _, err := src.verify(action, msg); err != nil {
		return 0, err
	}
	if msg.Path == "" || msg.Inode == 0 {
		return fail(msg.Path, fmt.Errorf("%w: no readable mess file", ErrChanged))
	}
	sender, rcpts, err := ResendEnvelope(msg, opt.VirtualDomains)
	if err != nil {
		return fail("", err)
	}
	data, mst, err := src.readMess(msg, opt.MaxSize)
	if err != nil {
		return fail(msg.Path, err)
	}
	uid, gid := opt.OwnerUID, opt.OwnerGID
	if uid == 0 {
		st, err := live.lstat("mess")
		if err != nil {
			return fail("mess", err)
		}
		uid = int(st.Uid)
	}
	if gid == 0 {
		gid = int(mst.Gid)
	}
	pid := opt.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	now := opt.Now
	if now.IsZero() {
		now = clock.Now()
	}

	// 1. pid/<pid>.<time>.<seq> (qmail-queue.c:pidopen, seq 1..9).
	var pidFile string
	for seq := 1; ; seq++ {
		pidFile = fmt.Sprintf("pid/%d.%d.%d", pid, now.Unix(), seq)
		err = m.Create(pidFile, data, 0o644, uid, gid)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || seq == 9 {
			return fail(pidFile, err)
		}
	}
	var id uint64
	known := true
	switch st, err := live.lstat(pidFile); {
	case err == nil:
		id = st.Ino
	case errors.Is(err, fs.ErrNotExist):
		known = false // a recording Mutator: nothing was created
	default:
		m.Remove(pidFile)
		return fail(pidFile, err)
	}
	l := live.Layout()
	if known {
		for _, p := range []Part{PartMess, PartIntd, PartTodo, PartInfo, PartLocal, PartRemote, PartBounce} {
			rel := l.Path(p, id)
			if _, err := live.lstat(rel); err == nil {
				m.Remove(pidFile)
				return fail(rel, ErrStaleParts)
			} else if !errors.Is(err, fs.ErrNotExist) {
				m.Remove(pidFile)
				return fail(rel, err)
			}
		}
	}
	// 2. mess, then drop the pid name.
	mess := l.MessPath(id)
	if err := m.Link(pidFile, mess); err != nil {
		m.Remove(pidFile)
		return fail(mess, err)
	}
	if err := m.Remove(pidFile); err != nil {
		// qmail-queue dies here (63) leaving mess: cleanup_do removes it.
		return fail(pidFile, err)
	}
	// 3. intd, then todo.
	var env bytes.Buffer
	fmt.Fprintf(&env, "u%d\x00p%d\x00F%s\x00", os.Getuid(), pid, sender)
	for _, r := range rcpts {
		fmt.Fprintf(&env, "T%s\x00", r)
	}
	intd, todo := l.IntdPath(id), l.TodoPath(id)
	if err := m.Create(intd, env.Bytes(), 0o644, uid, gid); err != nil {
		m.Remove(mess)
		return fail(intd, err)
	}
	if err := m.Link(intd, todo); err != nil {
		m.Remove(intd)
		m.Remove(mess)
		return fail(todo, err)
	}
	// 4. wake qmail-send.
	if known {
		live.pullTrigger()
	}
	return id, nil
}

// readMess reads msg's mess file completely (O_NOFOLLOW, below the root),
// checking that it is the inode that was read.
func (q *Queue) readMess(msg *queue.Message, max int64) ([]byte, *unix.Stat_t, error) {
	if max <= 0 {
		max = DefaultMaxInject
	}
	rel, err := cleanRel(msg.Path)
	if err != nil {
		return nil, nil, err
	}
	dir, base := splitDir(rel)
	dfd, err := q.dirFD(dir)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	fd, err := openatRetry(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, &os.PathError{Op: "fstat", Path: rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != msg.Inode {
		return nil, nil, fmt.Errorf("%w: mess replaced", ErrChanged)
	}
	if st.Size > max {
		return nil, nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, st.Size, max)
	}
	data := make([]byte, st.Size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", rel, err)
	}
	var one [1]byte
	if n, _ := f.Read(one[:]); n != 0 {
		return nil, nil, fmt.Errorf("%w: mess grew while being read", ErrChanged)
	}
	return data, &st, nil
}

// pullTrigger does what triggerpull.c:triggerpull does: open lock/trigger
// O_WRONLY|O_NDELAY, write one byte, ignore every error (ENXIO: no reader,
// qmail-send is not running; it scans todo/ at start anyway). The FIFO is
// opened beneath the root without following a symbolic link, and only if
// it is a FIFO.
func (q *Queue) pullTrigger() {
	dfd, err := q.dirFD("lock")
	if err != nil {
		return
	}
	var st unix.Stat_t
	if fstatatRetry(dfd, "trigger", &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return
	}
	fd, err := openatRetry(dfd, "trigger", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	unix.Write(fd, []byte{0})
	unix.Close(fd)
}

// QueueExitError is a failed qmail-queue run, with the meaning of its exit
// code from qmail-queue(8) and qmail.c:qmail_close (qmail-queue.md §6).
type QueueExitError struct {
	Code int
	// Permanent: qmail.c treats 11..40 as permanent ("D"), everything
	// else as temporary ("Z").
	Permanent bool
	Meaning   string
	Stderr    string
}

func (e *QueueExitError) Error() string {
	kind := "temporary"
	if e.Permanent {
		kind = "permanent"
	}
	s := fmt.Sprintf("qmail-queue exited %d (%s failure: %s)", e.Code, kind, e.Meaning)
	if e.Stderr != "" {
		s += ": " + e.Stderr
	}
	return s
}

// qmailQueueExit is qmail-queue(8)'s exit code table.
var qmailQueueExit = map[int]string{
	11: "address too long",
	31: "mail server permanently refuses to send the message to any recipients",
	51: "out of memory",
	52: "timeout",
	53: "write error (disk full?)",
	54: "unable to read the message or envelope",
	55: "unable to read a configuration file",
	56: "problem making a network connection from this host",
	61: "problem with the qmail home directory",
	62: "problem with the queue directory",
	63: "problem with queue/pid",
	64: "problem with queue/mess",
	65: "problem with queue/intd",
	66: "problem with queue/todo",
	71: "mail server temporarily refuses to send the message to any recipients",
	72: "connection to mail server timed out",
	73: "connection to mail server rejected",
	74: "communication with mail server failed",
	81: "internal bug",
	82: "custom error from a qmail-queue wrapper",
	91: "envelope format error",
}

// QueueExit maps a qmail-queue exit code to an error (nil for 0).
func QueueExit(code int, stderr string) error {
	if code == 0 {
		return nil
	}
	meaning, ok := qmailQueueExit[code]
	if !ok {
		meaning = "unknown exit code"
	}
	return &QueueExitError{Code: code, Permanent: code >= 11 && code <= 40, Meaning: meaning, Stderr: strings.TrimSpace(stderr)}
}

// InjectViaQmailQueue re-injects msg, read from the detached queue src, by
// running the qmail-queue program bin (/var/qmail/bin/qmail-queue, or a
// wrapper such as $QMAILQUEUE to have it scanned again) with the mess bytes
// on fd 0 and the envelope "F<sender>\0T<rcpt>\0...\0" on fd 1, the
// interface of qmail-queue(8). qmail-queue adds its own Received line.
// The exit code is mapped with QueueExit. The detached queue is never
// changed. Only VirtualDomains and MaxSize of opt are used.
func (src *Queue) InjectViaQmailQueue(ctx context.Context, bin string, msg *queue.Message, opt InjectOptions) error {
	const action = "inject-via-qmail-queue"
	fail := func(p string, err error) error {
		return &ActionError{Format: pkgName, Action: action, ID: msg.ID, Path: p, Err: err}
	}
	if _, err := src.verify(action, msg); err != nil {
		return err
	}
	if msg.Path == "" || msg.Inode == 0 {
		return fail(msg.Path, fmt.Errorf("%w: no readable mess file", ErrChanged))
	}
	sender, rcpts, err := ResendEnvelope(msg, opt.VirtualDomains)
	if err != nil {
		return fail("", err)
	}
	data, _, err := src.readMess(msg, opt.MaxSize)
	if err != nil {
		return fail(msg.Path, err)
	}
	var env bytes.Buffer
	env.WriteString("F" + sender + "\x00")
	for _, r := range rcpts {
		env.WriteString("T" + r + "\x00")
	}
	env.WriteByte(0)

	pr, pw, err := os.Pipe()
	if err != nil {
		return fail("", err)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin)
	cmd.Stdin = bytes.NewReader(data)
	cmd.Stdout = pr // fd 1 of qmail-queue is the envelope's read end
	cmd.Stderr = &limitedBuffer{b: &stderr, n: 4096}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fail(bin, err)
	}
	pr.Close()
	// qmail-queue reads fd 1 only after fd 0 reached EOF: write from a
	// goroutine so a large envelope cannot deadlock against it.
	werr := make(chan error, 1)
	go func() {
		_, err := pw.Write(env.Bytes())
		pw.Close()
		werr <- err
	}()
	err = cmd.Wait()
	<-werr // EPIPE when qmail-queue quit early is explained by its exit code
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.Exited():
		return fail(bin, QueueExit(ee.ExitCode(), stderr.String()))
	default:
		return fail(bin, fmt.Errorf("qmail-queue: %w", err))
	}
}

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

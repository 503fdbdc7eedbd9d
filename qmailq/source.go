package qmailq

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

// Queue is a qmail queue read directly from disk. It implements
// queue.Source. Read and ReadContent are safe for concurrent use.
type Queue struct {
	layout *Layout
	rootfd int

	mu   sync.RWMutex
	dirs map[string]int // open directory descriptors, "mess/5" -> fd

	inv       atomic.Pointer[Inventory]
	walk      atomic.Pointer[walkState] // the latest Walk's (Inventory clears it)
	noNoatime atomic.Bool               // O_NOATIME refused (not owner, no CAP_FOWNER)

	// smtpdUIDs are the uids whose "invoked by uid N" is trusted like
	// "invoked from network" (TrustSMTPD); set before reading.
	smtpdUIDs []int64
	untrusted sync.Map // uid (int64) -> *atomic.Int64: messages with an AUTH header after it
}

// TrustSMTPD makes the reader trust qmail-smtpd's Received header (and the
// SMTP-AUTH user in it) after a qmail-queue line "invoked by uid N" for
// these uids, as after "invoked from network" (see ParseTraceUIDs). Call
// it before reading.
func (q *Queue) TrustSMTPD(uids ...int64) { q.smtpdUIDs = append([]int64(nil), uids...) }

// UntrustedAuth counts, per uid, the messages read so far whose SMTP-AUTH
// Received header was not trusted because it follows "invoked by uid N"
// with N not given to TrustSMTPD.
func (q *Queue) UntrustedAuth() map[int64]int64 {
	out := map[int64]int64{}
	q.untrusted.Range(func(k, v any) bool {
		out[k.(int64)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

var _ queue.Source = (*Queue)(nil)

// Open detects the layout of the queue at root and opens it for reading.
func Open(root string) (*Queue, error) {
	l, err := DetectLayout(root)
	if err != nil {
		return nil, err
	}
	return OpenLayout(l)
}

// OpenLayout opens a queue whose layout is already known (for example
// detected and then corrected by the caller's --split).
func OpenLayout(l *Layout) (*Queue, error) {
	if l.Split <= 0 {
		return nil, fmt.Errorf("qmailq: bad split %d", l.Split)
	}
	fd, err := openRootDir(l.Root)
	if err != nil {
		return nil, err
	}
	return &Queue{layout: l, rootfd: fd, dirs: map[string]int{}}, nil
}

// Close releases the directory descriptors.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, fd := range q.dirs {
		unix.Close(fd)
		delete(q.dirs, k)
	}
	if q.rootfd >= 0 {
		unix.Close(q.rootfd)
		q.rootfd = -1
	}
	return nil
}

// Layout is the layout the queue was opened with.
func (q *Queue) Layout() *Layout { return q.layout }

// MTA is queue.Qmail.
func (q *Queue) MTA() queue.MTA { return queue.Qmail }

// Root is the queue directory.
func (q *Queue) Root() string { return q.layout.Root }

func queueName(info, todo bool) string {
	if info && !todo {
		return queue.QmailQueue
	}
	return queue.QmailTodo
}

// dirFD returns a descriptor of the directory rel below the root, opened
// once without following symbolic links.
func (q *Queue) dirFD(rel string) (int, error) {
	q.mu.RLock()
	fd, ok := q.dirs[rel]
	q.mu.RUnlock()
	if ok {
		return fd, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if fd, ok := q.dirs[rel]; ok {
		return fd, nil
	}
	if q.rootfd < 0 {
		return -1, fs.ErrClosed
	}
	fd, err := openatBeneath(q.rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	q.dirs[rel] = fd
	return fd, nil
}

func locDir(loc Location) string {
	if loc.Subdir == Flat {
		return loc.Part.Dir()
	}
	return loc.Part.Dir() + "/" + strconv.Itoa(loc.Subdir)
}

// fileData is what was read of one queue file.
type fileData struct {
	loc  Location
	path string
	st   unix.Stat_t
	data []byte
	err  error // open/read error (the file was listed but could not be read)
	// pooled is data's buffer when it came from headPool.
	pooled *[]byte
}

var headPool = sync.Pool{New: func() any { b := make([]byte, MaxTraceHead); return &b }}

// release returns a pooled buffer; data must not be used afterwards.
func (fd *fileData) release() {
	if fd.pooled != nil {
		headPool.Put(fd.pooled)
		fd.pooled, fd.data = nil, nil
	}
}

// openPart opens the file at loc (O_NOFOLLOW, O_NONBLOCK, O_NOATIME where
// allowed), fstats it into st and checks that it is a regular file. On
// error nothing is left open, and op says which step failed.
func (q *Queue) openPart(id uint64, loc Location, st *unix.Stat_t) (f int, op string, err error) {
	dfd, err := q.dirFD(locDir(loc))
	if err != nil {
		return -1, "open", err
	}
	var nb [20]byte
	name := string(strconv.AppendUint(nb[:0], id, 10))
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	for {
		fl := flags
		if !q.noNoatime.Load() {
			fl |= unix.O_NOATIME
		}
		f, err = openatRetry(dfd, name, fl, 0)
		if err == unix.EPERM && fl&unix.O_NOATIME != 0 {
			q.noNoatime.Store(true)
			continue
		}
		break
	}
	if err != nil {
		if err == unix.ELOOP {
			err = fmt.Errorf("is a symbolic link (not followed): %w", err)
		}
		return -1, "open", err
	}
	if err := unix.Fstat(f, st); err != nil {
		unix.Close(f)
		return -1, "fstat", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(f)
		return -1, "open", errors.New("not a regular file")
	}
	return f, "", nil
}

// readPart opens the file at loc, fstats it and reads up to limit bytes
// (all of it when limit < 0, capped at MaxEnvelopeSize). O_NOATIME keeps
// qmail-send's orphan clock (mess atime, qmail-send.c:cleanup_do()) intact
// where we may use it. Returns fs.ErrNotExist if the file is gone.
func (q *Queue) readPart(id uint64, loc Location, limit int) *fileData {
	fd := &fileData{loc: loc, path: loc.Path(id)}
	f, op, err := q.openPart(id, loc, &fd.st)
	if err != nil {
		fd.err = &os.PathError{Op: op, Path: fd.path, Err: err}
		return fd
	}
	defer unix.Close(f)
	if limit == 0 {
		return fd
	}
	n := fd.st.Size
	if limit > 0 && n > int64(limit) {
		n = int64(limit)
	}
	if loc.Part != PartMess && fd.st.Size > maxPartSize(loc.Part) {
		// Larger than qmail ever writes it: damaged or planted (a sparse
		// 10 GB file costs nothing to make). Reading even the first
		// MaxEnvelopeSize bytes of each would cost that much memory per
		// message, so nothing is read.
		fd.err = &CorruptError{Format: pkgName, Type: -1, Path: fd.path, Offset: maxPartSize(loc.Part), Err: fmt.Errorf("file of %d bytes, larger than qmail writes (at most %d)", fd.st.Size, maxPartSize(loc.Part))}
		return fd
	}
	if n > MaxEnvelopeSize {
		fd.err = &CorruptError{Format: pkgName, Type: -1, Path: fd.path, Offset: MaxEnvelopeSize, Err: errTooLarge}
		n = MaxEnvelopeSize
	}
	var buf []byte
	if loc.Part == PartMess && n <= MaxTraceHead {
		// Only ParseTrace looks at it, and it copies what it keeps.
		bp := headPool.Get().(*[]byte)
		buf = (*bp)[:n]
		fd.pooled = bp
	} else {
		buf = make([]byte, n)
	}
	got, err := preadFull(f, buf)
	if err != nil {
		fd.err = &os.PathError{Op: "read", Path: fd.path, Err: err}
	}
	fd.data = buf[:got]
	return fd
}

// preadFull reads buf from offset 0 of f; fewer bytes when the file ends
// first (it shrank since fstat).
func preadFull(f int, buf []byte) (int, error) {
	got := 0
	for got < len(buf) {
		r, err := unix.Pread(f, buf[got:], int64(got))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return got, err
		}
		if r == 0 {
			break // shrank since fstat
		}
		got += r
	}
	return got, nil
}

// readHead is readPart for ReadFields, which needs only the data of a
// part read cleanly: it reads what readPart(id, loc, limit) would into buf
// (or a new buffer when buf is too short: the only allocation) and reports
// ok false wherever readPart would report an error.
func (q *Queue) readHead(id uint64, loc Location, limit int, buf []byte) (data []byte, ok bool) {
	var st unix.Stat_t
	f, _, err := q.openPart(id, loc, &st)
	if err != nil {
		return nil, false
	}
	defer unix.Close(f)
	n := st.Size
	if limit > 0 && n > int64(limit) {
		n = int64(limit)
	}
	if loc.Part != PartMess && st.Size > maxPartSize(loc.Part) || n > MaxEnvelopeSize {
		return nil, false
	}
	if n > int64(len(buf)) {
		buf = make([]byte, n)
	}
	got, err := preadFull(f, buf[:n])
	if err != nil {
		return nil, false
	}
	return buf[:got], true
}

func (fd *fileData) gone() bool { return fd.err != nil && errors.Is(fd.err, fs.ErrNotExist) }

func mtime(st *unix.Stat_t) time.Time { return time.Unix(st.Mtim.Unix()) }

// Read assembles message ref.ID into a queue.Message (see Inspect). A
// message that has no file left returns an error wrapping fs.ErrNotExist.
func (q *Queue) Read(ref queue.Ref) (*queue.Message, error) {
	m, probs, err := q.Inspect(ref.ID)
	if err != nil {
		return nil, err
	}
	for _, p := range probs {
		m.Problems = append(m.Problems, p.String())
	}
	return m, nil
}

// Inspect reads message id like Read does and also returns its problems in
// structured form (Read puts their String() into Message.Problems).
//
// It looks for the files where the last Inventory (Walk) found them and
// where qmail itself would look (fmtqfn.c), costing about four system
// calls per file (open, fstat, pread, close); of mess only the first
// MaxTraceHead bytes are read.
func (q *Queue) Inspect(idStr string) (*queue.Message, []Problem, error) {
	return q.inspect(idStr, true)
}

// inspect is Inspect; countAuth false leaves UntrustedAuth alone (ReadRest
// after a ReadFields that counted).
func (q *Queue) inspect(idStr string, countAuth bool) (*queue.Message, []Problem, error) {
	id, ok := ParseID(idStr)
	if !ok {
		return nil, nil, fmt.Errorf("qmailq: %q is not a qmail message id", idStr)
	}
	l := q.layout
	// Candidate locations: the inventory's, plus the canonical ones.
	locs := make([]Location, 0, numParts)
	addLoc := func(loc Location) {
		for _, l := range locs {
			if l == loc {
				return
			}
		}
		locs = append(locs, loc)
	}
	inv := q.inv.Load()
	ws := q.walk.Load()
	if inv != nil {
		ws = nil
	}
	// known: the walk's listing of this message is at hand, so a part it
	// did not find is not looked for (except behind a directory it could
	// not list).
	known := inv != nil
	var probe [numParts]bool
	var badDirs map[string]bool
	switch {
	case inv != nil:
		for _, loc := range inv.Locations(id) {
			addLoc(loc)
		}
		badDirs = inv.badDirs
	case ws != nil:
		wl, pr, ok := ws.locations(q, id)
		for _, loc := range wl {
			addLoc(loc)
		}
		known, probe, badDirs = ok, pr, ws.idx.badDirs
	}
	found := func(p Part) bool {
		for _, loc := range locs {
			if loc.Part == p {
				return true
			}
		}
		return false
	}
	for _, p := range Parts {
		sub := Flat
		if l.IsSplit(p) {
			sub = l.Subdir(id)
		}
		loc := Location{Part: p, Subdir: sub}
		// Without a listing, look where qmail looks. With one, only
		// where the walk could not see: a split directory that is a
		// symbolic link or unreadable (the read then reports it).
		if !known || !found(p) && (badDirs[locDir(loc)] || probe[p]) {
			addLoc(loc)
		}
	}
	var odd []oddFile
	if inv != nil {
		odd = inv.odd[id]
	} else if ws != nil {
		odd = ws.idx.odd[id]
	}
	// Never open what the listing saw is not a regular file.
	locs = slices.DeleteFunc(locs, func(loc Location) bool {
		return slices.ContainsFunc(odd, func(o oddFile) bool { return o.loc == loc })
	})
	// Read each part once: the canonical copy first, else the first found.
	var files [numParts][]*fileData
	anyFile := false
	for _, loc := range locs {
		limit := -1
		if loc.Part == PartMess {
			limit = MaxTraceHead
		}
		fd := q.readPart(id, loc, limit)
		if fd.gone() {
			continue
		}
		anyFile = true
		files[loc.Part] = append(files[loc.Part], fd)
	}
	if !anyFile && len(odd) == 0 {
		return nil, nil, fmt.Errorf("qmailq: message %d: %w", id, fs.ErrNotExist)
	}
	a := assembler{q: q, id: id, files: files, noCount: !countAuth}
	m := a.assemble()
	for _, o := range odd {
		what := "not a regular file"
		switch {
		case o.mode&fs.ModeSymlink != 0:
			what = "a symbolic link (never followed)"
		case o.mode.IsDir():
			what = "a directory"
		case o.mode&fs.ModeNamedPipe != 0:
			what = "a FIFO"
		case o.mode&fs.ModeDevice != 0:
			what = "a device"
		}
		path := o.loc.Path(id)
		a.probs = append(a.probs, Problem{Kind: KindUnreadable, ID: id, Path: path, Detail: path + " is " + what + ", not a regular file"})
	}
	for _, fd := range files[PartMess] {
		fd.release()
	}
	return m, a.probs, nil
}

// assembler builds one message from its files.
type assembler struct {
	q     *Queue
	id    uint64
	files [numParts][]*fileData
	m     *queue.Message
	probs []Problem
	// noCount: do not count an untrusted AUTH header (already counted).
	noCount bool
}

func (a *assembler) problem(kind, path, format string, args ...any) {
	a.probs = append(a.probs, Problem{Kind: kind, ID: a.id, Path: path, Detail: fmt.Sprintf(format, args...)})
}

func (a *assembler) setErr(err error) {
	if a.m.Err == nil {
		a.m.Err = err
	}
}

// primary returns the copy of part p to use: the one where qmail looks, or
// else the first found.
func (a *assembler) primary(p Part) *fileData {
	fs := a.files[p]
	if len(fs) == 0 {
		return nil
	}
	want := Flat
	if a.q.layout.IsSplit(p) {
		want = a.q.layout.Subdir(a.id)
	}
	for _, f := range fs {
		if f.loc.Subdir == want {
			return f
		}
	}
	return fs[0]
}

func (a *assembler) assemble() *queue.Message {
	l := a.q.layout
	id := a.id
	m := &queue.Message{MTA: queue.Qmail, ID: strconv.FormatUint(id, 10)}
	a.m = m

	// Placement: every copy not where fmtqfn() puts it, and duplicates.
	for _, p := range Parts {
		want := Flat
		if l.IsSplit(p) {
			want = l.Subdir(id)
		}
		for _, f := range a.files[p] {
			if f.loc.Subdir != want {
				where := "flat"
				if want != Flat {
					where = "subdirectory " + strconv.Itoa(want)
				}
				extra := ""
				if f.loc.Subdir >= l.Split {
					extra = fmt.Sprintf(" (subdirectory %d is beyond conf-split %d: qmail never reads it)", f.loc.Subdir, l.Split)
				}
				a.problem(KindWrongSubdir, f.path, "%s is not where qmail looks for it (%s: %s)%s", f.path, where, l.Path(p, id), extra)
			}
		}
		if len(a.files[p]) > 1 {
			var paths []string
			for _, f := range a.files[p] {
				paths = append(paths, f.path)
			}
			a.problem(KindDuplicate, a.files[p][0].path, "%s exists in more than one place: %s", p.Dir(), strings.Join(paths, ", "))
		}
		for _, f := range a.files[p] {
			if f.err != nil {
				a.problem(KindUnreadable, f.path, "%v", f.err)
				a.setErr(f.err)
			}
		}
	}

	mess := a.primary(PartMess)
	info := a.primary(PartInfo)
	local := a.primary(PartLocal)
	remote := a.primary(PartRemote)
	todo := a.primary(PartTodo)
	intd := a.primary(PartIntd)
	bounce := a.primary(PartBounce)
	m.Queue = queueName(info != nil, todo != nil)

	if mess != nil && mess.err == nil {
		st := &mess.st
		m.Path = mess.path
		m.Inode = st.Ino
		m.Mode = safefs.FileMode(st.Mode)
		m.ModTime = mtime(st)
		m.UID, m.GID = int(st.Uid), int(st.Gid)
		m.Size, m.FileSize = st.Size, st.Size
		if st.Size == 0 {
			if a.primary(PartInfo) != nil || a.primary(PartTodo) != nil {
				a.problem(KindZeroLengthMess, mess.path, "%s is empty although the message is queued: its content is lost (qmail-queue always writes its Received line first)", mess.path)
			} else {
				a.problem(KindZeroLengthMess, mess.path, "%s is empty (qmail-queue died before writing anything)", mess.path)
			}
		} else {
			t := ParseTraceUIDs(mess.data, a.q.smtpdUIDs)
			m.SASLUser = t.AuthUser
			if t.UntrustedAuthUser != "" && !a.noCount {
				c, _ := a.q.untrusted.LoadOrStore(t.UntrustedUID, new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
			}
			if t.SMTP != nil {
				m.ClientAddr = t.SMTP.IP
				m.HELO = t.SMTP.HELO
				if t.SMTP.Host != "unknown" {
					m.ClientName = t.SMTP.Host
				}
			}
		}
		// qmail-queue.c:main(): messnum = pidst.st_ino; INTERNALS: "If
		// mess/457 exists, it has inode number 457."
		if st.Ino != id {
			a.problem(KindIDNotInode, mess.path, "%s has inode %d: the name no longer equals the inode (normal for a queue copied from another file system, but qmail may then reuse the id; rename before running qmail on it)", mess.path, st.Ino)
		}
	} else if mess != nil {
		m.Path = mess.path
	}

	// Envelope: info + local/remote when preprocessed, todo/intd otherwise.
	haveSender := false
	if info != nil && info.err == nil {
		in, err := ParseInfo(info.path, info.data)
		if err != nil {
			a.problem(KindCorrupt, info.path, "%v", err)
			a.setErr(err)
		}
		if in.TrailingNUL {
			a.problem(KindTrailingNUL, info.path, "%s ends with an extra NUL", info.path)
		}
		if err == nil || in.Sender != "" {
			m.Sender, haveSender = in.Sender, true
		}
		m.Arrival = mtime(&info.st) // getinfo(): birth = st_mtime
	}
	for _, ch := range []struct {
		f    *fileData
		name string
	}{{local, queue.ChannelLocal}, {remote, queue.ChannelRemote}} {
		if ch.f == nil || ch.f.err != nil {
			continue
		}
		c, err := ParseChannel(ch.f.path, ch.f.data)
		if err != nil {
			a.problem(KindCorrupt, ch.f.path, "%v", err)
			a.setErr(err)
		}
		if c.TrailingNUL {
			a.problem(KindTrailingNUL, ch.f.path, "%s ends with an extra NUL (qmail-send stops there: unknown record type)", ch.f.path)
		}
		for _, r := range c.Recipients {
			m.Recipients = append(m.Recipients, queue.Recipient{Address: r.Addr, Channel: ch.name, Done: r.Done, Offset: r.Offset})
		}
		// pqadd() schedules each channel file at its st_mtime.
		if mt := mtime(&ch.f.st); m.NextRetry.IsZero() || mt.Before(m.NextRetry) {
			m.NextRetry = mt
		}
	}
	env := todo
	if env == nil || env.err != nil {
		env = intd
	}
	if env != nil && env.err == nil {
		e, err := ParseEnvelope(env.path, env.data)
		if err != nil {
			a.problem(KindCorrupt, env.path, "%v", err)
			a.setErr(err)
		}
		if e.TrailingNUL {
			a.problem(KindTrailingNUL, env.path, "%s ends with an extra NUL (qmail-send.c:todo_do() stops there: unknown record type)", env.path)
		}
		if !haveSender && e.HasSender {
			m.Sender, haveSender = e.Sender, true
		}
		if info == nil {
			for _, r := range e.Recipients {
				m.Recipients = append(m.Recipients, queue.Recipient{Address: r, Offset: -1})
			}
		}
	}
	if haveSender && m.Sender == "" {
		m.NullSender = true
	}
	m.DoubleBounce = haveSender && m.Sender == doubleBounceSender
	if m.Arrival.IsZero() {
		switch {
		case mess != nil && mess.err == nil:
			m.Arrival = mtime(&mess.st)
		case todo != nil && todo.err == nil:
			m.Arrival = mtime(&todo.st)
		case intd != nil && intd.err == nil:
			m.Arrival = mtime(&intd.st)
		}
	}
	m.CreateTime = m.Arrival

	// bounce/id: pending non-delivery report text (qmail-send.c:addbounce()).
	if bounce != nil && bounce.err == nil {
		m.Bouncing = true
		entries, err := ParseBounce(bounce.path, bounce.data)
		if err != nil {
			a.problem(KindCorrupt, bounce.path, "%v", err)
			a.setErr(err)
		}
		for _, b := range entries {
			if !matchBounce(m.Recipients, b) {
				// The channel file holding this recipient is gone (job_close()
				// unlinks it once all its records are D): keep the failed
				// recipient, done, with no channel.
				m.Recipients = append(m.Recipients, queue.Recipient{Address: b.Addr, Done: true, Reason: b.Reason, Action: "failed", Offset: -1})
			}
		}
	}

	a.consistency(mess, info, local, remote, todo, intd, bounce)
	return m
}

// matchBounce puts the reason of a bounce entry into the done recipient it
// is about. addbounce() strips the virtual-domain prefix
// (stripvdomprepend()), so "example.com-user@example.com" in local/ matches
// "user@example.com" in bounce/.
func matchBounce(rs []queue.Recipient, b BounceEntry) bool {
	match := func(r queue.Recipient) bool {
		if r.Address == b.Addr {
			return true
		}
		if strings.HasSuffix(r.Address, "-"+b.Addr) {
			prefix := r.Address[:len(r.Address)-len(b.Addr)-1]
			return prefix != "" && !strings.Contains(prefix, "@")
		}
		return false
	}
	for i := range rs {
		if rs[i].Done && rs[i].Reason == "" && match(rs[i]) {
			rs[i].Reason = b.Reason
			rs[i].Action = "failed"
			return true
		}
	}
	return false
}

// consistency adds the problems of partial messages (INTERNALS states S1-S5;
// what qmail does with each is in qmail-send.c pqadd(), todo_do(),
// messdone(), cleanup_do()).
func (a *assembler) consistency(mess, info, local, remote, todo, intd, bounce *fileData) {
	l := a.q.layout
	id := a.id
	if mess == nil {
		switch {
		case info != nil:
			a.problem(KindInfoWithoutMess, info.path, "%s exists but %s does not: deliveries defer (unable to open message) until queuelifetime, then the bounce cannot be built", info.path, l.MessPath(id))
		case todo != nil:
			a.problem(KindTodoWithoutMess, todo.path, "%s exists but %s does not: qmail-send warns 'unable to stat' on every todo scan", todo.path, l.MessPath(id))
		default:
			var parts []string
			for _, f := range []*fileData{local, remote, intd, bounce} {
				if f != nil {
					parts = append(parts, f.path)
				}
			}
			a.problem(KindMissingMess, "", "%s has no mess file; found only %s", l.MessPath(id), strings.Join(parts, ", "))
		}
	}
	if mess != nil && info == nil && todo == nil {
		if local == nil && remote == nil {
			if intd != nil {
				a.problem(KindMessWithoutInfo, mess.path, "%s and %s without todo: qmail-queue died while writing the envelope (or is writing it now); qmail-send's cleanup removes it 36 h after its last access", mess.path, intd.path)
			} else {
				a.problem(KindMessWithoutInfo, mess.path, "%s has no info, local, remote or todo: an orphan (qmail-queue died, or the envelope was removed); qmail-send's cleanup removes it 36 h after its last access", mess.path)
			}
		}
	}
	if info == nil && (local != nil || remote != nil) {
		var parts []string
		for _, f := range []*fileData{local, remote} {
			if f != nil {
				parts = append(parts, f.path)
			}
		}
		if todo == nil {
			a.problem(KindChannelWithoutInfo, parts[0], "%s without %s: invisible to qmail-send (pqstart() scans info/ only)", strings.Join(parts, ", "), l.InfoPath(id))
		}
	}
	if mess != nil && info != nil && todo == nil && local == nil && remote == nil && bounce == nil {
		a.problem(KindChannelsGone, info.path, "%s and %s without local/ or remote/: qmail-send finishes it as delivered and deletes it (qmail-send.c:pqadd() -> messdone()); a recipient still pending is lost", mess.path, info.path)
	}
	if todo != nil && intd == nil {
		a.problem(KindTodoWithoutIntd, todo.path, "%s exists without %s (qmail-queue writes intd first and links todo to it; qmail-clean removes intd before todo)", todo.path, l.IntdPath(id))
	}
	if intd != nil && todo == nil && mess != nil && info != nil {
		a.problem(KindIntdWithoutTodo, intd.path, "%s left over next to a preprocessed message (qmail-clean died after unlinking todo?)", intd.path)
	} else if intd != nil && todo == nil && mess == nil {
		a.problem(KindIntdWithoutTodo, intd.path, "%s without todo or mess", intd.path)
	}
	if todo != nil && info != nil {
		a.problem(KindTodoAndInfo, todo.path, "%s and %s both exist: qmail-send will preprocess it again, turning done recipients back to pending (duplicate deliveries)", todo.path, info.path)
	}
	switch {
	case bounce != nil && info == nil && todo == nil:
		a.problem(KindBounceWithoutInfo, bounce.path, "%s without %s: stale failure text that the next message with this id would inherit", bounce.path, l.InfoPath(id))
	case bounce != nil && info == nil:
		// qmail-send.c:todo_do() unlinks info/local/remote but not bounce.
		a.problem(KindBounceWithoutInfo, bounce.path, "%s next to a message not yet preprocessed: stale failure text of an earlier message with this id, which this one will inherit (todo_do() does not remove bounce/)", bounce.path)
	}
}

// maxPartSize is the largest envelope file of a part qsurgeon reads. An info
// file is "F" + one address (qmail-queue.c: ADDR 1003 bytes at most) + NUL;
// the others hold one record per recipient and have no such bound.
func maxPartSize(p Part) int64 {
	if p == PartInfo {
		return 64 << 10
	}
	return MaxEnvelopeSize
}

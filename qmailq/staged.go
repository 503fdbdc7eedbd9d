package qmailq

import (
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/queue"
)

var _ queue.StagedSource = (*Queue)(nil)

// ReadFields reads only what fields f need of a message the latest Walk
// found in the usual shape (every part where fmtqfn() puts it, nothing
// unusual): the head of mess for the AUTH user (as Read: the first
// MaxTraceHead bytes, the trace headers come first), info for the sender.
// It returns nil when it cannot tell them as Read would (no walk, the
// message's subdirectory no longer kept, a part missing, misplaced,
// unreadable or damaged): the caller then uses Read.
func (q *Queue) ReadFields(ref queue.Ref, f queue.Fields) (*queue.Message, error) {
	id, ok := ParseID(ref.ID)
	ws := q.walk.Load()
	if !ok || ws == nil || q.inv.Load() != nil {
		return nil, nil
	}
	l := q.layout
	sub := l.Subdir(id)
	e, g := ws.lookup(id, sub)
	if e == nil || g == nil || len(e.extra) > 0 || len(ws.idx.odd[id]) > 0 {
		return nil, nil
	}
	canonical := func(p Part) (Location, bool) {
		loc := Location{Part: p, Subdir: Flat}
		if l.IsSplit(p) {
			loc.Subdir = sub
		}
		return loc, e.where[p] == int32(loc.Subdir)
	}
	m := &queue.Message{MTA: queue.Qmail, ID: strconv.FormatUint(id, 10), Queue: queueName(e.has(PartInfo), e.has(PartTodo))}
	var bp *[]byte // one pooled buffer for the parts read here
	defer func() {
		if bp != nil {
			headPool.Put(bp)
		}
	}()
	buf := func() []byte {
		if bp == nil {
			bp = headPool.Get().(*[]byte)
		}
		return *bp
	}
	if f&queue.FieldSender != 0 {
		loc, ok := canonical(PartInfo)
		if !ok {
			return nil, nil
		}
		data, ok := q.readHead(id, loc, -1, buf())
		if !ok {
			return nil, nil
		}
		// ParseInfo copies the sender; the path only names errors,
		// which send the message to Read.
		in, err := ParseInfo("", data)
		if err != nil {
			return nil, nil
		}
		m.Sender = in.Sender
		m.NullSender = in.Sender == ""
		m.DoubleBounce = in.Sender == doubleBounceSender
	}
	// Last: it counts an untrusted AUTH header, so nothing may fall back
	// to Read after it.
	if f&queue.FieldSASLUser != 0 {
		loc, ok := canonical(PartMess)
		if !ok {
			return nil, nil
		}
		t, ok := q.readTrace(id, loc, buf())
		if !ok {
			return nil, nil
		}
		m.SASLUser = t.AuthUser
		if t.UntrustedAuthUser != "" {
			c, _ := q.untrusted.LoadOrStore(t.UntrustedUID, new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
		}
	}
	return m, nil
}

// traceFirst is how much of a mess file readTrace reads first: qmail-queue's
// line and qmail-smtpd's header take a few hundred bytes, the body that
// follows is of no use to ParseTrace.
const traceFirst = 1024

// readTrace is ParseTraceUIDs of what readHead(id, loc, MaxTraceHead, buf)
// reads (ok false as there, and for an empty file), reading the first
// traceFirst bytes and the rest of MaxTraceHead only when the trace
// headers go on beyond them. ParseTraceUIDs copies what it keeps.
func (q *Queue) readTrace(id uint64, loc Location, buf []byte) (Trace, bool) {
	var st unix.Stat_t
	f, _, err := q.openPart(id, loc, &st)
	if err != nil || st.Size == 0 {
		if err == nil {
			unix.Close(f)
		}
		return Trace{}, false
	}
	defer unix.Close(f)
	n := min(st.Size, MaxTraceHead)
	if n > int64(len(buf)) {
		buf = make([]byte, n)
	}
	first := min(n, traceFirst)
	got, err := preadFull(f, buf[:first])
	if err != nil {
		return Trace{}, false
	}
	t, short := parseTrace(buf[:got], q.smtpdUIDs)
	if !short || int64(got) < first || n == first {
		// All it looked at lies in the bytes read, or they are all
		// readHead would read.
		return t, true
	}
	got, err = preadFull(f, buf[:n])
	if err != nil {
		return Trace{}, false
	}
	t, _ = parseTrace(buf[:got], q.smtpdUIDs)
	return t, true
}

// ReadRest reads the whole message like Read, after ReadFields(ref, f)
// returned one (an untrusted AUTH header is then counted once).
func (q *Queue) ReadRest(ref queue.Ref, f queue.Fields) (*queue.Message, error) {
	m, probs, err := q.inspect(ref.ID, f&queue.FieldSASLUser == 0)
	if err != nil {
		return nil, err
	}
	for _, p := range probs {
		m.Problems = append(m.Problems, p.String())
	}
	return m, nil
}

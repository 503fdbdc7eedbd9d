package qmailq

import (
	"strconv"
	"sync/atomic"

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
		data, _, ok := q.readHead(id, loc, -1, buf())
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
		data, size, ok := q.readHead(id, loc, MaxTraceHead, buf())
		if !ok || size == 0 {
			return nil, nil
		}
		// ParseTraceUIDs copies what it keeps.
		t := ParseTraceUIDs(data, q.smtpdUIDs)
		m.SASLUser = t.AuthUser
		if t.UntrustedAuthUser != "" {
			c, _ := q.untrusted.LoadOrStore(t.UntrustedUID, new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
		}
	}
	return m, nil
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

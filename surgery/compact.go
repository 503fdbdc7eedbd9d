package surgery

import (
	"io/fs"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
)

// While the scan runs, Select keeps each selected message of a KeepIDs or
// KeepSurgery selection as a compact record, not as a queue.Message (408
// bytes before its strings, most of them empty once Keep has trimmed it).
// The scan makes garbage at the rate it reads (every message read, matched
// or not), and Go's collector lets the heap grow to twice what is live
// before it collects: what the selection holds during the scan counts
// twice in the peak. After the scan, the records become queue.Messages
// again, block by block, each exactly the trimmed message it was made from.
// A message the record cannot carry exactly (content, a time not from
// time.Unix, an MTA other than Postfix or qmail, an --explain reason) is
// kept whole instead.

// idRec is a selected message of a KeepIDs selection: what trim keeps.
type idRec struct {
	id, path, queue string
	mta             uint8
}

// surgRec is a selected message of a KeepSurgery selection: what trim
// keeps (the action's, the plan's and the preview's fields).
type surgRec struct {
	id, path, queue, sender, sasl string
	inode                         uint64
	size, fileSize                int64
	// Unix nanoseconds; bit i of zero set: time i is the zero time.
	modTime, arrival, createTime, nextRetry int64
	uid, gid                                int32
	mode                                    fs.FileMode
	mta, zero                               uint8
	forcedExpire, nullSender, doubleBounce  bool
	bouncing                                bool
	// odd holds a damaged message's problems and error (nil for most).
	odd *oddRec
}

type oddRec struct {
	problems []string
	err      error
}

func mtaCode(m queue.MTA) (uint8, bool) {
	switch m {
	case queue.Postfix:
		return 1, true
	case queue.Qmail:
		return 2, true
	}
	return 0, false
}

func mtaOf(c uint8) queue.MTA {
	if c == 1 {
		return queue.Postfix
	}
	return queue.Qmail
}

// packTime returns t as Unix nanoseconds, zero when t is the zero time,
// and ok only when unpackTime gives back exactly t (time.Unix's form: the
// local location, no monotonic reading, within int64 nanoseconds).
func packTime(t time.Time) (n int64, zero, ok bool) {
	if t == (time.Time{}) {
		return 0, true, true
	}
	n = t.UnixNano()
	return n, false, time.Unix(0, n) == t
}

func unpackTime(n int64, zero bool) time.Time {
	if zero {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func int32Of(v int) (int32, bool) { return int32(v), int(int32(v)) == v }

// packID is m (trimmed by KeepIDs) as an idRec.
func packID(m *queue.Message) (idRec, bool) {
	c, ok := mtaCode(m.MTA)
	return idRec{id: m.ID, path: m.Path, queue: m.Queue, mta: c}, ok
}

func (r *idRec) unpack(m *queue.Message) {
	*m = queue.Message{MTA: mtaOf(r.mta), Queue: r.queue, ID: r.id, Path: r.path}
}

// packSurgery is m (trimmed by KeepSurgery) as a surgRec, when the record
// carries every field it has.
func packSurgery(m *queue.Message) (surgRec, bool) {
	var r surgRec
	c, ok := mtaCode(m.MTA)
	if !ok || m.Recipients != nil || m.Attrs != nil || m.Content != nil ||
		m.SASLMethod != "" || m.ClientAddr != "" || m.ClientName != "" || m.HELO != "" {
		return r, false
	}
	r = surgRec{id: m.ID, path: m.Path, queue: m.Queue, sender: m.Sender, sasl: m.SASLUser,
		inode: m.Inode, size: m.Size, fileSize: m.FileSize, mode: m.Mode, mta: c,
		forcedExpire: m.ForcedExpire, nullSender: m.NullSender, doubleBounce: m.DoubleBounce, bouncing: m.Bouncing}
	if m.Problems != nil || m.Err != nil {
		r.odd = &oddRec{problems: m.Problems, err: m.Err}
	}
	for i, t := range [...]time.Time{m.ModTime, m.Arrival, m.CreateTime, m.NextRetry} {
		n, zero, ok := packTime(t)
		if !ok {
			return r, false
		}
		if zero {
			r.zero |= 1 << i
		}
		*[...]*int64{&r.modTime, &r.arrival, &r.createTime, &r.nextRetry}[i] = n
	}
	var okU, okG bool
	r.uid, okU = int32Of(m.UID)
	r.gid, okG = int32Of(m.GID)
	return r, okU && okG
}

func (r *surgRec) unpack(m *queue.Message) {
	*m = queue.Message{MTA: mtaOf(r.mta), Queue: r.queue, ID: r.id, Path: r.path,
		Inode: r.inode, Mode: r.mode, ModTime: unpackTime(r.modTime, r.zero&1 != 0),
		UID: int(r.uid), GID: int(r.gid),
		Arrival: unpackTime(r.arrival, r.zero&2 != 0), CreateTime: unpackTime(r.createTime, r.zero&4 != 0),
		NextRetry:    unpackTime(r.nextRetry, r.zero&8 != 0),
		ForcedExpire: r.forcedExpire, Size: r.size, FileSize: r.fileSize,
		Sender: r.sender, NullSender: r.nullSender, DoubleBounce: r.doubleBounce,
		SASLUser: r.sasl, Bouncing: r.bouncing}
	if r.odd != nil {
		m.Problems, m.Err = r.odd.problems, r.odd.err
	}
}

// recChunk is how many records one block of a compactSet holds: the set
// grows by blocks, never by copying what it holds.
const recChunk = 4096

// maxShared bounds the texts a compactSet shares (a selection of many
// senders shares none beyond these, and holds no large map for them).
const maxShared = 4096

// compactSet collects the selected messages of one Select (from the
// collecting goroutine only).
type compactSet struct {
	keep Keep
	n    int
	ids  [][]idRec
	surg [][]surgRec
	// whole are the messages no record can carry, by position.
	whole map[int]filter.Result
	// intern shares the text of SASL users and senders (a selection by
	// one account holds its name once, not once per message).
	intern map[string]string
}

func newCompactSet(k Keep) *compactSet {
	if k != KeepIDs && k != KeepSurgery {
		return nil
	}
	return &compactSet{keep: k, whole: map[int]filter.Result{}, intern: map[string]string{}}
}

func (s *compactSet) share(v string) string {
	if v == "" {
		return ""
	}
	if w, ok := s.intern[v]; ok {
		return w
	}
	if len(s.intern) < maxShared {
		s.intern[v] = v
	}
	return v
}

// add appends v to the last block, or to a new one when it is full.
func add[T any](blocks [][]T, v T) [][]T {
	if len(blocks) == 0 || len(blocks[len(blocks)-1]) == recChunk {
		blocks = append(blocks, make([]T, 0, recChunk))
	}
	last := &blocks[len(blocks)-1]
	*last = append(*last, v)
	return blocks
}

// add keeps r, its message already trimmed by s.keep.
func (s *compactSet) add(r filter.Result) {
	i := s.n
	s.n++
	if r.Why == nil {
		switch s.keep {
		case KeepIDs:
			if rec, ok := packID(r.Msg); ok {
				s.ids = add(s.ids, rec)
				return
			}
			s.ids = add(s.ids, idRec{})
		case KeepSurgery:
			if rec, ok := packSurgery(r.Msg); ok {
				rec.sasl, rec.sender = s.share(rec.sasl), s.share(rec.sender)
				s.surg = add(s.surg, rec)
				return
			}
			s.surg = add(s.surg, surgRec{})
		}
	} else if s.keep == KeepIDs {
		s.ids = add(s.ids, idRec{})
	} else {
		s.surg = add(s.surg, surgRec{})
	}
	s.whole[i] = r
}

// results turns the records back into results, in the order they were
// added, block by block: each block of records becomes one block of
// messages and is dropped, so that the collector can take the records
// while the messages are made (at 1M Postfix messages, 100k selected,
// holding both at once was the peak of a delete). The set is emptied.
func (s *compactSet) results() []filter.Result {
	out := make([]filter.Result, s.n)
	i := 0
	// next is where record i goes: nil when message i was kept whole.
	next := func(msgs []queue.Message, j int) *queue.Message {
		defer func() { i++ }()
		if r, ok := s.whole[i]; ok {
			out[i] = r
			return nil
		}
		out[i] = filter.Result{Msg: &msgs[j]}
		return &msgs[j]
	}
	unpackBlocks(s.ids, next)
	unpackBlocks(s.surg, next)
	s.ids, s.surg, s.whole, s.intern, s.n = nil, nil, nil, nil, 0
	return out
}

// unpackBlocks makes the messages of blocks of records, block by block,
// where next puts them, dropping each block of records once its messages
// are made.
func unpackBlocks[R any, P interface {
	*R
	unpack(*queue.Message)
}](blocks [][]R, next func(msgs []queue.Message, j int) *queue.Message) {
	for b := range blocks {
		msgs := make([]queue.Message, len(blocks[b]))
		for j := range blocks[b] {
			if m := next(msgs, j); m != nil {
				P(&blocks[b][j]).unpack(m)
			}
		}
		blocks[b] = nil
	}
}

package maillog

import (
	"time"
	"unsafe"
)

// sref is a string of a parsed line kept as its place in its job's bytes
// instead of a string header: offset and length into job.data, or, with
// extraBit set in off, into job.extra (the few strings a parser builds
// instead of slicing the line: journal messages, saslauthd's user@realm).
type sref struct{ off, n uint32 }

const extraBit = 1 << 31

// cev is an Event as a parsing worker hands it to the join: what add
// uses of it, with no pointer in it (strings are srefs, the stamp's zone
// an index into job.locs), so that the job's slice of them costs the GC
// nothing to scan and the worker no write barriers, and at 144 bytes about a
// third of an Event.
type cev struct {
	sec   int64 // the stamp (Unix seconds and nanoseconds) when loc != 0
	size  int64
	nrcpt int64 // as the line has it, however large (a hostile log)
	nsec  int32
	line  uint32 // the line number minus the job's line0
	loc   uint16 // 1 + the index of the stamp's zone in job.locs; 0: no stamp
	kind  Kind

	qid, prog, pid, user, method, addr, name, sender, rcpt, relay, status sref
	aux1                                                                  sref // Delivery (Delivery, QmailStart) or NewID (BounceNotice)
	aux2                                                                  sref // Channel (QmailStart) or QP (QmailInfo)
}

// ref returns s's place in the job's bytes, copying s to j.extra when it
// does not lie in j.data (base and dlen are data's address and length).
func (j *job) ref(s string) sref {
	if off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - j.base; off < j.dlen && uintptr(len(s)) <= j.dlen-off {
		return sref{uint32(off), uint32(len(s))}
	}
	return j.refExtra(s)
}

func (j *job) refExtra(s string) sref {
	if s == "" {
		return sref{}
	}
	off := len(j.extra)
	j.extra = append(j.extra, s...)
	return sref{uint32(off) | extraBit, uint32(len(s))}
}

// setData sets the bytes the job's srefs point into.
func (j *job) setData(b []byte) {
	j.data, j.base, j.dlen = b, 0, 0
	if len(b) > 0 {
		j.base, j.dlen = uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b))
	}
}

// str is the string r names, pointing into the job's bytes (no copy).
func (j *job) str(r sref) string {
	if r.n == 0 {
		return ""
	}
	if r.off&extraBit != 0 {
		return unsafe.String(&j.extra[r.off&^extraBit], int(r.n))
	}
	return unsafe.String(&j.data[r.off], int(r.n))
}

// pack appends ev, parsed from line number n of the job, as a cev.
func (j *job) pack(ev *Event, n int64) {
	j.events = append(j.events, cev{})
	c := &j.events[len(j.events)-1]
	c.kind, c.line, c.size, c.nrcpt = ev.Kind, uint32(n-j.line0), ev.Size, int64(ev.Nrcpt)
	if !ev.Time.IsZero() {
		c.sec, c.nsec = ev.Time.Unix(), int32(ev.Time.Nanosecond())
		c.loc = j.locIndex(ev.Time)
	}
	switch ev.Kind {
	case Connect, Client, AuthFailed, LoginFailed:
		// the smtpd session and the failure twins need the program
		c.prog, c.pid = j.ref(ev.Program), j.ref(ev.PID)
	}
	c.qid = j.ref(ev.QueueID)
	switch ev.Kind {
	case Delivery:
		c.rcpt, c.relay, c.status, c.aux1 = j.ref(ev.Recipient), j.ref(ev.Relay), j.ref(ev.Status), j.ref(ev.Delivery)
		return
	case Queued, Expired:
		c.sender = j.ref(ev.Sender)
		return
	case Removed, MessageID:
		return
	case BounceNotice:
		c.aux1 = j.ref(ev.NewID)
	case QmailStart:
		c.aux1, c.aux2 = j.ref(ev.Delivery), j.ref(ev.Channel)
	case QmailInfo:
		c.aux2 = j.ref(ev.QP)
	}
	c.user, c.method, c.addr, c.name = j.ref(ev.User), j.ref(ev.Method), j.ref(ev.ClientAddr), j.ref(ev.ClientName)
	c.sender, c.rcpt, c.relay, c.status = j.ref(ev.Sender), j.ref(ev.Recipient), j.ref(ev.Relay), j.ref(ev.Status)
}

// locIndex returns 1 + the index of t's zone in j.locs, adding it. Zones
// are told apart by name and offset, so that the fixed zone every RFC 3339
// stamp gets of its own counts once.
func (j *job) locIndex(t time.Time) uint16 {
	l := t.Location()
	if j.lastLoc != 0 && j.locs[j.lastLoc-1] == l {
		return j.lastLoc
	}
	name, off := t.Zone()
	for i, x := range j.locs {
		if x == l || x != time.Local && x != time.UTC && l != time.Local && l != time.UTC && sameZone(x, t, name, off) {
			j.lastLoc = uint16(i + 1)
			return j.lastLoc
		}
	}
	j.locs = append(j.locs, l)
	j.lastLoc = uint16(len(j.locs))
	return j.lastLoc
}

// sameZone reports whether x names the zone (name, off) at t: two fixed
// zones of the same name and offset.
func sameZone(x *time.Location, t time.Time, name string, off int) bool {
	n, o := t.In(x).Zone()
	return n == name && o == off
}

// time is c's stamp, zero when the line had none.
func (j *job) time(c *cev) time.Time {
	if c.loc == 0 {
		return time.Time{}
	}
	return time.Unix(c.sec, int64(c.nsec)).In(j.locs[c.loc-1])
}

// src is the place of c's line.
func (j *job) src(c *cev) Source { return Source{File: j.name, Line: j.line0 + int64(c.line)} }

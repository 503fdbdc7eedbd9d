package postfixq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Envelope is what ParseEnvelope learns about a queue file beyond
// queue.Message: the raw size record and the offsets a surgeon needs.
type Envelope struct {
	// Size is the C record; HasSize tells whether one was found and valid.
	Size    SizeRecord
	HasSize bool
	// SizeFields is how many C fields parsed (qmgr needs >= 3).
	SizeFields int
	// WarnOffset is the offset of the first W record (0 if none) and
	// WarnTime its value (-1 once the warning was sent).
	WarnOffset int64
	WarnTime   int64
	// ContentOffset is where the content segment starts (just past M),
	// ExtractedOffset the offset of the X record.
	ContentOffset   int64
	ExtractedOffset int64
	// EndOffset is the offset of the E record (0 if none was reached).
	EndOffset int64
	// Filter is the L (content_filter) record outside the content, Redirect
	// the > record, VERP the V record, FullName the F record.
	Filter   string
	Redirect string
	VERP     string
	FullName string
	// DSN holds, for each of Message.Recipients (same index), the
	// A dsn_orig_rcpt= and A notify_flags= records that preceded it.
	DSN []RecipientDSN
}

// RecipientDSN is the per-recipient DSN information cleanup writes before
// the O and R records (cleanup_addr.c; qmgr_message.c attaches it to the
// next R/D//).
type RecipientDSN struct {
	ORcpt  string // "rfc822;addr"
	Notify int    // DSN_NOTIFY_* bits: 1 NEVER, 2 SUCCESS, 4 FAILURE, 8 DELAY
}

var readerPool = sync.Pool{New: func() any { return &Reader{buf: make([]byte, 0, defaultWindow)} }}

// segment states of the envelope parser.
const (
	segEnvelope = iota
	segContent
	segExtracted
)

// outsideContent is every type qmgr accepts outside the content segment:
// REC_TYPE_ENVELOPE plus REC_TYPE_EXTRACT (qmgr_message.c:qmgr_message_read
// handles them wherever they appear).
var outsideContent = func() (set [256]bool) {
	for _, s := range []string{RecTypeEnvelope, RecTypeExtract} {
		for i := 0; i < len(s); i++ {
			set[s[i]] = true
		}
	}
	return set
}()

var contentTypes = func() (set [256]bool) {
	for i := 0; i < len(RecTypeContent); i++ {
		set[RecTypeContent[i]] = true
	}
	return set
}()

// ParseEnvelope reads the envelope of one queue file (size bytes read
// through r) into a queue.Message: arrival and create time, size, sender,
// every recipient with its original address and state, the named
// attributes. rel is the file's path relative to the queue root
// ("deferred/7/7A6D1BE4D7"); its first element is taken as the queue name
// and its last as the ID.
//
// It reads like qmgr (qmgr_message.c:qmgr_message_read): logically,
// following pointer records; after the M record it jumps over the content
// using C fields 1 and 2 and requires the X record there, so the message
// body is never read. Without a usable C record (maildrop files have none)
// it walks the content records instead. Problems do not stop the read
// unless the records themselves can no longer be framed: the Message keeps
// everything read and its Err holds the first *CorruptError.
func ParseEnvelope(r io.ReaderAt, size int64, rel string) (*queue.Message, *Envelope) {
	return parseEnvelopeFile(r, size, rel, true)
}

// parseEnvelopeFile is ParseEnvelope; keepAttrs false leaves Message.Attrs
// nil (the well-known attributes are still parsed into their fields),
// which saves a map per message on a million-message scan.
func parseEnvelopeFile(r io.ReaderAt, size int64, rel string, keepAttrs bool) (*queue.Message, *Envelope) {
	m := &queue.Message{
		MTA:      queue.Postfix,
		Path:     rel,
		FileSize: size,
		Size:     size,
	}
	if rel != "" {
		m.ID = path.Base(rel)
		if i := strings.IndexByte(rel, '/'); i > 0 {
			m.Queue = rel[:i]
		}
	}
	env := &Envelope{}
	rd := readerPool.Get().(*Reader)
	rd.reset(r, size, rel)
	parseEnvelope(rd, m, env, keepAttrs)
	rd.reset(nil, 0, "")
	if cap(rd.buf)+cap(rd.alt) <= 1<<20 {
		readerPool.Put(rd)
	}
	return m, env
}

type envParser struct {
	rd  *Reader
	m   *queue.Message
	env *Envelope

	seenTime, seenSender, seenCTime bool
	origRcpt                        string
	haveOrig                        bool
	dsn                             RecipientDSN
	logClientAddr, logClientName    string
	logHelo                         string
	keepAttrs                       bool
}

func (p *envParser) problem(off int64, typ int, err error) {
	if p.m.Err == nil {
		p.m.Err = corrupt(p.m.Path, off, typ, err)
	}
}

func parseEnvelope(rd *Reader, m *queue.Message, env *Envelope, keepAttrs bool) {
	p := &envParser{rd: rd, m: m, env: env, keepAttrs: keepAttrs}
	seg := segEnvelope
	for {
		typ, off, data, err := rd.next()
		if err != nil {
			if err == io.EOF { // cannot happen before E in logical mode
				err = corrupt(m.Path, off, -1, errMissingEnd)
			}
			if m.Err == nil || !isCorrupt(m.Err) {
				m.Err = err
			} else {
				// Keep the first semantic problem but do not lose the
				// framing error: it is the reason reading stopped.
				m.Err = errors.Join(m.Err, err)
			}
			break
		}
		if seg == segContent {
			// Only reached without a usable C record.
			if !contentTypes[typ] {
				p.problem(off, int(typ), errRecordType)
			}
			if typ == RecTypeXtra {
				env.ExtractedOffset = off
				seg = segExtracted
			}
			continue
		}
		if !outsideContent[typ] {
			p.problem(off, int(typ), errRecordType)
			continue
		}
		switch typ {
		case RecTypeMesg:
			if seg != segEnvelope {
				p.problem(off, int(typ), errRecordType)
				continue
			}
			env.ContentOffset = rd.pos
			xoff := env.Size.DataOffset + env.Size.DataSize
			switch {
			case !env.HasSize:
			case env.Size.DataOffset != rd.pos:
				p.problem(off, int(RecTypeSize), fmt.Errorf("%w: data offset %d, content starts at %d", errBadContentPointer, env.Size.DataOffset, rd.pos))
			case xoff >= rd.size:
				p.problem(0, int(RecTypeSize), fmt.Errorf("%w: extracted segment at %d is past the end of the file: %w", errBadContentPointer, xoff, io.ErrUnexpectedEOF))
			default:
				// qmgr: seek over data_size bytes, then expect X.
				if err := rd.Jump(xoff); err == nil {
					t, o, _, err := rd.next()
					if err == nil && t == RecTypeXtra {
						env.ExtractedOffset = o
						seg = segExtracted
						continue
					}
				}
				// The C record lies: report it, then find X the slow way.
				rd.err = nil
				rd.done = false
				p.problem(xoff, -1, errBadContentPointer)
				_ = rd.Jump(env.ContentOffset)
			}
			seg = segContent
			continue
		case RecTypeEnd:
			if seg == segEnvelope {
				p.problem(off, int(typ), errEarlyEnd)
			}
			env.EndOffset = off
			p.finish()
			return
		}
		p.record(seg, typ, off, data)
	}
	p.finish()
}

func isCorrupt(err error) bool {
	var ce *CorruptError
	return errors.As(err, &ce)
}

// record handles one envelope or extracted record.
func (p *envParser) record(seg int, typ RecType, off int64, data []byte) {
	m, env := p.m, p.env
	switch typ {
	case RecTypeSize:
		if env.SizeFields != 0 || env.HasSize {
			return // qmgr uses only the first C (postcat: "multiple size records")
		}
		s, n, err := ParseSizeRecord(data)
		env.SizeFields = n
		if err != nil || n < 3 {
			if err == nil {
				err = fmt.Errorf("%w: pre-1.0 size record", errBadSize)
			}
			p.problem(off, int(typ), err)
			if n == 0 {
				env.SizeFields = -1
			}
			return
		}
		env.Size, env.HasSize = s, true
		m.Size = s.DataSize
	case RecTypeTime:
		if p.seenTime {
			return // first T wins (qmgr, cleanup)
		}
		t, ok := scanTime(data)
		if !ok {
			p.problem(off, int(typ), errBadTime)
			return
		}
		p.seenTime = true
		m.Arrival = t
	case RecTypeFrom:
		if p.seenSender {
			return
		}
		p.seenSender = true
		m.Sender = string(data)
		m.NullSender = len(data) == 0
	case RecTypeFull:
		env.FullName = string(data)
	case RecTypeFilt: // L outside the content: content_filter
		env.Filter = string(data)
	case RecTypeRdr:
		env.Redirect = string(data)
	case RecTypeVERP:
		env.VERP = string(data)
	case RecTypeWarn:
		if env.WarnOffset == 0 {
			env.WarnOffset = off
			v, err := ParsePointer(bytes.TrimLeft(data, " -"))
			if err == nil && bytes.Contains(data, []byte("-")) {
				v = -v
			}
			env.WarnTime = v
		}
	case RecTypeORcpt:
		p.origRcpt, p.haveOrig = string(data), true
	case RecTypeRcpt, RecTypeDone, RecTypeDRcpt:
		r := queue.Recipient{
			Address:  string(data),
			Done:     typ == RecTypeDone,
			Canceled: typ == RecTypeDRcpt,
			Offset:   off,
		}
		if p.haveOrig {
			r.Original = p.origRcpt
		}
		p.origRcpt, p.haveOrig = "", false
		m.Recipients = append(m.Recipients, r)
		env.DSN = append(env.DSN, p.dsn)
		p.dsn = RecipientDSN{}
	case RecTypeAttr:
		p.attr(off, data)
	case RecTypeKill:
		// A killed record (qmgr_message_kill_record): ignore.
	default:
		// I, P, r, e, c, <, i, o, n: legacy or pseudo types that carry
		// nothing queue.Message shows.
	}
}

// attr handles an A record: split_nameval (util/split_nameval.c) splits at
// the first '=', trims blanks, and needs a non-empty name.
func (p *envParser) attr(off int64, data []byte) {
	m := p.m
	eq := bytes.IndexByte(data, '=')
	if eq < 0 {
		p.problem(off, int(RecTypeAttr), fmt.Errorf("%w: missing '='", errBadAttr))
		return
	}
	// name and value stay bytes until kept: a scan reads some twenty
	// attributes per message and keeps a few (string(b) in a switch or a
	// map index allocates nothing).
	name := bytes.TrimSpace(data[:eq])
	if len(name) == 0 {
		p.problem(off, int(RecTypeAttr), fmt.Errorf("%w: missing attribute name", errBadAttr))
		return
	}
	value := bytes.TrimSpace(data[eq+1:])
	// Per-recipient DSN attributes (rec_attr_map.c maps them to the o and
	// n pseudo types) belong to the next recipient, not to the message.
	switch string(name) {
	case "dsn_orig_rcpt":
		p.dsn.ORcpt = string(value)
		return
	case "notify_flags":
		if v, err := ParsePointer(value); err == nil && v < 1<<16 {
			p.dsn.Notify = int(v)
		}
		return
	}
	if p.keepAttrs {
		if m.Attrs == nil {
			m.Attrs = make(map[string]string, 24)
		}
		m.Attrs[string(name)] = string(value)
	}
	// Well-known names (global/mail_proto.h). The actual connection
	// (client_address, client_name, helo_name, written by smtpd since 2.3)
	// wins over the log_* values, which are XFORWARD/XCLIENT-aware logging
	// values and may carry an "IPv6:" prefix; log_* is the fallback for
	// files without the actual ones (qmgr_message.c uses the opposite
	// order for its logging only).
	switch string(name) {
	case "create_time":
		if !p.seenCTime {
			p.seenCTime = true
			if v, err := ParsePointer(value); err == nil {
				m.CreateTime = time.Unix(v, 0)
			}
		}
	default:
		// The first value of each is kept (qmgr: "ignoring multiple
		// sasl_method").
		if f := p.firstWins(name); f != nil && *f == "" {
			if string(name) == "log_client_address" {
				value = bytes.TrimPrefix(value, []byte("IPv6:"))
			}
			*f = string(value)
		}
	}
}

// firstWins is where the named attribute goes when only its first value
// counts; nil for other names.
func (p *envParser) firstWins(name []byte) *string {
	m := p.m
	switch string(name) {
	case "sasl_method":
		return &m.SASLMethod
	case "sasl_username":
		return &m.SASLUser
	case "client_address":
		return &m.ClientAddr
	case "client_name":
		return &m.ClientName
	case "helo_name":
		return &m.HELO
	case "log_client_address":
		return &p.logClientAddr
	case "log_client_name":
		return &p.logClientName
	case "log_helo_name":
		return &p.logHelo
	}
	return nil
}

// finish applies defaults and the checks qmgr makes at the end of
// qmgr_message_read.
func (p *envParser) finish() {
	m, env := p.m, p.env
	if m.ClientAddr == "" {
		m.ClientAddr = p.logClientAddr
	}
	if m.ClientName == "" {
		m.ClientName = p.logClientName
	}
	if m.HELO == "" {
		m.HELO = p.logHelo
	}
	if m.CreateTime.IsZero() {
		m.CreateTime = m.Arrival // Postfix < 2.3 compatibility (qmgr)
	}
	if !env.HasSize {
		m.Size = m.FileSize // showq: file size without a usable C record
	}
	if m.Err != nil && !isCorrupt(m.Err) {
		return // an I/O error: the checks below would only add noise
	}
	maildrop := m.Queue == queue.Maildrop
	switch {
	case !p.seenTime && !maildrop:
		p.problem(0, -1, errMissingTime)
	case !p.seenSender:
		p.problem(0, -1, errMissingSender)
	case env.SizeFields == 0 && !maildrop:
		p.problem(0, -1, errMissingSize)
	}
}

// scanTime parses a T record: REC_TYPE_TIME_FORMAT "%ld %ld" (seconds,
// microseconds), or seconds only in old files (REC_TYPE_TIME_SCAN).
func scanTime(data []byte) (time.Time, bool) {
	s := bytes.TrimSpace(data)
	secPart, usecPart := s, []byte(nil)
	if i := bytes.IndexByte(s, ' '); i >= 0 {
		secPart, usecPart = s[:i], bytes.TrimSpace(s[i+1:])
	}
	sec, err := ParsePointer(secPart)
	if err != nil {
		return time.Time{}, false
	}
	var usec int64
	if len(usecPart) > 0 {
		if usec, err = ParsePointer(usecPart); err != nil || usec >= 1000000 {
			return time.Time{}, false
		}
	}
	return time.Unix(sec, usec*1000), true
}

package postfixq

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Log services: the bounce(8) logfile directories, named after the service
// that writes them (global/mail_queue.h MAIL_QUEUE_BOUNCE etc.).
const (
	LogDefer  = "defer"
	LogBounce = "bounce"
	LogTrace  = "trace"
)

// LogEntry is one recipient entry of a defer, bounce or trace logfile
// (bounce/bounce_append_service.c writes it, global/bounce_log.c:
// bounce_log_read reads it).
type LogEntry struct {
	Recipient         string // as logged: RFC 822 quoted, "<>" for the null address
	OriginalRecipient string
	Offset            int64 // offset= of the R/D record, -1 when absent
	DSNOrigRcpt       string
	NotifyFlags       int
	Status            string // e.g. 4.4.1
	Action            string // delayed, failed, ...
	DiagType          string
	DiagText          string
	MTAType           string
	MTAMName          string
	Reason            string
}

// Bounds on what a logfile may cost, whatever its size says: a defer log
// is written by bounce(8) as one short block per recipient, so a logfile
// beyond these is damaged or planted (a sparse 10 GB file costs nothing to
// make). The file is read streaming through a small buffer; a line longer
// than maxLogLine is cut there, reading stops after maxLogSize bytes, and
// once maxLogKept bytes of entries are kept later entries are dropped.
const (
	maxLogSize = 64 << 20
	maxLogLine = 8 << 10
	maxLogKept = 1 << 20
)

// ErrLogTooLarge: a logfile went beyond maxLogSize or maxLogKept; the
// entries read before that are returned with it.
// A NUL byte (which bounce(8) never writes: a sparse or damaged file) ends
// the logfile the same way.
var ErrLogTooLarge = errors.New("logfile too large or damaged: later entries not read")

// ParseLog parses a logfile: entries are blocks of name=value lines
// separated by blank lines; a block with only the old-style line
// "<recipient>: reason" (backwards_bounce_logfile_compatibility) is an
// entry too. A partial last block (a writer still appending) is kept when
// it names a recipient.
func ParseLog(data []byte) []LogEntry {
	var p logParser
	p.init()
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		p.line(line)
	}
	return p.finish()
}

// ReadLogFrom parses a logfile streaming from r with bounded memory (see
// maxLogSize): what ParseLog returns for the same bytes while they stay
// within the bounds, and ErrLogTooLarge with the entries kept so far when
// they do not. Other errors are r's.
func ReadLogFrom(r io.Reader) ([]LogEntry, error) {
	var p logParser
	p.init()
	lr := &io.LimitedReader{R: r, N: maxLogSize}
	br := logReaders.Get().(*bufio.Reader)
	br.Reset(lr)
	defer func() { br.Reset(nil); logReaders.Put(br) }()
	var long []byte // a line longer than the buffer, cut at maxLogLine
	var off int64
	for {
		chunk, err := br.ReadSlice('\n')
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			chunk, err = chunk[:i], errNUL
		}
		off += int64(len(chunk))
		if err == bufio.ErrBufferFull {
			if len(long) < maxLogLine {
				long = append(long, chunk[:min(len(chunk), maxLogLine-len(long))]...)
			}
			continue
		}
		if len(chunk) > 0 || len(long) > 0 {
			line := chunk
			if len(long) > 0 {
				if len(long) < maxLogLine {
					long = append(long, chunk[:min(len(chunk), maxLogLine-len(long))]...)
				}
				line = long
			}
			line = bytes.TrimSuffix(line, []byte{'\n'})
			p.line(line)
			long = long[:0]
		}
		if err == errNUL {
			return p.finish(), fmt.Errorf("%w (NUL byte at offset %d)", ErrLogTooLarge, off)
		}
		if err == io.EOF {
			out := p.finish()
			if lr.N <= 0 || p.dropped {
				return out, ErrLogTooLarge
			}
			return out, nil
		}
		if err != nil {
			return p.finish(), err
		}
	}
}

var errNUL = errors.New("NUL byte")

var logReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// logParser is ParseLog's state, fed one line (without its newline) at a
// time.
type logParser struct {
	out                    []LogEntry
	cur                    LogEntry
	have, haveNew          bool
	legacyRcpt, legacyText string
	haveLegacy             bool
	kept                   int // bytes of strings in out and cur
	dropped                bool
}

func (p *logParser) init() { p.cur.Offset = -1 }

func (p *logParser) end() {
	if p.kept > maxLogKept {
		p.dropped = true
	} else {
		switch {
		case p.haveNew:
			p.out = append(p.out, p.cur)
		case p.haveLegacy:
			p.out = append(p.out, LogEntry{Recipient: p.legacyRcpt, Reason: p.legacyText, Offset: -1})
		}
	}
	p.cur = LogEntry{Offset: -1}
	p.have, p.haveNew, p.haveLegacy = false, false, false
}

func (p *logParser) finish() []LogEntry {
	if p.have {
		p.end()
	}
	return p.out
}

func (p *logParser) line(line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		if p.have {
			p.end()
		}
		return
	}
	p.have = true
	if p.kept > maxLogKept {
		p.dropped = true
		return // counted, never kept
	}
	if bytes.HasPrefix(line, []byte("<")) {
		if i := bytes.Index(line, []byte(">: ")); i > 0 {
			p.legacyRcpt, p.legacyText, p.haveLegacy = string(line[1:i]), string(line[i+3:]), true
			p.kept += len(line)
			return
		}
	}
	bname, bvalue, ok := bytes.Cut(line, []byte("="))
	if !ok {
		return // bounce_log_read: "unknown attribute name"
	}
	value := string(bytes.TrimSpace(bvalue))
	p.kept += len(value)
	cur := &p.cur
	switch string(bytes.TrimSpace(bname)) { // no allocation for the switch
	case "recipient":
		cur.Recipient, p.haveNew = value, true
	case "original_recipient":
		cur.OriginalRecipient = value
	case "offset":
		if v, err := strconv.ParseInt(value, 10, 64); err == nil {
			cur.Offset = v
		}
	case "dsn_orig_rcpt":
		cur.DSNOrigRcpt = value
	case "notify_flags":
		cur.NotifyFlags, _ = strconv.Atoi(value)
	case "status":
		cur.Status = value
	case "action":
		cur.Action = value
	case "diag_type":
		cur.DiagType = value
	case "diag_text":
		cur.DiagText = value
	case "mta_type":
		cur.MTAType = value
	case "mta_mname":
		cur.MTAMName = value
	case "reason":
		cur.Reason = value
	default:
		p.kept -= len(value)
	}
}

// logAddress turns a logged recipient back into the envelope form: "<>" is
// the null address, and a quoted local part ("a b"@example.com, written by
// quote_822_local) loses its quotes.
func logAddress(s string) string {
	if s == "<>" {
		return ""
	}
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s, ""
	if at > 0 && s[at-1] == '"' {
		local, domain = s[:at], s[at:]
	}
	if len(local) < 2 || local[len(local)-1] != '"' {
		return s
	}
	var b strings.Builder
	for i := 1; i < len(local)-1; i++ {
		if local[i] == '\\' && i+1 < len(local)-1 {
			i++
		}
		b.WriteByte(local[i])
	}
	return b.String() + domain
}

// ApplyLog attaches log entries to the message's recipients: an entry
// matches the recipient whose record offset equals its offset= and whose
// address equals its recipient=; entries without an offset match the first
// recipient with that address. It sets Reason, Status and Action.
func ApplyLog(m *queue.Message, entries []LogEntry) {
	for _, e := range entries {
		addr := logAddress(e.Recipient)
		idx := -1
		for i := range m.Recipients {
			r := &m.Recipients[i]
			if r.Address != addr && r.Address != e.Recipient {
				continue
			}
			if e.Offset >= 0 && r.Offset != e.Offset {
				continue
			}
			idx = i
			break
		}
		if idx < 0 {
			continue
		}
		r := &m.Recipients[idx]
		r.Reason, r.Status, r.Action = e.Reason, e.Status, e.Action
	}
}

// ShowqRecipients lists recipients the way showq (showq/showq.c:
// showq_report) reports them for postqueue -p/-j: first every entry of the
// defer log, in log order and with its reason (addresses as logged), then
// the pending R records of the file whose address is not in the log
// (the duplicate filter, up to duplicate_filter_limit = 1000 entries), without
// a reason. Done and canceled recipients are never listed.
func ShowqRecipients(m *queue.Message, deferLog []LogEntry) []queue.Recipient {
	const dupLimit = 1000 // DEF_DUP_FILTER_LIMIT
	var out []queue.Recipient
	seen := make(map[string]bool, len(deferLog))
	for _, e := range deferLog {
		if len(seen) < dupLimit {
			seen[e.Recipient] = true
		}
		out = append(out, queue.Recipient{Address: e.Recipient, Reason: e.Reason, Status: e.Status, Action: e.Action, Offset: e.Offset})
	}
	for _, r := range m.Recipients {
		if r.Done || r.Canceled {
			continue
		}
		shown := quote822Local(r.Address)
		if seen[shown] {
			continue
		}
		r.Reason, r.Status, r.Action = "", "", ""
		r.Address = shown
		out = append(out, r)
	}
	return out
}

// quote822Local quotes the local part of an address when it contains
// characters that RFC 822 does not allow unquoted
// (global/quote_822_local.c), as showq and the bounce daemon do.
func quote822Local(addr string) string {
	if addr == "" {
		return addr
	}
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr, ""
	if at >= 0 {
		local, domain = addr[:at], addr[at:]
	}
	if !needsQuote(local) {
		return addr
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c == '"' || c == '\\' || c == '\r' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String() + domain
}

// needsQuote is quote_822_local.c:is_822_dot_string negated.
func needsQuote(local string) bool {
	if local == "" || local[0] == '.' || local[len(local)-1] == '.' {
		return local != ""
	}
	prev := byte(0)
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c == '.' {
			if prev == '.' {
				return true
			}
		} else if c < 33 || c >= 127 || strings.IndexByte(`()<>@,;:\".[]`, c) >= 0 {
			if c < 127 || c == 127 {
				return true
			}
			// 8-bit bytes are left alone (SMTPUTF8 addresses).
		}
		prev = c
	}
	return false
}

package qmailq

import (
	"bytes"
	"strconv"
	"strings"
)

// This file is the one place that reads the trace headers qmail writes at
// the top of every mess file.

// Invocation is how qmail-queue was run, from its own Received line
// (qmail-queue.c:receivedfmt()).
type Invocation string

// The injector classes qmail-queue.c:receivedfmt() writes.
const (
	InvokedFromNetwork Invocation = "from network" // uid == qmaild (qmail-smtpd)
	InvokedByAlias     Invocation = "by alias"     // uid == alias (a ~alias/.qmail delivery, e.g. a forward)
	InvokedForBounce   Invocation = "for bounce"   // uid == qmails (qmail-send's bounce)
	InvokedByUID       Invocation = "by uid"       // anyone else: "by uid <n>"
)

// QueueReceived is qmail-queue's own first line:
//
//	Received: (qmail <qp> invoked from network|by uid <n>|by alias|for bounce); <date>
type QueueReceived struct {
	QP      uint64
	Invoked Invocation
	// UID is the uid of "by uid <n>", -1 otherwise.
	UID  int64
	Date string
}

// SMTPReceived is the header qmail-smtpd's received.c:received() writes
// right after qmail-queue's line:
//
//	Received: from <host> [(HELO <helo>)] ([<remoteinfo>@]<ip>)
//	  by <local> with <protocol>; <date>
//
// SMTP AUTH patches put the authenticated user into remoteinfo and set the
// protocol to ESMTPA; ident (TCPREMOTEINFO) and an unauthenticated MAIL FROM
// AUTH= parameter (mailfrom_auth()) use the same slot.
type SMTPReceived struct {
	Host string // TCPREMOTEHOST or "unknown"
	// HELO is the HELO/EHLO argument; received.c omits "(HELO ...)" when it
	// equals Host, in which case HELO is Host.
	HELO string
	// HELOShown: the "(HELO ...)" part was present.
	HELOShown  bool
	RemoteInfo string // the part before the last '@' in "(...@ip)"; "" if none
	IP         string
	By         string
	// With is everything between " with " and ";": the protocol, possibly
	// with a TLS cipher comment, e.g. "ESMTPS (TLS_AES_256 encrypted)".
	With string
	// Protocol is the protocol keyword of With (comments removed).
	Protocol string
	Date     string
}

// Trace is what the top of a mess file says about how it arrived.
type Trace struct {
	// Queue is qmail-queue's line at the very top; nil if the file does not
	// start with one (then nothing else is trusted).
	Queue *QueueReceived
	// Hops counts the "invoked by alias" forwards walked through to reach
	// the injection that carried SMTP (0 when the message came in directly).
	Hops int
	// Origin is the qmail-queue line of that injection (Queue itself when
	// Hops is 0).
	Origin *QueueReceived
	// SMTP is qmail-smtpd's header directly after Origin, when Origin was
	// "invoked from network"; nil otherwise.
	SMTP *SMTPReceived
	// AuthUser is the SMTP AUTH user, set only when a recognizer in
	// AuthRecognizers accepted SMTP as proof of authentication.
	AuthUser string
	// AuthBy names the recognizer that accepted it.
	AuthBy string
	// UntrustedAuthUser is the user of an SMTP-AUTH header that follows a
	// qmail-queue line "invoked by uid N" with N not among the trusted
	// qmail-smtpd uids (UntrustedUID): a qmail-smtpd run as another user
	// (vpopmail set-ups), or a local user forging the header. Never used
	// for selection; it lets a caller say which --smtpd-uid would trust it.
	UntrustedAuthUser string
	UntrustedUID      int64
}

// ClientAddr is the SMTP client IP of the originating injection, or "".
func (t *Trace) ClientAddr() string {
	if t.SMTP == nil {
		return ""
	}
	return t.SMTP.IP
}

// AuthRecognizer decides whether a qmail-smtpd Received header proves SMTP
// authentication, and of which user. Add entries to AuthRecognizers for
// AUTH patches that write other formats.
type AuthRecognizer struct {
	Name  string
	Match func(r *SMTPReceived) (user string, ok bool)
}

// authProtocols are the "with" keywords that say the client authenticated:
// RFC 3848 (ESMTPA, ESMTPSA, LMTPA, LMTPSA) and RFC 6531 (UTF8SMTPA,
// UTF8SMTPSA, UTF8LMTPA, UTF8LMTPSA).
var authProtocols = map[string]bool{
	"ESMTPA": true, "ESMTPSA": true,
	"LMTPA": true, "LMTPSA": true,
	"UTF8SMTPA": true, "UTF8SMTPSA": true,
	"UTF8LMTPA": true, "UTF8LMTPSA": true,
}

// AuthRecognizers is the table of known ways an AUTH patch marks an
// authenticated session. The first one that matches wins.
var AuthRecognizers = []AuthRecognizer{
	{
		// Erwin Hoffmann's qmail-authentication / netqmail smtp-auth patch,
		// notqmail patches/smtp-auth, Gentoo auth+tls: after a successful
		// AUTH, qmail-smtpd.c sets protocol = "ESMTPA" (or an RFC 3848
		// variant) and remoteinfo = the user; received.c writes
		// "(user@ip) ... with ESMTPA". "with SMTP" with a user there is
		// ident or a forged MAIL FROM AUTH= value, never a login.
		Name: "rfc3848-protocol",
		Match: func(r *SMTPReceived) (string, bool) {
			if r.RemoteInfo == "" || !authProtocols[strings.ToUpper(r.Protocol)] {
				return "", false
			}
			return r.RemoteInfo, true
		},
	},
}

// MaxTraceHead is how much of a mess file ParseTrace needs: the qmail-queue
// line, a few Delivered-To lines of forwards and qmail-smtpd's header.
const MaxTraceHead = 8192

// ParseTrace reads the trace headers at the top of a mess file (head is its
// first bytes; MaxTraceHead is plenty). It never fails: whatever it cannot
// recognise is simply not reported.
//
// Only headers qmail itself wrote are trusted: the first field must be
// qmail-queue's line; if it says "invoked by alias" (a ~alias forward,
// qmail-local.c:forward()), the forwarded copy starts with Delivered-To
// lines and then the original's own qmail-queue line, and the walk goes on
// there. qmail-smtpd's header is taken only directly after a qmail-queue
// line that says "invoked from network", so a client cannot have forged it.
func ParseTrace(head []byte) Trace { return ParseTraceUIDs(head, nil) }

// ParseTraceUIDs is ParseTrace that also trusts qmail-smtpd's header after
// "invoked by uid N" for every N in smtpdUIDs: qmail-queue.c writes
// "invoked from network" only when its real uid is qmaild's
// (auto_uidd), so a qmail-smtpd run as another user (vpopmail's, so that
// vchkpw can read the accounts) leaves "invoked by uid N". Only the admin
// knows which uids run qmail-smtpd; any other uid may be a local user who
// wrote the header himself.
func ParseTraceUIDs(head []byte, smtpdUIDs []int64) Trace {
	t, _ := parseTrace(head, smtpdUIDs)
	return t
}

// parseTrace is ParseTraceUIDs; short reports whether it looked at the
// end of head (a longer head of the same file may then say more). When
// short is false, any longer head of the same file gives the same Trace.
func parseTrace(head []byte, smtpdUIDs []int64) (t Trace, short bool) {
	fields := fieldReader{head: head, max: 64}
	t = traceOf(&fields, smtpdUIDs)
	return t, fields.short
}

func traceOf(fields *fieldReader, smtpdUIDs []int64) Trace {
	var t Trace
	// The fields are unfolded only as far as they are looked at: the
	// qmail-queue line, forwards' Delivered-To lines and qmail-smtpd's
	// header, not the rest of the header (a selection reads every
	// message's head).
	f0, ok := fields.get(0)
	if !ok {
		return t
	}
	q, ok := parseQueueReceived(f0)
	if !ok {
		return t
	}
	t.Queue = q
	i := 0
	for q.Invoked == InvokedByAlias {
		j := i + 1
		for {
			f, ok := fields.get(j)
			if !ok || !fieldNameIs(f, "Delivered-To") {
				break
			}
			j++
		}
		fj, ok := fields.get(j)
		if j == i+1 || !ok {
			break
		}
		nq, ok := parseQueueReceived(fj)
		if !ok {
			break
		}
		q, i = nq, j
		t.Hops++
	}
	t.Origin = q
	trusted := q.Invoked == InvokedFromNetwork
	if q.Invoked == InvokedByUID {
		for _, u := range smtpdUIDs {
			trusted = trusted || u == q.UID
		}
	}
	if q.Invoked != InvokedFromNetwork && q.Invoked != InvokedByUID {
		return t
	}
	fs, ok := fields.get(i + 1)
	if !ok {
		return t
	}
	s, ok := parseSMTPReceived(fs)
	if !ok {
		return t
	}
	if !trusted {
		for _, rc := range AuthRecognizers {
			if u, ok := rc.Match(s); ok {
				t.UntrustedAuthUser, t.UntrustedUID = u, q.UID
				break
			}
		}
		return t
	}
	t.SMTP = s
	for _, rc := range AuthRecognizers {
		if u, ok := rc.Match(s); ok {
			t.AuthUser, t.AuthBy = u, rc.Name
			break
		}
	}
	return t
}

// fieldReader unfolds the header fields at the top of a message ("Name:
// value" with continuation lines joined by one space) one at a time: get(k)
// is field k of the first max (ok false past the blank line that ends the
// header, or past a field cut off by the end of head), reading no further
// than field k needs.
type fieldReader struct {
	head []byte
	max  int
	out  []string
	cur  []byte
	have bool // cur holds a field begun
	done bool
	// short: the end of head was reached inside the header (not at its
	// blank line, not after max fields).
	short bool
}

func (r *fieldReader) get(k int) (string, bool) {
	for len(r.out) <= k && r.next() {
	}
	if k < len(r.out) {
		return r.out[k], true
	}
	return "", false
}

// next reads lines until one more field is complete (true) or there is
// none (false).
func (r *fieldReader) next() bool {
	if r.done {
		return false
	}
	complete := false // whether cur is known to have ended
	for len(r.out) < r.max {
		nl := bytes.IndexByte(r.head, '\n')
		if nl < 0 {
			// An incomplete line (or nothing): cur ended only if this
			// line is not a continuation of it.
			complete = len(r.head) > 0 && r.head[0] != ' ' && r.head[0] != '\t'
			r.short = true
			break
		}
		line := bytes.TrimSuffix(r.head[:nl], []byte("\r"))
		r.head = r.head[nl+1:]
		if len(line) == 0 {
			complete = true
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !r.have {
				r.done = true
				return false
			}
			r.cur = append(r.cur, ' ')
			r.cur = append(r.cur, bytes.TrimLeft(line, " \t")...)
			continue
		}
		if r.have {
			r.out = append(r.out, string(r.cur))
			// string() copied it: the buffer is free for the next field.
			r.cur = append(r.cur[:0], line...)
			return true
		}
		r.cur = append(r.cur[:0], line...)
		r.have = true
	}
	r.done = true
	if r.have && complete && len(r.out) < r.max {
		r.out = append(r.out, string(r.cur))
		return true
	}
	return false
}

func fieldNameIs(f, name string) bool {
	return len(f) > len(name) && f[len(name)] == ':' && strings.EqualFold(f[:len(name)], name)
}

// fieldValue returns the value of field f if its name is name.
func fieldValue(f, name string) (string, bool) {
	if !fieldNameIs(f, name) {
		return "", false
	}
	return strings.TrimLeft(f[len(name)+1:], " \t"), true
}

// parseQueueReceived parses qmail-queue.c:receivedfmt()'s line.
func parseQueueReceived(f string) (*QueueReceived, bool) {
	v, ok := fieldValue(f, "Received")
	if !ok || !strings.HasPrefix(v, "(qmail ") {
		return nil, false
	}
	v = v[len("(qmail "):]
	sp := strings.IndexByte(v, ' ')
	if sp <= 0 {
		return nil, false
	}
	qp, err := strconv.ParseUint(v[:sp], 10, 64)
	if err != nil {
		return nil, false
	}
	v = v[sp+1:]
	if !strings.HasPrefix(v, "invoked ") {
		return nil, false
	}
	v = v[len("invoked "):]
	end := strings.Index(v, ");")
	if end < 0 {
		return nil, false
	}
	how, date := v[:end], strings.TrimSpace(v[end+2:])
	q := &QueueReceived{QP: qp, UID: -1, Date: date}
	switch {
	case how == string(InvokedFromNetwork), how == string(InvokedByAlias), how == string(InvokedForBounce):
		q.Invoked = Invocation(how)
	case strings.HasPrefix(how, "by uid "):
		uid, err := strconv.ParseInt(how[len("by uid "):], 10, 64)
		if err != nil {
			return nil, false
		}
		q.Invoked, q.UID = InvokedByUID, uid
	default:
		return nil, false
	}
	return q, true
}

// parseSMTPReceived parses qmail-smtpd's received.c:received() header.
func parseSMTPReceived(f string) (*SMTPReceived, bool) {
	v, ok := fieldValue(f, "Received")
	if !ok || !strings.HasPrefix(v, "from ") {
		return nil, false
	}
	v = v[len("from "):]
	r := &SMTPReceived{}
	// received.c:safeput() turns every byte but [A-Za-z0-9.@%+/=:-[]] into
	// '?', so host, HELO, remoteinfo and IP hold no blank or parenthesis.
	// The protocol is written as is (a TLS patch may put a comment there).
	sp := strings.IndexByte(v, ' ')
	if sp <= 0 {
		return nil, false
	}
	r.Host, v = v[:sp], v[sp+1:]
	if strings.HasPrefix(v, "(HELO ") {
		end := strings.Index(v, ") (")
		if end < 0 {
			return nil, false
		}
		r.HELO, r.HELOShown = v[len("(HELO "):end], true
		v = v[end+2:]
	} else {
		r.HELO = r.Host
	}
	if !strings.HasPrefix(v, "(") {
		return nil, false
	}
	end := strings.Index(v, ") by ")
	if end < 0 {
		return nil, false
	}
	inner := v[1:end]
	v = v[end+len(") by "):]
	if at := strings.LastIndexByte(inner, '@'); at >= 0 {
		r.RemoteInfo, r.IP = inner[:at], inner[at+1:]
	} else {
		r.IP = inner
	}
	if r.IP == "" {
		return nil, false
	}
	w := strings.Index(v, " with ")
	if w < 0 {
		return nil, false
	}
	r.By, v = v[:w], v[w+len(" with "):]
	semi := strings.LastIndex(v, "; ")
	if semi < 0 {
		r.With = strings.TrimSpace(v)
	} else {
		r.With, r.Date = strings.TrimSpace(v[:semi]), strings.TrimSpace(v[semi+2:])
	}
	r.Protocol = protocolKeyword(r.With)
	return r, true
}

// protocolKeyword returns the first word of s outside parentheses: "ESMTPS
// (cipher encrypted)" and "(cipher encrypted) SMTP" give ESMTPS and SMTP.
func protocolKeyword(s string) string {
	depth := 0
	start := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '(':
			if start >= 0 && depth == 0 {
				return s[start:i]
			}
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		case c == ' ' || c == '\t':
			if start >= 0 && depth == 0 {
				return s[start:i]
			}
		default:
			if depth == 0 && start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		return s[start:]
	}
	return ""
}

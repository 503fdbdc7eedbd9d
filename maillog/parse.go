package maillog

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// str returns b as a string without copying: valid until the Reader reads
// its next line (the Analyzer clones what it keeps).
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// header splits a log line into its stamp, host, tag and message. It
// returns the message, or ok=false when the line has a stamp form it does
// not know (then the whole line is taken as a bare message).
func (p *parser) header(b []byte, ev *Event) []byte {
	if len(b) == 0 {
		return b
	}
	switch c := b[0]; {
	case c == '{':
		return p.journal(b, ev)
	case c == '<':
		i := bytes.IndexByte(b, '>')
		if i < 2 || i > 4 {
			return b
		}
		b = b[i+1:]
		if len(b) > 2 && b[0] == '1' && b[1] == ' ' {
			return p.rfc5424(b[2:], ev)
		}
		return p.header(b, ev)
	case c == '@':
		t, ok := parseTAI64N(b)
		if !ok {
			return b
		}
		ev.Time = t
		p.form = fTAI64N
		b = b[25:]
		if len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
		return b
	case c >= '0' && c <= '9':
		t, n, ok := parseISO(b)
		if !ok {
			return b
		}
		ev.Time = t
		p.form = fRFC3339
		return p.hostTag(b[n:], ev)
	case c >= 'A' && c <= 'S':
		t, ok := p.year.parse3164(b)
		if !ok {
			return b
		}
		ev.Time = t
		p.form = fRFC3164
		return p.hostTag(b[15:], ev)
	}
	return b
}

// indexColonSpace is bytes.Index(b, []byte(": ")) with the byte after
// each ':' checked inline (bytes.Index calls memequal for each ':' it
// finds in a line longer than 64 bytes).
func indexColonSpace(b []byte) int {
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], ':')
		if i < 0 {
			return -1
		}
		off += i
		if off+1 < len(b) && b[off+1] == ' ' {
			return off
		}
		off++
	}
}

// hasPrefix is bytes.HasPrefix for a constant prefix: inlined, the
// comparison is a few loads instead of a call to memequal.
func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// trimSpaces is bytes.TrimLeft(b, " ") without the call: the header and
// the delivery line have one or two spaces to drop.
func trimSpaces(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}

// hostTag reads " host tag[pid]: " after the stamp. The host field is
// whatever single word syslog wrote there ("mail", or "relay/mail" when a
// relay keeps the origin's name).
func (p *parser) hostTag(b []byte, ev *Event) []byte {
	b = trimSpaces(b)
	sp := bytes.IndexByte(b, ' ')
	if sp < 0 {
		return b
	}
	if b[sp-1] == ':' {
		// dovecot's own log_path has no host: "Dec 07 18:22:48 auth: Info: ..."
		t := b[:sp-1]
		if i := bytes.IndexByte(t, '('); i > 0 && t[len(t)-1] == ')' {
			ev.PID = str(t[i+1 : len(t)-1])
			t = t[:i]
		}
		ev.Program = str(t)
		return b[sp+1:]
	}
	ev.Host = str(b[:sp])
	b = b[sp+1:]
	return p.tag(b, ev)
}

// tag reads "prog[pid]: " or "prog: " at the start of b.
func (p *parser) tag(b []byte, ev *Event) []byte {
	end := indexColonSpace(b)
	if end < 0 {
		if bytes.HasSuffix(b, []byte(":")) {
			end = len(b) - 1
		} else {
			return b
		}
	}
	t := b[:end]
	if bytes.IndexByte(t, ' ') >= 0 {
		return b // a message without a tag
	}
	if i := bytes.IndexByte(t, '['); i > 0 && t[len(t)-1] == ']' {
		ev.PID = str(t[i+1 : len(t)-1])
		t = t[:i]
	}
	ev.Program = str(t)
	if end+2 > len(b) {
		return nil
	}
	return b[end+2:]
}

// rfc5424 reads "TIMESTAMP HOST APP PROCID MSGID SD MSG" (RFC 5424 6.).
func (p *parser) rfc5424(b []byte, ev *Event) []byte {
	t, n, ok := parseISO(b)
	if !ok && !(len(b) > 1 && b[0] == '-' && b[1] == ' ') {
		return b
	}
	if !ok {
		n = 1
	}
	ev.Time = t
	p.form = fRFC5424
	b = b[n:]
	var f [4][]byte
	for i := range f {
		b = bytes.TrimLeft(b, " ")
		sp := bytes.IndexByte(b, ' ')
		if sp < 0 {
			return b
		}
		f[i], b = b[:sp], b[sp+1:]
	}
	nil5424 := func(v []byte) string {
		if len(v) == 1 && v[0] == '-' {
			return ""
		}
		return str(v)
	}
	ev.Host, ev.Program, ev.PID = nil5424(f[0]), nil5424(f[1]), nil5424(f[2])
	// structured data: "-" or one or more [id k="v" ...] elements
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	} else {
		for len(b) > 0 && b[0] == '[' {
			i := 1
			for i < len(b) && b[i] != ']' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return nil
			}
			b = b[i+1:]
		}
	}
	if len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // the BOM RFC 5424 allows before MSG
	return b
}

// journalLine is what journalctl -o json writes per entry; MESSAGE is a
// string, or an array of byte values when it is not valid UTF-8.
type journalLine struct {
	Message   json.RawMessage `json:"MESSAGE"`
	Ident     string          `json:"SYSLOG_IDENTIFIER"`
	PID       string          `json:"SYSLOG_PID"`
	ProcPID   string          `json:"_PID"`
	Host      string          `json:"_HOSTNAME"`
	Realtime  string          `json:"__REALTIME_TIMESTAMP"`
	SourceRtm string          `json:"_SOURCE_REALTIME_TIMESTAMP"`
}

func (p *parser) journal(b []byte, ev *Event) []byte {
	var j journalLine
	if err := json.Unmarshal(b, &j); err != nil {
		return b
	}
	p.form = fJournal
	us := j.SourceRtm
	if us == "" {
		us = j.Realtime
	}
	if n, err := strconv.ParseInt(us, 10, 64); err == nil {
		ev.Time = time.UnixMicro(n).UTC()
	}
	ev.Host, ev.Program, ev.PID = j.Host, j.Ident, j.PID
	if ev.PID == "" {
		ev.PID = j.ProcPID
	}
	var msg string
	if err := json.Unmarshal(j.Message, &msg); err != nil {
		var raw []byte
		var nums []int
		if json.Unmarshal(j.Message, &nums) != nil {
			return nil
		}
		for _, n := range nums {
			raw = append(raw, byte(n))
		}
		return raw
	}
	return []byte(msg)
}

// service is the last component of a Postfix-style tag: "smtpd" for
// "postfix/submission/smtpd" and for "postfix-out/smtpd".
func service(program string) string {
	if i := strings.LastIndexByte(program, '/'); i >= 0 {
		return program[i+1:]
	}
	return program
}

// qidClass says, per byte, which queue ID alphabets hold it: qidHex
// (0-9A-F, short IDs) and qidLong (digits and consonants, both cases).
var qidClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = qidHex | qidLong
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = qidLong
		t[c+'a'-'A'] = qidLong
	}
	for _, v := range "IOUaeiou" {
		t[v] = 0
	}
	for c := 'A'; c <= 'F'; c++ {
		t[c] = qidHex | qidLong // as the loop this replaces had it: A-F pass in long IDs too
	}
	return t
}()

const (
	qidHex  = 1 << iota // 0-9A-F
	qidLong             // digits and letters but the vowels (A and E pass, as hex digits)
)

// fields iterates over "key=value, key=value" lists. A value in angle
// brackets runs to the closing '>' (addresses may hold commas); other
// values run to ',' or ' '.
type fields struct{ b []byte }

func (f *fields) next() (key, val []byte, ok bool) {
	b := f.b
	i := 0
	for i < len(b) && (b[i] == ',' || b[i] == ' ') {
		i++
	}
	b = b[i:]
	// the key runs to '='; a space first means there is no key=value
	// left ("status=sent (text)" leaves "(text)" here): stop.
	eq := 0
	for eq < len(b) && b[eq] != '=' {
		if b[eq] == ' ' {
			return nil, nil, false
		}
		eq++
	}
	if eq == 0 || eq == len(b) {
		return nil, nil, false
	}
	key = b[:eq]
	b = b[eq+1:]
	if len(b) > 0 && b[0] == '<' {
		for i := 1; i < len(b); i++ {
			if b[i] == '>' && (i+1 == len(b) || b[i+1] == ',' || b[i+1] == ' ') {
				val, f.b = b[1:i], b[i+1:]
				return key, val, true
			}
		}
		val, f.b = b[1:], nil
		return key, val, true
	}
	for i, c := range b {
		if c == ',' || c == ' ' {
			val, f.b = b[:i], b[i:]
			return key, val, true
		}
	}
	val, f.b = b, nil
	return key, val, true
}

// rest is what follows the last value: " (text)" after status=.
func (f *fields) rest() []byte { return bytes.TrimLeft(f.b, " ") }

// strField names a key and the string its value goes to.
type strField struct {
	key string
	to  *string
}

// strFields sets, for each key=value of b (see fields) whose key one of
// dst names, the string it goes to, and returns what follows the last
// value, leading spaces trimmed.
func strFields(b []byte, dst ...strField) []byte {
	f := fields{b}
	for {
		k, v, ok := f.next()
		if !ok {
			return f.rest()
		}
		for i := range dst {
			// length and first byte first: most keys differ there
			if d := dst[i].key; len(d) == len(k) && d[0] == k[0] && d == string(k) {
				*dst[i].to = str(v)
				break
			}
		}
	}
}

// nameAddr splits Postfix's "name[addr]" (the address may be IPv6).
func nameAddr(b string) (name, addr string) {
	i := strings.LastIndexByte(b, '[')
	if i < 0 || b[len(b)-1] != ']' {
		return b, ""
	}
	return b[:i], b[i+1 : len(b)-1]
}

func atoi(b string) int64 {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return n
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// classify fills ev from the message part of a line.
func (p *parser) classify(msg []byte, ev *Event) {
	prog := ev.Program
	svc := service(prog)
	switch {
	case svc == "qmail" || svc == "qmail-send" || prog == "":
		// splogger: "qmail: 1374486441.012502 new msg 90219"
		if t, n, ok := parseEpoch(msg); ok {
			ev.Time = t
			msg = msg[n:]
		}
		if p.qmail(msg, ev) {
			return
		}
	}
	// vchkpw lines are looked for anywhere in the message only under the
	// tags vpopmail writes them with; under any other tag only at its
	// start (no scan of every Postfix line).
	if svc == "vpopmail" || svc == "vchkpw" || prog == "" {
		if i := bytes.Index(msg, []byte("vchkpw-")); i >= 0 && p.vchkpw(msg[i:], ev) {
			return
		}
	} else if hasPrefix(msg, "vchkpw-") && p.vchkpw(msg, ev) {
		return
	}
	switch svc {
	case "smtpd", "cleanup", "qmgr", "smtp", "lmtp", "local", "virtual", "pipe", "error", "retry", "discard",
		"bounce", "postsuper", "pickup", "postscreen", "nqmgr", "oqmgr", "trivial-rewrite", "master", "anvil",
		"scache", "tlsmgr", "postfix-script", "verify", "proxymap", "sendmail", "postdrop", "postlog", "dnsblog", "tlsproxy":
		p.postfix(svc, msg, ev)
		return
	case "saslauthd":
		p.saslauthd(msg, ev)
		return
	case "authdaemond", "imapd", "pop3d", "imapd-ssl", "pop3d-ssl", "courier-imapd", "courier-pop3d":
		p.courier(msg, ev)
		return
	}
	if svc == "dovecot" || strings.HasPrefix(svc, "dovecot") || hasPrefix(msg, "dovecot: ") ||
		strings.HasSuffix(svc, "-login") || svc == "auth" || strings.HasPrefix(svc, "auth-worker") {
		p.dovecot(svc, msg, ev)
		return
	}
}

func (p *parser) postfix(svc string, msg []byte, ev *Event) {
	ev.Kind = Other
	// the queue ID runs to the first ": ": its bytes are all in qidClass,
	// so the first byte outside it must start that ": " (and a run
	// longer than any queue ID is none): no search through the line
	// A queue ID is short (hex, upper case, 5 or more bytes) or long
	// (enable_long_queue_ids: base-52 time, 'z', inode, drawn from digits
	// and consonants, 12 or more; see Postfix's mail_queue.h): the
	// alphabets its bytes are all in are told in the same loop.
	sp, all := 0, uint8(qidHex|qidLong)
	for sp < len(msg) && sp <= 32 {
		c := qidClass[msg[sp]]
		if c == 0 {
			break
		}
		all &= c
		sp++
	}
	if sp >= 5 && sp <= 32 && sp+1 < len(msg) && msg[sp] == ':' && msg[sp+1] == ' ' && (all&qidHex != 0 || all&qidLong != 0 && sp >= 12) {
		ev.QueueID = str(msg[:sp])
		p.postfixQueued(svc, msg[sp+2:], ev)
		return
	}
	switch {
	case hasPrefix(msg, "NOQUEUE: "):
		rest := msg[len("NOQUEUE: "):]
		if hasPrefix(rest, "reject: ") || hasPrefix(rest, "milter-reject: ") {
			p.reject(rest, ev)
		}
	case hasPrefix(msg, "connect from "):
		ev.Kind = Connect
		ev.ClientName, ev.ClientAddr = nameAddr(str(msg[len("connect from "):]))
	case hasPrefix(msg, "warning: "):
		// smtpd_sasl_glue.c: "%s: SASL %s authentication failed: %s"
		// (namaddr, mechanism, server reply); Postfix 3.x appends
		// ", sasl_username=%s" when the user is known.
		w := msg[len("warning: "):]
		i := bytes.Index(w, []byte(": SASL "))
		if i < 0 {
			return
		}
		rest := w[i+len(": SASL "):]
		j := bytes.Index(rest, []byte(" authentication failed"))
		if j < 0 {
			return
		}
		ev.Kind = AuthFailed
		ev.ClientName, ev.ClientAddr = nameAddr(str(w[:i]))
		ev.Method = str(rest[:j])
		rest = rest[j+len(" authentication failed"):]
		if k := bytes.Index(rest, []byte(", sasl_username=")); k >= 0 {
			ev.User = str(rest[k+len(", sasl_username="):])
			rest = rest[:k]
		}
		ev.Text = str(bytes.TrimPrefix(rest, []byte(": ")))
	}
}

func (p *parser) postfixQueued(svc string, m []byte, ev *Event) {
	switch {
	// the delivery line first: the most frequent (the prefixes exclude each other)
	case hasPrefix(m, "to="):
		ev.Kind = Delivery
		if !deliveryLine(m, ev) {
			deliveryFields(m, ev)
		}
	case hasPrefix(m, "client="):
		ev.Kind = Client
		var client string
		if !clientLine(m, &client, &ev.Method, &ev.User) {
			strFields(m, strField{"client", &client}, strField{"sasl_method", &ev.Method}, strField{"sasl_username", &ev.User})
		}
		if client != "" {
			ev.ClientName, ev.ClientAddr = nameAddr(client)
		}
	case hasPrefix(m, "message-id="):
		ev.Kind = MessageID
		ev.Text = str(bytes.Trim(m[len("message-id="):], "<>"))
	case hasPrefix(m, "from="):
		ev.Kind = Queued
		var size, nrcpt string
		if !queuedLine(m, &ev.Sender, &size, &nrcpt) {
			strFields(m, strField{"from", &ev.Sender}, strField{"size", &size}, strField{"nrcpt", &nrcpt}, strField{"status", &ev.Status})
		}
		ev.Size, ev.Nrcpt = atoi(size), int(atoi(nrcpt))
		if ev.Status != "" {
			ev.Kind = Expired // "from=<S>, status=expired, returned to sender"
		}
	case string(m) == "removed":
		ev.Kind = Removed
	case hasPrefix(m, "placed on hold"), hasPrefix(m, "hold: "):
		ev.Kind = Held
	case hasPrefix(m, "uid="):
		ev.Kind = Pickup
		strFields(m, strField{"uid", &ev.UID}, strField{"from", &ev.Sender})
	case hasPrefix(m, "sender non-delivery notification: "):
		ev.Kind = BounceNotice
		ev.NewID = str(m[len("sender non-delivery notification: "):])
	case hasPrefix(m, "reject: "), hasPrefix(m, "milter-reject: "):
		p.reject(m, ev)
	}
}

// deliveryFields reads a delivery line whatever the order of its fields
// (the general form of deliveryLine).
func deliveryFields(m []byte, ev *Event) {
	r := strFields(m, strField{"to", &ev.Recipient}, strField{"orig_to", &ev.OrigTo}, strField{"relay", &ev.Relay},
		strField{"dsn", &ev.DSN}, strField{"status", &ev.Status})
	if len(r) > 1 && r[0] == '(' {
		ev.Text = str(bytes.TrimSuffix(r[1:], []byte(")")))
	}
}

// deliveryLine reads a delivery agent's "to=<R>, relay=X, delay=D,
// delays=a/b/c/d, dsn=N, status=S (text)" in the fixed order log_adhoc.c
// writes it (Postfix src/global/log_adhoc.c: "to=<%s>", then ", orig_to=<%s>"
// when it differs, ", relay=%s", ", conn_use=%d" when reused, ", delay=",
// ", delays=", ", dsn=%s", ", status=%s" and " (%s)"), skipping the delay
// fields with one search instead of reading them. It reports false, leaving
// the generic key=value reader to it, when the line is laid out otherwise.
func deliveryLine(m []byte, ev *Event) bool {
	v, b, ok := angleValue(m[len("to="):])
	if !ok {
		return false
	}
	rcpt := v
	var orig []byte
	if hasPrefix(b, ", orig_to=") {
		if orig, b, ok = angleValue(b[len(", orig_to="):]); !ok {
			return false
		}
	}
	if !hasPrefix(b, ", relay=") {
		return false
	}
	b = b[len(", relay="):]
	i := bytes.IndexByte(b, ',')
	if i < 0 || bytes.IndexByte(b[:i], ' ') >= 0 {
		return false
	}
	relay := b[:i]
	// skip ", conn_use=N", ", delay=D" and ", delays=a/b/c/d" (no commas
	// inside) to ", dsn="
	b = b[i:]
	for !hasPrefix(b, ", dsn=") {
		// a line without dsn= (Postfix before 2.3) reaches status= and
		// its text here: the general reader takes it
		k := bytes.IndexByte(b[1:], ',')
		if k < 0 || hasPrefix(b, ", status=") || bytes.IndexByte(b[2:k+1], ' ') >= 0 {
			return false
		}
		b = b[k+1:]
	}
	b = b[len(", dsn="):]
	k := bytes.IndexByte(b, ',')
	if k < 0 || bytes.IndexByte(b[:k], ' ') >= 0 || !hasPrefix(b[k:], ", status=") {
		return false
	}
	dsn := b[:k]
	b = b[k+len(", status="):]
	st, rest := b, []byte(nil)
	for e, c := range b {
		if c == ',' {
			return false // more key=value pairs after status=: not log_adhoc's layout
		}
		if c == ' ' {
			st, rest = b[:e], trimSpaces(b[e:])
			break
		}
	}
	ev.Recipient, ev.Relay, ev.DSN, ev.Status = str(rcpt), str(relay), str(dsn), str(st)
	if orig != nil {
		ev.OrigTo = str(orig)
	}
	if len(rest) > 1 && rest[0] == '(' {
		ev.Text = str(bytes.TrimSuffix(rest[1:], []byte(")")))
	}
	return true
}

// clientLine reads smtpd's "client=NAME[ADDR]" and its SASL form
// "client=NAME[ADDR], sasl_method=M, sasl_username=U" (smtpd.c's
// mail_open_stream and smtpd_sasl_proto.c's smtpd_sasl_mail_log, with
// none of the optional sasl_sender=, orig_queue_id=, orig_client= after
// it) in that fixed order, each value as fields.next reads it. For any
// other layout it sets nothing and returns false: strFields takes it.
func clientLine(m []byte, client, method, user *string) bool {
	c, b, ok := plainValue(m[len("client="):])
	if !ok {
		return false
	}
	if len(b) == 0 {
		*client = str(c)
		return true
	}
	if !hasPrefix(b, ", sasl_method=") {
		return false
	}
	meth, b, ok := plainValue(b[len(", sasl_method="):])
	if !ok || !hasPrefix(b, ", sasl_username=") {
		return false
	}
	u, b, ok := plainValue(b[len(", sasl_username="):])
	if !ok || len(b) != 0 {
		return false
	}
	*client, *method, *user = str(c), str(meth), str(u)
	return true
}

// queuedLine reads qmgr's "from=<S>, size=N, nrcpt=N (queue active)"
// (qmgr_active.c) as strFields would, in that fixed layout only; false
// (nothing set) for any other, the expired line among them.
func queuedLine(m []byte, sender, size, nrcpt *string) bool {
	s, b, ok := angleValue(m[len("from="):])
	if !ok || !hasPrefix(b, ", size=") {
		return false
	}
	sz, b, ok := plainValue(b[len(", size="):])
	if !ok || !hasPrefix(b, ", nrcpt=") {
		return false
	}
	n, b, ok := plainValue(b[len(", nrcpt="):])
	if !ok || string(b) != " (queue active)" {
		return false
	}
	*sender, *size, *nrcpt = str(s), str(sz), str(n)
	return true
}

// plainValue reads a value that does not start with '<' as fields.next
// does: up to the first ',' or ' '. It returns what follows.
func plainValue(b []byte) (val, rest []byte, ok bool) {
	if len(b) > 0 && b[0] == '<' {
		return nil, nil, false
	}
	for i, c := range b {
		if c == ',' || c == ' ' {
			return b[:i], b[i:], true
		}
	}
	return b, nil, true
}

// angleValue reads "<v>" at the start of b as fields.next does: the value
// runs to the first '>' followed by ',', ' ' or the end. It returns what
// follows the '>'.
func angleValue(b []byte) (val, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '<' {
		return nil, nil, false
	}
	for i := 1; ; {
		j := bytes.IndexByte(b[i:], '>')
		if j < 0 {
			return nil, nil, false
		}
		i += j
		if i+1 == len(b) || b[i+1] == ',' || b[i+1] == ' ' {
			return b[1:i], b[i+1:], true
		}
		i++
	}
}

// reject reads smtpd's "reject: RCPT from name[addr]: 554 5.7.1 text;
// from=<s> to=<r> proto=ESMTP helo=<h>" (smtpd_check.c, log_whatsup).
func (p *parser) reject(m []byte, ev *Event) {
	ev.Kind = Reject
	i := bytes.Index(m, []byte(" from "))
	if i < 0 {
		return
	}
	r := m[i+len(" from "):]
	j := bytes.Index(r, []byte(": "))
	if j < 0 {
		return
	}
	ev.ClientName, ev.ClientAddr = nameAddr(str(r[:j]))
	r = r[j+2:]
	semi := bytes.LastIndex(r, []byte("; from=<"))
	if semi < 0 {
		ev.Text = str(r)
		return
	}
	ev.Text = str(r[:semi])
	strFields(r[semi+2:], strField{"from", &ev.Sender}, strField{"to", &ev.Recipient})
}

// qmail reads qmail-send's log (qmail-send.c, qmail-1.03): the lines are
// fixed formats with spaces between words.
func (p *parser) qmail(m []byte, ev *Event) bool {
	word := func(b []byte) ([]byte, []byte) {
		i := bytes.IndexByte(b, ' ')
		if i < 0 {
			return b, nil
		}
		return b[:i], b[i+1:]
	}
	switch {
	case hasPrefix(m, "new msg "):
		ev.Kind = QmailNew
		ev.QueueID = str(m[len("new msg "):])
	case hasPrefix(m, "info msg "):
		// "info msg %lu: bytes %lu from <%s> qp %lu uid %lu"
		ev.Kind = QmailInfo
		r := m[len("info msg "):]
		c := bytes.IndexByte(r, ':')
		if c < 0 {
			return false
		}
		ev.QueueID = str(r[:c])
		r = r[c+1:]
		if i := bytes.Index(r, []byte(" bytes ")); i >= 0 {
			ev.Size = atoi(str(r[i+len(" bytes "):]))
		}
		if i := bytes.Index(r, []byte(" from <")); i >= 0 {
			s := r[i+len(" from <"):]
			if j := bytes.LastIndex(s, []byte("> qp ")); j >= 0 {
				ev.Sender = str(s[:j])
				var qp, uid []byte
				qp, s = word(s[j+len("> qp "):])
				ev.QP = str(qp)
				if hasPrefix(s, "uid ") {
					uid, _ = word(s[4:])
					ev.UID = str(uid)
				}
			}
		}
	case hasPrefix(m, "starting delivery "):
		// "starting delivery %d: msg %lu to %s %s" (local|remote, recipient)
		ev.Kind = QmailStart
		r := m[len("starting delivery "):]
		c := bytes.Index(r, []byte(": msg "))
		if c < 0 {
			return false
		}
		ev.Delivery = str(r[:c])
		r = r[c+len(": msg "):]
		var id, ch []byte
		id, r = word(r)
		ev.QueueID = str(id)
		if hasPrefix(r, "to ") {
			ch, r = word(r[3:])
			ev.Channel = str(ch)
			ev.Recipient = str(r)
		}
	case hasPrefix(m, "delivery "):
		// "delivery %d: success|deferral|failure: text"
		r := m[len("delivery "):]
		c := bytes.Index(r, []byte(": "))
		if c < 0 {
			return false
		}
		ev.Kind = Delivery
		ev.Delivery = str(r[:c])
		r = r[c+2:]
		st, text, _ := bytes.Cut(r, []byte(": "))
		ev.Status = str(bytes.TrimSuffix(st, []byte(":")))
		ev.Text = str(text)
	case hasPrefix(m, "bounce msg "):
		ev.Kind = QmailBounce
		var id []byte
		id, r := word(m[len("bounce msg "):])
		ev.QueueID = str(id)
		if hasPrefix(r, "qp ") {
			ev.QP = str(r[3:])
		}
	case hasPrefix(m, "end msg "):
		ev.Kind = QmailEnd
		ev.QueueID = str(m[len("end msg "):])
	case hasPrefix(m, "status: "), hasPrefix(m, "triple bounce"),
		hasPrefix(m, "alert: "), hasPrefix(m, "warning: "),
		hasPrefix(m, "exiting"), hasPrefix(m, "bounce msg"):
		ev.Kind = Other
	default:
		return false
	}
	return true
}

// vchkpw reads vpopmail's vchkpw lines (vchkpw.c): "vchkpw-<service>:
// (<method>) login success user@domain:ip", "... password fail
// user@domain:ip", "... password fail (pass: '<password>') user@domain:ip"
// (ENABLE_LOGGING 3/4: the password is skipped, never stored), "...
// vpopmail user not found user@domain:ip".
func (p *parser) vchkpw(m []byte, ev *Event) bool {
	c := bytes.Index(m, []byte(": "))
	if c < 0 {
		return false
	}
	ev.Service = str(m[:c])
	r := m[c+2:]
	if len(r) > 0 && r[0] == '(' {
		if e := bytes.IndexByte(r, ')'); e > 0 {
			ev.Method = str(r[1:e])
			r = bytes.TrimLeft(r[e+1:], " ")
		}
	}
	switch {
	case bytes.Contains(r, []byte("login success ")):
		ev.Kind = Login
	case hasPrefix(r, "password fail"), hasPrefix(r, "vpopmail user not found"),
		hasPrefix(r, "null password given"), hasPrefix(r, "invalid user/domain"),
		hasPrefix(r, "user has no password"):
		ev.Kind = LoginFailed
	default:
		ev.Kind = Other
		return true
	}
	// user@domain:ip is the last word; a logged password comes before it.
	last := r
	if i := bytes.LastIndexByte(r, ' '); i >= 0 {
		last = r[i+1:]
	}
	at := bytes.LastIndexByte(last, '@')
	col := -1
	if at >= 0 {
		if i := bytes.IndexByte(last[at:], ':'); i >= 0 {
			col = at + i
		}
	} else {
		col = bytes.IndexByte(last, ':')
	}
	if col < 0 {
		ev.User = str(last)
		return true
	}
	ev.User, ev.ClientAddr = str(last[:col]), str(last[col+1:])
	return true
}

// dovecot reads the login processes' "Login: user=<u>, method=M, rip=IP"
// and "Disconnected (auth failed, N attempts ...): user=<u>, method=M,
// rip=IP", and the auth process's "passdb(user,ip[,<session>]): Password
// mismatch|unknown user" failures.
func (p *parser) dovecot(svc string, m []byte, ev *Event) {
	ev.Kind = Other
	m = bytes.TrimPrefix(m, []byte("dovecot: "))
	if svc == "dovecot" || svc == "" {
		c := bytes.Index(m, []byte(": "))
		if c < 0 {
			return
		}
		svc, m = str(m[:c]), m[c+2:]
	}
	for _, lvl := range []string{"Info: ", "Warning: ", "Error: "} {
		m = bytes.TrimPrefix(m, []byte(lvl))
	}
	ev.Service = svc
	switch {
	case strings.HasSuffix(svc, "-login"):
		var ok bool
		switch {
		case hasPrefix(m, "Login: "):
			ok = true
		case bytes.Contains(m, []byte("auth failed")):
		default:
			return
		}
		i := bytes.Index(m, []byte("user=<"))
		if i < 0 {
			return
		}
		strFields(m[i:], strField{"user", &ev.User}, strField{"method", &ev.Method}, strField{"rip", &ev.ClientAddr})
		if ok {
			ev.Kind = Login
		} else {
			ev.Kind = LoginFailed
		}
	case svc == "auth" || strings.HasPrefix(svc, "auth-worker"):
		// "passwd-file(user,1.2.3.4,<sess>): Password mismatch"
		o := bytes.IndexByte(m, '(')
		e := bytes.Index(m, []byte("): "))
		if o < 0 || e < o {
			return
		}
		what := m[e+3:]
		if !(bytes.Contains(what, []byte("mismatch")) || bytes.Contains(what, []byte("unknown user")) ||
			bytes.Contains(what, []byte("failed"))) {
			return
		}
		args := bytes.Split(m[o+1:e], []byte(","))
		ev.Kind = LoginFailed
		ev.User = str(args[0])
		if len(args) > 1 {
			ev.ClientAddr = str(args[1])
		}
		// auth_debug_passwords appends "(given password: ...)": never kept
		if i := bytes.Index(what, []byte("(given password")); i >= 0 {
			what = bytes.TrimRight(what[:i], " ")
		}
		ev.Text = str(what)
	}
}

// saslauthd reads "do_auth : auth failure: [user=u] [service=s]
// [realm=r] [mech=m] [reason=...]" and "auth success: [user=u] ..."
// (saslauthd-main.c). saslauthd logs no client address.
func (p *parser) saslauthd(m []byte, ev *Event) {
	ev.Kind = Other
	var failed bool
	switch {
	case bytes.Contains(m, []byte("auth failure: ")):
		failed = true
	case bytes.Contains(m, []byte("auth success: ")):
	default:
		return
	}
	get := func(k string) string {
		i := bytes.Index(m, []byte("["+k+"="))
		if i < 0 {
			return ""
		}
		v := m[i+len(k)+2:]
		if j := bytes.IndexByte(v, ']'); j >= 0 {
			return str(v[:j])
		}
		return ""
	}
	ev.User, ev.Service, ev.Method = get("user"), get("service"), get("mech")
	if realm := get("realm"); realm != "" && !strings.Contains(ev.User, "@") {
		ev.User += "@" + realm
	}
	if failed {
		ev.Kind = LoginFailed
	} else {
		ev.Kind = Login
	}
}

// courier reads courier's "LOGIN FAILED, user=u, ip=[::ffff:1.2.3.4]" and
// "LOGIN, user=u, ip=[...]" (imapd/pop3d, authenticated through
// authdaemond), and authdaemond's own failures when they name the user.
func (p *parser) courier(m []byte, ev *Event) {
	ev.Kind = Other
	var failed bool
	switch {
	case hasPrefix(m, "LOGIN FAILED, "):
		failed = true
	case hasPrefix(m, "LOGIN, "):
	case bytes.Contains(m, []byte("authentication error")) || bytes.Contains(m, []byte("password mismatch")) ||
		bytes.Contains(m, []byte("authentication failed")):
		failed = true
		if !bytes.Contains(m, []byte("user=")) {
			ev.Kind = LoginFailed
			return
		}
	default:
		return
	}
	list := m[bytes.IndexByte(m, ',')+1:]
	if i := bytes.Index(m, []byte("user=")); i >= 0 {
		list = m[i:]
	}
	var ip string
	strFields(list, strField{"user", &ev.User}, strField{"ip", &ip})
	ev.ClientAddr = strings.TrimPrefix(strings.Trim(ip, "[]"), "::ffff:")
	if failed {
		ev.Kind = LoginFailed
	} else {
		ev.Kind = Login
	}
}

// Redact returns line with any password it carries replaced by
// "[redacted]" (see RedactSecrets). It also replaces control characters,
// so the result is safe to print on a terminal.
func Redact(line string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, RedactSecrets(line))
}

// RedactSecrets returns line with any password it carries replaced by
// "[redacted]": vchkpw's "(pass: '...')" (ENABLE_LOGGING 3 and 4),
// dovecot's "(given password: ...)" (auth_debug_passwords) and
// "password=..." as debug logs print it. Control characters stay: escape
// the result (internal/termsafe) before it reaches a terminal.
func RedactSecrets(line string) string {
	if i := strings.Index(line, "(pass: '"); i >= 0 {
		// the password may hold "') ": cut to the last "') " before the
		// final user@domain:ip word.
		end := strings.LastIndex(line, "') ")
		if end < i {
			end = len(line) - 2
		}
		line = line[:i] + "(pass: [redacted]" + line[end+1:]
	}
	if i := strings.Index(line, "(given password: "); i >= 0 {
		end := strings.LastIndexByte(line, ')')
		if end < i {
			end = len(line) - 1
		}
		line = line[:i] + "(given password: [redacted]" + line[end:]
	}
	for _, k := range []string{"password=", "pass=", "passwd="} {
		for off := 0; ; {
			i := strings.Index(line[off:], k)
			if i < 0 {
				break
			}
			i += off + len(k)
			j := strings.IndexAny(line[i:], " ,]")
			if j < 0 {
				j = len(line) - i
			}
			line = line[:i] + "[redacted]" + line[i+j:]
			off = i + len("[redacted]")
		}
	}
	return line
}

package postfixq

import (
	"bytes"
	"strconv"
	"strings"

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

// ParseLog parses a logfile: entries are blocks of name=value lines
// separated by blank lines; a block with only the old-style line
// "<recipient>: reason" (backwards_bounce_logfile_compatibility) is an
// entry too. A partial last block (a writer still appending) is kept when
// it names a recipient.
func ParseLog(data []byte) []LogEntry {
	var out []LogEntry
	var cur LogEntry
	var have, haveNew bool
	var legacyRcpt, legacyText string
	var haveLegacy bool
	end := func() {
		switch {
		case haveNew:
			out = append(out, cur)
		case haveLegacy:
			out = append(out, LogEntry{Recipient: legacyRcpt, Reason: legacyText, Offset: -1})
		}
		cur = LogEntry{Offset: -1}
		have, haveNew, haveLegacy = false, false, false
	}
	cur.Offset = -1
	for len(data) > 0 {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if have {
				end()
			}
			continue
		}
		have = true
		s := string(line)
		if strings.HasPrefix(s, "<") {
			if i := strings.Index(s, ">: "); i > 0 {
				legacyRcpt, legacyText, haveLegacy = s[1:i], s[i+3:], true
				continue
			}
		}
		name, value, ok := strings.Cut(s, "=")
		if !ok {
			continue // bounce_log_read: "unknown attribute name"
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch name {
		case "recipient":
			cur.Recipient, haveNew = value, true
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
		}
	}
	if have {
		end()
	}
	return out
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

package qmailq

import (
	"strconv"
	"strings"
)

// SendLogInfo is qmail-send's "info msg" log line, written when it
// preprocesses a message (qmail-send.c:todo_do(), on the F record):
//
//	info msg <id>: bytes <mess size> from <sender> qp <qmail-queue pid> uid <uid>
//
// qmail-send passes the sender through logsafe(), which turns bytes
// outside '!'..'~' into '?'; Safe is false when the logged sender holds a
// '?', which may be such a replacement.
type SendLogInfo struct {
	ID, Bytes, QP, UID uint64
	Sender             string
	Safe               bool
}

// ParseSendLogInfo finds an "info msg" line in a log line with any prefix
// (splogger's "qmail: <time>", multilog's TAI64N label, a syslog header).
func ParseSendLogInfo(line string) (SendLogInfo, bool) {
	var in SendLogInfo
	i := strings.Index(line, "info msg ")
	if i < 0 {
		return in, false
	}
	rest := line[i+len("info msg "):]
	num := func(s, suffix string) (uint64, string, bool) {
		j := strings.Index(s, suffix)
		if j <= 0 {
			return 0, "", false
		}
		n, err := strconv.ParseUint(s[:j], 10, 64)
		return n, s[j+len(suffix):], err == nil
	}
	var ok bool
	if in.ID, rest, ok = num(rest, ": bytes "); !ok {
		return in, false
	}
	if in.Bytes, rest, ok = num(rest, " from <"); !ok {
		return in, false
	}
	j := strings.LastIndex(rest, "> qp ")
	if j < 0 {
		return in, false
	}
	in.Sender, rest = rest[:j], rest[j+len("> qp "):]
	if in.QP, rest, ok = num(rest, " uid "); !ok {
		return in, false
	}
	uid, err := strconv.ParseUint(strings.TrimRight(rest, "\r\n "), 10, 64)
	if err != nil {
		return in, false
	}
	in.UID = uid
	in.Safe = !strings.Contains(in.Sender, "?")
	return in, true
}

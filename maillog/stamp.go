package maillog

import (
	"bytes"
	"strconv"
	"time"
)

// Stamp forms a line can start with. The reader recognises each per line,
// so a file that mixes forms (a merged archive) still reads.
const (
	FormNone    = "none"    // qmail-send/qmail-start output without a logger
	FormRFC3164 = "rfc3164" // "Nov 22 15:58:53 host prog[pid]: ..." (syslog, Postfix maillog_file)
	FormRFC3339 = "rfc3339" // "2026-11-22T15:58:53.123+01:00 host prog[pid]: ..." (rsyslog, journalctl -o short-iso)
	FormRFC5424 = "rfc5424" // "<22>1 2026-11-22T15:58:53Z host prog pid - - ..."
	FormJournal = "journal" // journalctl -o json, one object a line
	FormTAI64N  = "tai64n"  // "@4000000051ed7fd10a2b3c4d ..." (daemontools multilog)
)

// form indexes, counted per line without a map look-up
const (
	fNone uint8 = iota
	fRFC3164
	fRFC3339
	fRFC5424
	fJournal
	fTAI64N
	nForms
)

var formNames = [nForms]string{FormNone, FormRFC3164, FormRFC3339, FormRFC5424, FormJournal, FormTAI64N}

var monthIndex = map[string]time.Month{
	"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
	"Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}

// yearGuess infers the year RFC 3164 stamps leave out. Ref is the newest
// time the file can hold (its modification time, or now for standard
// input): a stamp that would lie more than a day after ref belongs to the
// year before, which is also what carries a log across New Year (Dec 31
// lines in a file last written on Jan 1).
type yearGuess struct {
	ref  time.Time
	loc  *time.Location
	last []byte // the last 15-byte stamp parsed, and its time
	lt   time.Time
}

// parse3164 reads "Mmm dd hh:mm:ss" (day space-padded) at the start of b.
func (y *yearGuess) parse3164(b []byte) (time.Time, bool) {
	if len(b) < 16 || b[3] != ' ' || b[6] != ' ' || b[9] != ':' || b[12] != ':' || b[15] != ' ' {
		return time.Time{}, false
	}
	if y.last != nil && bytes.Equal(y.last, b[:15]) {
		return y.lt, true
	}
	mon, ok := monthIndex[string(b[:3])]
	if !ok {
		return time.Time{}, false
	}
	day := 0
	for _, c := range b[4:6] {
		switch {
		case c == ' ':
		case c >= '0' && c <= '9':
			day = day*10 + int(c-'0')
		default:
			return time.Time{}, false
		}
	}
	hh, ok1 := two(b[7:9])
	mm, ok2 := two(b[10:12])
	ss, ok3 := two(b[13:15])
	if !ok1 || !ok2 || !ok3 || day < 1 || day > 31 {
		return time.Time{}, false
	}
	loc := y.loc
	if loc == nil {
		loc = time.Local
	}
	ref := y.ref.In(loc)
	t := time.Date(ref.Year(), mon, day, hh, mm, ss, 0, loc)
	if t.After(ref.Add(24 * time.Hour)) {
		t = time.Date(ref.Year()-1, mon, day, hh, mm, ss, 0, loc)
	}
	y.last = append(y.last[:0], b[:15]...)
	y.lt = t
	return t, true
}

func two(b []byte) (int, bool) {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

// parseISO reads an RFC 3339 stamp at the start of b, up to the first
// space: fractions of any length, zones Z, +hh:mm, and journalctl's +hhmm.
// It returns the time and the length consumed.
func parseISO(b []byte) (time.Time, int, bool) {
	end := bytes.IndexByte(b, ' ')
	if end < 0 {
		end = len(b)
	}
	s := b[:end]
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, 0, false
	}
	num := func(p []byte) (int, bool) {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	yr, ok1 := num(s[0:4])
	mo, ok2 := num(s[5:7])
	dd, ok3 := num(s[8:10])
	hh, ok4 := num(s[11:13])
	mi, ok5 := num(s[14:16])
	se, ok6 := num(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 {
		return time.Time{}, 0, false
	}
	rest := s[19:]
	nsec := 0
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		i := 1
		scale := 100000000
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			nsec += int(rest[i]-'0') * scale
			scale /= 10
			i++
		}
		rest = rest[i:]
	}
	loc := time.UTC
	switch {
	case len(rest) == 0:
		loc = time.Local // no zone: local time, as syslog writes it
	case rest[0] == 'Z' && len(rest) == 1:
	case (rest[0] == '+' || rest[0] == '-') && (len(rest) == 6 && rest[3] == ':' || len(rest) == 5):
		h, okh := num(rest[1:3])
		m, okm := num(rest[len(rest)-2:])
		if !okh || !okm {
			return time.Time{}, 0, false
		}
		off := h*3600 + m*60
		if rest[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return time.Time{}, 0, false
	}
	return time.Date(yr, time.Month(mo), dd, hh, mi, se, nsec, loc), end, true
}

// parseTAI64N reads daemontools' "@" + 24 hex digits label: 8 bytes of
// TAI64 seconds and 4 of nanoseconds (cr.yp.to/libtai/tai64.html).
// multilog's clock (taia_now) writes 2^62 + 10 + the Unix time, and
// tai64nlocal subtracts the same 4611686018427387914: no leap-second table
// on either side, so none here.
func parseTAI64N(b []byte) (time.Time, bool) {
	if len(b) < 25 || b[0] != '@' {
		return time.Time{}, false
	}
	sec, err1 := strconv.ParseUint(string(b[1:17]), 16, 64)
	nsec, err2 := strconv.ParseUint(string(b[17:25]), 16, 32)
	const base = 1<<62 + 10
	if err1 != nil || err2 != nil || sec < base || nsec >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(int64(sec-base), int64(nsec)).UTC(), true
}

// parseEpoch reads splogger's "1374486441.012502" (seconds.microseconds
// since the epoch) at the start of b, followed by a space.
func parseEpoch(b []byte) (time.Time, int, bool) {
	i := 0
	var sec int64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		sec = sec*10 + int64(b[i]-'0')
		i++
	}
	if i < 9 || i > 11 || i >= len(b) || b[i] != '.' {
		return time.Time{}, 0, false
	}
	i++
	var usec int64
	n := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		if n < 9 {
			usec = usec*10 + int64(b[i]-'0')
			n++
		}
		i++
	}
	if n == 0 || i >= len(b) || b[i] != ' ' {
		return time.Time{}, 0, false
	}
	for ; n < 9; n++ {
		usec *= 10
	}
	return time.Unix(sec, usec).UTC(), i + 1, true
}

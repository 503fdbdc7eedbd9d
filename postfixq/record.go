package postfixq

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// RecType is a queue-file record type byte (global/rec_type.h).
type RecType byte

// Record types, named after the REC_TYPE_* macros of global/rec_type.h
// (Postfix 3.7; unchanged through 3.12). Comments quote rec_type.h.
const (
	RecTypeSize      RecType = 'C' // REC_TYPE_SIZE: first record, created by cleanup ("%15ld" x6)
	RecTypeTime      RecType = 'T' // REC_TYPE_TIME: arrival time, required ("%ld %ld" sec usec)
	RecTypeCTime     RecType = 'c' // REC_TYPE_CTIME: create time, stored as A create_time=
	RecTypeFull      RecType = 'F' // REC_TYPE_FULL: full name, optional
	RecTypeInsp      RecType = 'I' // REC_TYPE_INSP: inspector transport (legacy)
	RecTypeFilt      RecType = 'L' // REC_TYPE_FILT: loop filter transport (envelope/extracted)
	RecTypeFrom      RecType = 'S' // REC_TYPE_FROM: sender, required; empty = null sender
	RecTypeDone      RecType = 'D' // REC_TYPE_DONE: delivered recipient (R flipped in place)
	RecTypeDRcpt     RecType = '/' // REC_TYPE_DRCP: canceled recipient (cleanup_milter.c)
	RecTypeRcpt      RecType = 'R' // REC_TYPE_RCPT: todo recipient
	RecTypeORcpt     RecType = 'O' // REC_TYPE_ORCP: original recipient of the next R/D//
	RecTypeWarn      RecType = 'W' // REC_TYPE_WARN: warning message time ("%15ld")
	RecTypeAttr      RecType = 'A' // REC_TYPE_ATTR: named attribute for extensions (name=value)
	RecTypeKill      RecType = 'K' // REC_TYPE_KILL: killed record
	RecTypeRdr       RecType = '>' // REC_TYPE_RDR: redirect target
	RecTypeFlags     RecType = 'f' // REC_TYPE_FLGS: cleanup processing flags (cleanup protocol only)
	RecTypeDelay     RecType = 'd' // REC_TYPE_DELAY: cleanup delay upon arrival (cleanup protocol only)
	RecTypeMesg      RecType = 'M' // REC_TYPE_MESG: start message records (ends the envelope)
	RecTypeCont      RecType = 'L' // REC_TYPE_CONT: long data record (content segment: line chunk, no newline)
	RecTypeNorm      RecType = 'N' // REC_TYPE_NORM: normal data record (one content line)
	RecTypeDText     RecType = 'w' // REC_TYPE_DTXT: padding (was: deleted data)
	RecTypeXtra      RecType = 'X' // REC_TYPE_XTRA: start extracted records (ends the content)
	RecTypeRRTo      RecType = 'r' // REC_TYPE_RRTO: return-receipt, from headers (legacy)
	RecTypeERTo      RecType = 'e' // REC_TYPE_ERTO: errors-to, from headers (legacy)
	RecTypePrio      RecType = 'P' // REC_TYPE_PRIO: priority (legacy)
	RecTypePtr       RecType = 'p' // REC_TYPE_PTR: pointer indirection ("%15ld" absolute offset)
	RecTypeVERP      RecType = 'V' // REC_TYPE_VERP: VERP delimiters
	RecTypeDSNRet    RecType = '<' // REC_TYPE_DSN_RET: DSN full/hdrs (on disk: A ret_flags=)
	RecTypeDSNEnvID  RecType = 'i' // REC_TYPE_DSN_ENVID: DSN envelope id (on disk: A envelope_id=)
	RecTypeDSNORcpt  RecType = 'o' // REC_TYPE_DSN_ORCPT: DSN orig rcpt address (on disk: A dsn_orig_rcpt=)
	RecTypeDSNNotify RecType = 'n' // REC_TYPE_DSN_NOTIFY: DSN notify flags (on disk: A notify_flags=)
	RecTypeMiltCount RecType = 'm' // REC_TYPE_MILT_COUNT: milter count (cleanup protocol only)
	RecTypeEnd       RecType = 'E' // REC_TYPE_END: terminator, required
)

// Segment type sets from global/rec_type.h. The first byte of each is the
// record that ends the segment.
const (
	RecTypeEnvelope = "MCTcFILSDRO/WVA>K<ion" // REC_TYPE_ENVELOPE
	RecTypeContent  = "XLNw"                  // REC_TYPE_CONTENT
	RecTypeExtract  = "EDRO/PreAFIL>Kon"      // REC_TYPE_EXTRACT
)

// recTypeNames are postcat's names (global/rec_type.c:rec_type_names).
var recTypeNames = map[RecType]string{
	'C': "message_size", 'T': "message_arrival_time", 'c': "create_time",
	'F': "sender_fullname", 'I': "content_inspector", 'L': "content_filter",
	'S': "sender", 'D': "done_recipient", '/': "canceled_recipient",
	'R': "recipient", 'O': "original_recipient", 'W': "warning_message_time",
	'A': "named_attribute", 'p': "pointer_record", 'K': "killed_record",
	'M': "message_content", 'N': "regular_text", 'w': "padding",
	'X': "extracted_info", 'r': "return_receipt", 'e': "errors_to",
	'P': "priority", 'V': "verp_delimiters", 'E': "message_end",
	'>': "redirect_to", 'f': "flags", 'd': "delay", '<': "dsn_return_flags",
	'i': "dsn_envelope_id", 'o': "dsn_original_recipient",
	'n': "dsn_notify_flags", 'm': "milter_count",
}

// String returns postcat's name for the type ("recipient"), or
// "unknown_record_type" like postcat.
func (t RecType) String() string {
	if n, ok := recTypeNames[t]; ok {
		return n
	}
	return "unknown_record_type"
}

// Record is one queue-file record. Offset is the file offset of its type
// byte (what qmgr passes to delivery agents and writes as offset= in the
// defer and bounce logs).
type Record struct {
	Type   RecType
	Offset int64
	Data   []byte
}

// Limits.
const (
	// maxLengthShift: record.c:rec_get_raw refuses a length byte once
	// shift >= NBBY*sizeof(int) (32), so at most five length bytes
	// (shifts 0..28) are read, and a length that is negative as a C int
	// is "illegal". (The shared doc says four bytes; the source reads a
	// fifth when the value still fits in 31 bits.)
	maxLengthShift = 32
	// MaxRecordLen is the largest record length this package reads or
	// writes: the largest non-negative C int.
	MaxRecordLen = math.MaxInt32
	// maxRecordAlloc caps the buffer a single record may need. Postfix
	// splits content lines at line_length_limit (2048) and envelope records
	// are addresses and attributes, so a longer record means a damaged
	// length; refusing it keeps a corrupt length from allocating up to the
	// whole (possibly huge) rest of the file.
	maxRecordAlloc = 64 << 20
	// reverseJumpLimit is record.c:rec_goto REVERSE_JUMP_LIMIT.
	reverseJumpLimit = 10000
	// defaultWindow is how much a Reader reads at once: a typical
	// envelope fits in the first pread.
	defaultWindow = 4096
)

// Reader reads the records of one queue file, shaped like archive/tar's
// Reader: Next returns the next record, io.EOF only at a clean end; any
// other error is sticky. Records returned by Next stay valid (their Data is
// a copy).
//
// A logical Reader (NewReader) reads the way Postfix's rec_get does
// (REC_FLAG_DEFAULT): it follows p pointer records, skips w padding, and
// stops after the first E; a file that ends before E is an error wrapping
// io.ErrUnexpectedEOF. A physical Reader (NewPhysicalReader) returns every
// record in file order, pointer and padding records included, up to the end
// of the file; it reports io.EOF at any record boundary at the file's end.
type Reader struct {
	r        io.ReaderAt
	size     int64
	path     string
	physical bool
	window   int

	buf    []byte // buf holds the file bytes [bufOff, bufOff+len(buf))
	bufOff int64
	// alt is a second window (the one used before buf), so that a jump to
	// the heap after E and the reverse jump back cost no extra read.
	alt    []byte
	altOff int64

	pos  int64 // offset of the next record
	err  error // sticky error
	done bool  // logical: E was returned

	lastTarget int64 // rec_goto saved_offset
	reverse    int   // rec_goto reverse_count
	consumed   int64 // bytes read logically (loop guard)
}

// NewReader returns a logical Reader for a queue file of the given size.
func NewReader(r io.ReaderAt, size int64) *Reader {
	return &Reader{r: r, size: size, window: defaultWindow, bufOff: -1, altOff: -1}
}

// NewPhysicalReader returns a Reader that does not follow pointers, skip
// padding or stop at E.
func NewPhysicalReader(r io.ReaderAt, size int64) *Reader {
	return &Reader{r: r, size: size, physical: true, window: defaultWindow, bufOff: -1, altOff: -1}
}

// reset prepares a pooled Reader for another file, keeping its buffer.
func (rd *Reader) reset(r io.ReaderAt, size int64, path string) {
	buf, alt := rd.buf[:0], rd.alt[:0]
	*rd = Reader{r: r, size: size, path: path, window: defaultWindow, buf: buf, bufOff: -1, alt: alt, altOff: -1}
}

// SetPath sets the file name used in CorruptError values.
func (rd *Reader) SetPath(path string) { rd.path = path }

// Offset returns the offset the next record will be read from.
func (rd *Reader) Offset() int64 { return rd.pos }

// Jump makes the next record come from offset off, as qmgr does to jump
// over the message content (qmgr_message.c:qmgr_message_read). It clears
// the end-of-file state of a logical reader but not a sticky error.
func (rd *Reader) Jump(off int64) error {
	if rd.err != nil {
		return rd.err
	}
	if off < 0 || off > rd.size {
		return corrupt(rd.path, off, -1, errBadPointer)
	}
	rd.pos = off
	rd.done = false
	return nil
}

// Next returns the next record.
func (rd *Reader) Next() (Record, error) {
	t, off, data, err := rd.next()
	if err != nil {
		return Record{}, err
	}
	return Record{Type: t, Offset: off, Data: append([]byte(nil), data...)}, nil
}

// fill makes buf cover [off, off+n). n must not run past the file size.
func (rd *Reader) fill(off int64, n int) error {
	if rd.bufOff >= 0 && off >= rd.bufOff && off+int64(n) <= rd.bufOff+int64(len(rd.buf)) {
		return nil
	}
	// Swap windows: the other one may hold what we need.
	rd.buf, rd.alt = rd.alt, rd.buf
	rd.bufOff, rd.altOff = rd.altOff, rd.bufOff
	if rd.bufOff >= 0 && off >= rd.bufOff && off+int64(n) <= rd.bufOff+int64(len(rd.buf)) {
		return nil
	}
	want := max(n, rd.window)
	if rem := rd.size - off; int64(want) > rem {
		want = int(rem) // rem >= n by the caller's contract
	}
	if cap(rd.buf) < want {
		rd.buf = make([]byte, want)
	}
	rd.buf = rd.buf[:want]
	got, err := rd.r.ReadAt(rd.buf, off)
	if got < want {
		rd.bufOff = -1
		rd.buf = rd.buf[:0]
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
		return err
	}
	rd.bufOff = off
	return nil
}

// fail records a sticky error.
func (rd *Reader) fail(err error) error {
	rd.err = err
	return err
}

// next is Next without the copy: data is valid until the next call.
func (rd *Reader) next() (RecType, int64, []byte, error) {
	for {
		if rd.err != nil {
			return 0, rd.pos, nil, rd.err
		}
		if rd.done {
			return 0, rd.pos, nil, io.EOF
		}
		off := rd.pos
		if off >= rd.size {
			if rd.physical {
				return 0, off, nil, io.EOF
			}
			return 0, off, nil, rd.fail(corrupt(rd.path, off, -1, errMissingEnd))
		}
		// Type byte plus up to five length bytes.
		if err := rd.fill(off, int(min(6, rd.size-off))); err != nil {
			return 0, off, nil, rd.fail(rd.ioErr(off, -1, err))
		}
		b := rd.buf[off-rd.bufOff:]
		typ := RecType(b[0])
		var n uint64
		hdr := 1
		for shift := uint(0); ; shift += 7 {
			if shift >= maxLengthShift {
				return 0, off, nil, rd.fail(corrupt(rd.path, off, int(typ), errLengthBits))
			}
			if hdr >= len(b) || off+int64(hdr) >= rd.size {
				return 0, off, nil, rd.fail(corrupt(rd.path, off, int(typ), errLengthEOF))
			}
			c := b[hdr]
			hdr++
			n |= uint64(c&0x7f) << shift
			if c&0x80 == 0 {
				break
			}
		}
		if n > MaxRecordLen || n > maxRecordAlloc {
			return 0, off, nil, rd.fail(corrupt(rd.path, off, int(typ), errLengthOverflow))
		}
		if int64(n) > rd.size-off-int64(hdr) {
			return 0, off, nil, rd.fail(corrupt(rd.path, off, int(typ), errDataEOF))
		}
		total := hdr + int(n)
		if err := rd.fill(off, total); err != nil {
			return 0, off, nil, rd.fail(rd.ioErr(off, int(typ), err))
		}
		start := off - rd.bufOff
		data := rd.buf[start+int64(hdr) : start+int64(total)]
		rd.pos = off + int64(total)
		if rd.physical {
			return typ, off, data, nil
		}
		// Our own loop guard: Postfix reads each live byte of a file at
		// most once, so reading much more than the file means a loop.
		rd.consumed += int64(total)
		if rd.consumed > 4*rd.size+defaultWindow {
			return 0, off, nil, rd.fail(corrupt(rd.path, off, int(typ), errPointerLoop))
		}
		switch typ {
		case RecTypePtr:
			if err := rd.follow(off, data); err != nil {
				return 0, off, nil, rd.fail(err)
			}
			continue
		case RecTypeDText:
			continue // rec_get_raw REC_FLAG_SKIP_DTXT
		case RecTypeEnd:
			rd.done = true // rec_get_raw REC_FLAG_SEEK_END
		}
		return typ, off, data, nil
	}
}

// follow implements record.c:rec_goto for a pointer record at off.
func (rd *Reader) follow(off int64, data []byte) error {
	target, err := ParsePointer(data)
	if err != nil {
		return corrupt(rd.path, off, int(RecTypePtr), err)
	}
	if target == 0 {
		return nil // dummy record
	}
	if target >= rd.size {
		return corrupt(rd.path, off, int(RecTypePtr), fmt.Errorf("%w: target %d is past the end of the file", errBadPointer, target))
	}
	if target <= rd.lastTarget {
		rd.reverse++
		if rd.reverse > reverseJumpLimit {
			return corrupt(rd.path, off, int(RecTypePtr), fmt.Errorf("%w: too many reverse jump records", errPointerLoop))
		}
	}
	rd.lastTarget = target
	rd.pos = target
	return nil
}

func (rd *Reader) ioErr(off int64, typ int, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt(rd.path, off, typ, errDataEOF)
	}
	return fmt.Errorf("postfixq: %s: read at offset %d: %w", rd.path, off, err)
}

// ParsePointer parses the data of a p record the way record.c:rec_goto
// does: leading white space, then decimal digits only (util/off_cvt.c:
// off_cvt_string). It returns the absolute target offset; 0 means "dummy".
func ParsePointer(data []byte) (int64, error) {
	i := 0
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	if i == len(data) {
		return 0, fmt.Errorf("%w: empty value", errBadPointer)
	}
	var v int64
	for ; i < len(data); i++ {
		c := data[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: malformed value %q", errBadPointer, data)
		}
		if v > (math.MaxInt64-9)/10 {
			return 0, fmt.Errorf("%w: value overflows", errBadPointer)
		}
		v = v*10 + int64(c-'0')
	}
	return v, nil
}

// FormatPointer returns the data of a p record pointing at off:
// REC_TYPE_PTR_FORMAT "%15ld" (rec_type.h), always 15 bytes so that the
// record can be overwritten in place.
func FormatPointer(off int64) ([]byte, error) {
	if off < 0 {
		return nil, fmt.Errorf("postfixq: negative pointer %d", off)
	}
	return formatFixed(nil, off)
}

// sizeFieldWidth is the width of one field of REC_TYPE_SIZE_FORMAT and
// REC_TYPE_PTR_FORMAT ("%15ld").
const sizeFieldWidth = 15

// SizeRecordLen is the length of the data of a C record written by cleanup:
// six "%15ld" fields separated by single blanks.
const SizeRecordLen = 6*sizeFieldWidth + 5

// formatFixed appends "%15ld" of v, failing when v needs more than 15
// characters (which would move every later record).
func formatFixed(dst []byte, v int64) ([]byte, error) {
	var tmp [24]byte
	s := strconv.AppendInt(tmp[:0], v, 10)
	if len(s) > sizeFieldWidth {
		return nil, fmt.Errorf("postfixq: value %d does not fit in %d characters", v, sizeFieldWidth)
	}
	for i := len(s); i < sizeFieldWidth; i++ {
		dst = append(dst, ' ')
	}
	return append(dst, s...), nil
}

// SizeRecord is the C record (rec_type.h REC_TYPE_SIZE_FORMAT and
// REC_TYPE_SIZE_CAST1..6, written by cleanup_final.c:cleanup_final).
type SizeRecord struct {
	DataSize   int64 // content segment bytes: xtra_offset - data_offset; showq's message_size
	DataOffset int64 // offset of the first content record (just past M)
	RcptCount  int64 // recipients written (an estimate once some are done)
	QmgrFlags  int64 // QMGR_READ_FLAG_* (global/qmgr_user.h)
	ContLength int64 // logical content length (0: use DataSize)
	SendOpts   int64 // SMTPUTF8_FLAG_* (3.7) / sendopts (3.10+)
}

// qmgrReadFlagUser is QMGR_READ_FLAG_USER (global/qmgr_user.h): the bits
// qmgr accepts in field 4.
const qmgrReadFlagUser = 0x1 | 0x1e

// ParseSizeRecord parses C record data the way qmgr_message.c:
// qmgr_message_read does (sscanf "%ld %ld %d %d %ld"), plus the sixth field.
// It returns how many fields were read. Like qmgr it requires at least three
// fields, positive DataSize and DataOffset, known flag bits and a
// non-negative ContLength; a single field is a pre-1.0 file and is
// returned with n == 1 and no error.
func ParseSizeRecord(data []byte) (SizeRecord, int, error) {
	var f [6]int64
	n := 0
	i := 0
	for n < 6 {
		for i < len(data) && isSpace(data[i]) {
			i++
		}
		if i == len(data) {
			break
		}
		j := i
		if data[j] == '-' || data[j] == '+' {
			j++
		}
		k := j
		for k < len(data) && data[k] >= '0' && data[k] <= '9' {
			k++
		}
		if k == j {
			break // sscanf stops at the first field that does not scan
		}
		v, err := strconv.ParseInt(string(data[i:k]), 10, 64)
		if err != nil {
			return SizeRecord{}, n, fmt.Errorf("%w: %q", errBadSize, data)
		}
		f[n] = v
		n++
		i = k
		if i < len(data) && !isSpace(data[i]) {
			break
		}
	}
	s := SizeRecord{f[0], f[1], f[2], f[3], f[4], f[5]}
	switch {
	case n == 1:
		return s, n, nil
	case n < 3:
		return s, n, fmt.Errorf("%w: %q", errBadSize, data)
	case s.DataOffset <= 0 || s.DataSize <= 0 || s.ContLength < 0:
		return s, n, fmt.Errorf("%w: %q", errBadSize, data)
	case s.QmgrFlags&^qmgrReadFlagUser != 0:
		return s, n, fmt.Errorf("%w: invalid flags: %q", errBadSize, data)
	}
	return s, n, nil
}

// Format returns the C record data: REC_TYPE_SIZE_FORMAT
// "%15ld %15ld %15ld %15ld %15ld %15ld", always SizeRecordLen bytes.
func (s SizeRecord) Format() ([]byte, error) {
	out := make([]byte, 0, SizeRecordLen)
	var err error
	for i, v := range [6]int64{s.DataSize, s.DataOffset, s.RcptCount, s.QmgrFlags, s.ContLength, s.SendOpts} {
		if i > 0 {
			out = append(out, ' ')
		}
		if out, err = formatFixed(out, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// Writer writes queue-file records with the shortest length encoding, as
// record.c:rec_put does.
type Writer struct {
	w   io.Writer
	off int64
	err error
	buf []byte
}

// NewWriter returns a Writer that writes to w, counting offsets from 0.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Offset returns the offset at which the next record will be written.
func (w *Writer) Offset() int64 { return w.off }

// WriteRecord writes one record.
func (w *Writer) WriteRecord(t RecType, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(data) > MaxRecordLen {
		w.err = fmt.Errorf("postfixq: record of %d bytes is too long", len(data))
		return w.err
	}
	w.buf = AppendRecord(w.buf[:0], t, data)
	n, err := w.w.Write(w.buf)
	w.off += int64(n)
	if err != nil {
		w.err = err
	}
	return err
}

// AppendRecord appends one encoded record to dst: the type byte, the
// length in 7-bit groups, least significant first, the high bit set on all
// but the last (record.c:rec_put), then the data.
func AppendRecord(dst []byte, t RecType, data []byte) []byte {
	dst = append(dst, byte(t))
	n := uint64(len(data))
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			c |= 0x80
		}
		dst = append(dst, c)
		if n == 0 {
			break
		}
	}
	return append(dst, data...)
}

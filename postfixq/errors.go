package postfixq

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/qsurgeon/qsurgeon/queue"
)

// CorruptError reports a queue file that is not what Postfix writes. It names
// the file (relative to the queue root when known), the offset of the
// offending record and its type byte, in the spirit of debug/elf's
// FormatError and compress/flate's CorruptInputError.
//
// Err is one of the package's private causes; when the file simply ends too
// early it wraps io.ErrUnexpectedEOF, so errors.Is(err, io.ErrUnexpectedEOF)
// tells a truncated file from a malformed one.
type CorruptError struct {
	Path   string // file name relative to the queue root, or as given
	Offset int64  // byte offset of the record (or of the problem)
	Type   int    // record type byte, or -1 when no single record is at fault
	Err    error  // the cause
}

func (e *CorruptError) Error() string {
	var b []byte
	b = append(b, "postfixq: "...)
	if e.Path != "" {
		b = append(b, e.Path...)
		b = append(b, ": "...)
	}
	if e.Type >= 0 {
		b = append(b, "record "...)
		b = appendTypeName(b, byte(e.Type))
		b = append(b, " at "...)
	}
	b = append(b, "offset 0x"...)
	b = strconv.AppendInt(b, e.Offset, 16)
	b = append(b, ": "...)
	if e.Err != nil {
		b = append(b, e.Err.Error()...)
	} else {
		b = append(b, "corrupt queue file"...)
	}
	return string(b)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// appendTypeName renders a type byte the way error messages show it: 'R' for
// printable bytes, 0x07 otherwise.
func appendTypeName(b []byte, t byte) []byte {
	if t > ' ' && t < 0x7f && t != '\'' {
		return append(b, '\'', t, '\'')
	}
	return append(b, fmt.Sprintf("0x%02x", t)...)
}

// Private causes. Tests use errors.Is with these; callers outside the
// package use errors.As(*CorruptError) and errors.Is(io.ErrUnexpectedEOF).
var (
	// global/record.c:rec_get_raw "too many length bits".
	errLengthBits = errors.New("too many length bits")
	// global/record.c:rec_get_raw "illegal length" (negative as a C int).
	errLengthOverflow = errors.New("length overflows")
	// record.c "unexpected EOF reading length" / "unexpected EOF in data".
	errLengthEOF = fmt.Errorf("unexpected EOF reading length: %w", io.ErrUnexpectedEOF)
	errDataEOF   = fmt.Errorf("unexpected EOF in data: %w", io.ErrUnexpectedEOF)
	// qmgr_message.c:qmgr_message_read "message rejected: missing end record".
	errMissingEnd = fmt.Errorf("missing end record: %w", io.ErrUnexpectedEOF)
	// record.c:rec_goto "malformed pointer record value", or a target
	// outside the file.
	errBadPointer = errors.New("bad pointer record")
	// record.c:rec_goto "too many reverse jump records" (or our own bound
	// on the bytes read logically).
	errPointerLoop = errors.New("pointer record loop")
	// A record type that rec_type.h does not allow in this segment.
	errRecordType = errors.New("record type not allowed in this segment")
	// qmgr_message.c "invalid size record" / "weird size record".
	errBadSize = errors.New("bad size record")
	// The size record points somewhere that holds no extracted-info record.
	errBadContentPointer = errors.New("size record does not point at the extracted segment")
	// qmgr_message.c "ignoring bad attribute" (split_nameval failed).
	errBadAttr = errors.New("bad attribute record")
	// qmgr_message.c "message rejected: missing ... record".
	errMissingTime   = errors.New("missing arrival time record")
	errMissingSender = errors.New("missing sender record")
	errMissingSize   = errors.New("missing size record")
	// An end record before the content (no M/X segments).
	errEarlyEnd = errors.New("end record before message content")
	// Time record that does not scan as "%ld %ld".
	errBadTime = errors.New("bad time record")
)

// ErrInProgress is returned by Spool.Read for a file whose owner permission
// bits are not rwx: Postfix is still writing it (global/mail_open_ok.c), so
// it must be left alone.
var ErrInProgress = fmt.Errorf("postfixq: queue file is still being written (%w)", queue.ErrNotReady)

func corrupt(path string, off int64, typ int, err error) *CorruptError {
	return &CorruptError{Path: path, Offset: off, Type: typ, Err: err}
}

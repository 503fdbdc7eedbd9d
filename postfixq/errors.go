package postfixq

import (
	"errors"
	"fmt"
	"io"

	"github.com/qsurgeon/qsurgeon/queue"
)

// CorruptError reports a queue file that is not what Postfix writes: the
// vocabulary's queue.CorruptError, with Format "postfixq". It names the file
// (relative to the queue root when known), the offset of the offending
// record and its type byte.
//
// Err is one of the package's private causes; when the file simply ends too
// early it wraps io.ErrUnexpectedEOF, so errors.Is(err, io.ErrUnexpectedEOF)
// tells a truncated file from a malformed one.
type CorruptError = queue.CorruptError

// pkgName is the Format of this package's errors.
const pkgName = "postfixq"

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
	return &CorruptError{Format: pkgName, Path: path, Offset: off, Type: typ, Err: err}
}

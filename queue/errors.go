package queue

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors every format package and every verb share. A package may wrap
// them with a more precise text; test with errors.Is.
var (
	// ErrChanged: a message's files are not what was read (replaced,
	// vanished, moved). Nothing was done.
	ErrChanged = errors.New("message changed since it was read")
	// ErrWrongQueue: the action does not apply to a message where it is.
	ErrWrongQueue = errors.New("action does not apply")
	// ErrNotRegular: a file at a message path is not a regular file.
	ErrNotRegular = errors.New("not a regular file")
)

// ActionError reports a refused or failed change to one message, naming
// the format package, the action, the queue ID and the file concerned.
// It prints like "postfixq: hold 4A3F1C2B0 (deferred/4/4A3F1C2B0): message
// changed since it was read".
type ActionError struct {
	Format string // the package: "postfixq", "qmailq"
	Action string
	ID     string
	Path   string // "" when no single file is concerned
	Err    error
}

func (e *ActionError) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %s %s: %v", e.Format, e.Action, e.ID, e.Err)
	}
	return fmt.Sprintf("%s: %s %s (%s): %v", e.Format, e.Action, e.ID, e.Path, e.Err)
}

func (e *ActionError) Unwrap() error { return e.Err }

// CorruptError reports a queue file that is not what its MTA writes: the
// file (relative to the queue root when known), the offset of the offending
// record, its type byte when one record is at fault, and the cause, in the
// spirit of debug/elf's FormatError. It prints like "postfixq:
// deferred/4/4A3F1C2B0: record 'R' at offset 0x1f3: length overflows" or
// "qmailq: remote/5/12345: offset 0x1f: unknown record type 'X'".
//
// Err is one of the format package's private causes; a file that ends too
// early wraps io.ErrUnexpectedEOF.
type CorruptError struct {
	Format string // the package: "postfixq", "qmailq"
	Path   string
	Offset int64
	Type   int // record type byte, or -1 when no single record is at fault
	Err    error
}

func (e *CorruptError) Error() string {
	var b []byte
	b = append(b, e.Format...)
	b = append(b, ": "...)
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

package qmailq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/qsurgeon/qsurgeon/queue"
)

// MaxEnvelopeSize caps what is read of an info, local, remote, todo, intd or
// bounce file. Real ones are a few KB (an address is at most 1002 bytes,
// qmail-queue.c ADDR); the cap only stops a hostile or damaged file from
// making us allocate without bound.
const MaxEnvelopeSize = 64 << 20

// CorruptError reports a malformed queue file: which file, where in it, and
// why: queue.CorruptError with Format "qmailq" and no record type. It
// prints like "qmailq: remote/5/12345: offset 0x1f: unknown record type 'X'".
type CorruptError = queue.CorruptError

// pkgName is the Format of this package's errors.
const pkgName = "qmailq"

// Causes of corruption; test with errors.Is through CorruptError.
var (
	// errUnterminated: the last record has no NUL; it wraps
	// io.ErrUnexpectedEOF so a truncation is recognised as one.
	errUnterminated = fmt.Errorf("record not terminated by NUL: %w", io.ErrUnexpectedEOF)
	errEmptyFile    = errors.New("empty file")
	errEmptyRecord  = errors.New("empty record (stray NUL) before the end")
	errUnknownType  = errors.New("unknown record type")
	errNoSender     = errors.New("first record is not F (sender)")
	errExtraRecords = errors.New("records after the sender record")
	errBadNumber    = errors.New("bad number")
	errTooLarge     = fmt.Errorf("file larger than %d bytes", MaxEnvelopeSize)
	errBadBounce    = errors.New("bounce entry without a <recipient>: line")
)

// splitRecords cuts data into NUL-terminated records and calls fn with each
// record (without its NUL) and its offset. A single empty record at the very
// end is tolerated and reported by the return value trailingNUL. The first
// problem is returned as a *CorruptError; fn may return an error to stop.
func splitRecords(path string, data []byte, fn func(rec []byte, off int64) error) (trailingNUL bool, err error) {
	off := 0
	for off < len(data) {
		i := bytes.IndexByte(data[off:], 0)
		if i < 0 {
			return false, &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: int64(off), Err: errUnterminated}
		}
		rec := data[off : off+i]
		if len(rec) == 0 {
			if off+1 == len(data) {
				return true, nil
			}
			return false, &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: int64(off), Err: errEmptyRecord}
		}
		if err := fn(rec, int64(off)); err != nil {
			return false, err
		}
		off += i + 1
	}
	return false, nil
}

// doubleBounceSender is the envelope sender qmail-send gives the bounce of
// a bounce (qmail-send.c:injectbounce: a message whose sender is null
// bounces to doublebounceto with the sender "#@[]"; one whose sender is
// "#@[]" is a triple bounce and is discarded).
const doubleBounceSender = "#@[]"

// Info is the content of info/S/id: the envelope sender
// (qmail-send.c:todo_do() copies the F record there and nothing else;
// getinfo() rejects a file whose first record is not F).
type Info struct {
	// Sender as stored: "" for a bounce, "#@[]" for a double bounce.
	Sender      string
	TrailingNUL bool
}

// ParseInfo parses an info file. A partial result comes with the error.
func ParseInfo(path string, data []byte) (Info, error) {
	var in Info
	if len(data) == 0 {
		return in, &CorruptError{Format: pkgName, Type: -1, Path: path, Err: errEmptyFile}
	}
	n := 0
	var extraErr error
	tr, err := splitRecords(path, data, func(rec []byte, off int64) error {
		n++
		if n == 1 {
			if rec[0] != 'F' {
				return &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: off, Err: errNoSender}
			}
			in.Sender = string(rec[1:])
			return nil
		}
		if extraErr == nil {
			extraErr = &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: off, Err: errExtraRecords}
		}
		return nil
	})
	in.TrailingNUL = tr
	if err == nil && n == 0 {
		err = &CorruptError{Format: pkgName, Type: -1, Path: path, Err: errNoSender}
	}
	if err != nil {
		// A truncated F record still tells the (partial) sender.
		var ce *CorruptError
		if n == 0 && errors.As(err, &ce) && errors.Is(err, io.ErrUnexpectedEOF) && data[0] == 'F' {
			in.Sender = string(data[1:])
		}
		return in, err
	}
	return in, extraErr
}

// ChanRecipient is one record of local/S/id or remote/S/id.
type ChanRecipient struct {
	// Addr is the address after qmail-send's rewrite() (a virtual-domain
	// recipient carries its "prefix-" in front).
	Addr string
	// Done: the record is D (delivered or permanently failed; markdone()
	// overwrites the T in place).
	Done bool
	// Offset of the record's type byte: where markdone() writes "D".
	Offset int64
}

// Channel is the content of a local or remote file.
type Channel struct {
	Recipients  []ChanRecipient
	TrailingNUL bool
}

// ParseChannel parses a local or remote file: T<addr>\0 (pending) and
// D<addr>\0 (done) records (qmail-send.c:pass_dochan()). Records after an
// unknown one are still returned (NUL framing survives it); the first
// problem is the error.
func ParseChannel(path string, data []byte) (Channel, error) {
	var ch Channel
	var first error
	tr, err := splitRecords(path, data, func(rec []byte, off int64) error {
		switch rec[0] {
		case 'T', 'D':
			ch.Recipients = append(ch.Recipients, ChanRecipient{Addr: string(rec[1:]), Done: rec[0] == 'D', Offset: off})
		default:
			if first == nil {
				first = &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: off, Err: fmt.Errorf("%w %q", errUnknownType, rec[0])}
			}
		}
		return nil
	})
	ch.TrailingNUL = tr
	if first != nil {
		return ch, first
	}
	return ch, err
}

// Envelope is the content of todo/id = intd/id as qmail-queue.c:main()
// writes it: u<uid>\0 p<pid>\0 F<sender>\0 T<rcpt>\0 ... (no terminating
// empty record).
type Envelope struct {
	UID, PID       uint64
	HasUID, HasPID bool
	Sender         string
	HasSender      bool
	Recipients     []string
	TrailingNUL    bool
}

// ParseEnvelope parses a todo or intd file. qmail-send.c:todo_do() accepts
// the records u, p, F and T in any order and gives up on anything else
// ("unknown record type"); so does this parser, keeping what it read.
func ParseEnvelope(path string, data []byte) (Envelope, error) {
	var e Envelope
	var first error
	setFirst := func(err error) {
		if first == nil {
			first = err
		}
	}
	tr, err := splitRecords(path, data, func(rec []byte, off int64) error {
		switch rec[0] {
		case 'u', 'p':
			n, perr := strconv.ParseUint(string(rec[1:]), 10, 64)
			if perr != nil {
				setFirst(&CorruptError{Format: pkgName, Type: -1, Path: path, Offset: off, Err: fmt.Errorf("%w in %c record", errBadNumber, rec[0])})
			}
			if rec[0] == 'u' {
				e.UID, e.HasUID = n, perr == nil
			} else {
				e.PID, e.HasPID = n, perr == nil
			}
		case 'F':
			e.Sender, e.HasSender = string(rec[1:]), true
		case 'T':
			e.Recipients = append(e.Recipients, string(rec[1:]))
		default:
			setFirst(&CorruptError{Format: pkgName, Type: -1, Path: path, Offset: off, Err: fmt.Errorf("%w %q", errUnknownType, rec[0])})
		}
		return nil
	})
	e.TrailingNUL = tr
	if first != nil {
		return e, first
	}
	if err != nil {
		return e, err
	}
	if len(data) == 0 {
		return e, &CorruptError{Format: pkgName, Type: -1, Path: path, Err: errEmptyFile}
	}
	if !e.HasSender {
		return e, &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: int64(len(data)), Err: errNoSender}
	}
	return e, nil
}

// BounceEntry is one permanent failure recorded in bounce/id.
type BounceEntry struct {
	// Addr is the recipient with any virtual-domain prefix stripped
	// (qmail-send.c:stripvdomprepend()).
	Addr string
	// Reason is the failure report, lines separated by "\n" (qmail-send
	// turned blank lines inside it into "/").
	Reason string
}

// ParseBounce parses bounce/id: entries "<recip>:\n" report "\n\n", appended
// by qmail-send.c:addbounce() for each permanently failed recipient.
func ParseBounce(path string, data []byte) ([]BounceEntry, error) {
	var out []BounceEntry
	off := 0
	for off < len(data) {
		end := bytes.Index(data[off:], []byte("\n\n"))
		var chunk []byte
		next := 0
		if end < 0 {
			chunk = data[off:]
			next = len(data)
		} else {
			chunk = data[off : off+end]
			next = off + end + 2
		}
		nl := bytes.IndexByte(chunk, '\n')
		head := chunk
		var reason []byte
		if nl >= 0 {
			head, reason = chunk[:nl], chunk[nl+1:]
		}
		if !bytes.HasSuffix(head, []byte(":")) {
			return out, &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: int64(off), Err: errBadBounce}
		}
		addr := head[:len(head)-1]
		if len(addr) >= 2 && addr[0] == '<' && addr[len(addr)-1] == '>' {
			addr = addr[1 : len(addr)-1]
		}
		out = append(out, BounceEntry{Addr: string(addr), Reason: string(reason)})
		if end < 0 {
			return out, &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: int64(len(data)), Err: errUnterminated}
		}
		off = next
	}
	return out, nil
}

// Bytes formats info as todo_do() writes it: F<sender>\0.
func (in Info) Bytes() []byte {
	return append(append([]byte{'F'}, in.Sender...), 0)
}

// Bytes formats the channel file: T<addr>\0 or D<addr>\0 per recipient, in
// order, with no trailing extra NUL (qmail-send.c:todo_do()).
func (c Channel) Bytes() []byte {
	var b []byte
	for _, r := range c.Recipients {
		t := byte('T')
		if r.Done {
			t = 'D'
		}
		b = append(b, t)
		b = append(b, r.Addr...)
		b = append(b, 0)
	}
	return b
}

// Bytes formats the envelope in qmail-queue.c:main()'s order: u, p, F,
// then the T records, no terminating extra NUL. u and p are written only
// when known.
func (e Envelope) Bytes() []byte {
	var b []byte
	if e.HasUID {
		b = append(append(append(b, 'u'), strconv.FormatUint(e.UID, 10)...), 0)
	}
	if e.HasPID {
		b = append(append(append(b, 'p'), strconv.FormatUint(e.PID, 10)...), 0)
	}
	if e.HasSender {
		b = append(append(append(b, 'F'), e.Sender...), 0)
	}
	for _, r := range e.Recipients {
		b = append(append(append(b, 'T'), r...), 0)
	}
	return b
}

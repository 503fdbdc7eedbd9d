// Package queue is qsurgeon's shared vocabulary: the Message every reader
// produces, the Source seam the filter engine reads through, and the Mutator
// seam every change to a queue goes through. It imports only the standard
// library, so every other package can depend on it.
package queue

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"time"
)

// MTA names a mail transfer agent whose queue qsurgeon understands.
type MTA string

// The MTAs qsurgeon reads.
const (
	Postfix MTA = "postfix"
	Qmail   MTA = "qmail"
)

// Postfix queue names (global/mail_queue.h) and qmail's pseudo queue names.
const (
	Maildrop = "maildrop"
	Incoming = "incoming"
	Active   = "active"
	Deferred = "deferred"
	Hold     = "hold"
	Corrupt  = "corrupt"
	Saved    = "saved"

	// QmailQueue is a preprocessed qmail message (info/local/remote exist).
	QmailQueue = "queue"
	// QmailTodo is a qmail message qmail-send has not preprocessed yet.
	QmailTodo = "todo"
)

// Channel values for qmail recipients.
const (
	ChannelLocal  = "local"
	ChannelRemote = "remote"
)

// Recipient is one envelope recipient and what the MTA knows of it.
type Recipient struct {
	Address string `json:"address"`
	// Original is the address before rewriting (Postfix O record), when it
	// differs or was recorded.
	Original string `json:"original_recipient,omitempty"`
	// Channel is "local" or "remote" on qmail; empty on Postfix and for qmail
	// messages not yet preprocessed.
	Channel string `json:"channel,omitempty"`
	// Done: delivered or permanently failed (Postfix D, qmail D record).
	Done bool `json:"-"`
	// Canceled: removed by a Milter before queueing (Postfix '/' record).
	Canceled bool `json:"-"`
	// Reason is the delay or bounce reason from the defer/bounce log
	// (Postfix) or bounce/N (qmail).
	Reason string `json:"delay_reason,omitempty"`
	// Status is the DSN status from the logs, e.g. 4.4.1.
	Status string `json:"status,omitempty"`
	// Action is the DSN action from the logs: delayed, failed, ...
	Action string `json:"action,omitempty"`
	// Offset is the byte offset of the recipient record in the queue file
	// (Postfix), -1 when unknown.
	Offset int64 `json:"-"`
}

// Header is one header field as stored (unfolded, raw value bytes).
type Header struct {
	Name  string
	Value string
}

// Content is what a reader returns when asked to open a message's content.
type Content struct {
	Headers []Header
	// Decoded values of the headers an admin looks at (RFC 2047,
	// ISO-2022-JP and raw UTF-8 alike).
	Subject   string
	From      string
	MessageID string
	// Body is set only when the caller asked for it.
	Body []byte
}

// Message is one queued message as qsurgeon sees it, whatever the MTA.
type Message struct {
	MTA   MTA    `json:"mta"`
	Queue string `json:"queue_name"`
	ID    string `json:"queue_id"`
	// Path is the message file relative to the queue root (qmail: mess).
	Path  string `json:"path"`
	Inode uint64 `json:"-"`
	// Mode and ModTime are the message file's lstat results.
	Mode    fs.FileMode `json:"-"`
	ModTime time.Time   `json:"-"`
	UID     int         `json:"-"`
	GID     int         `json:"-"`

	Arrival    time.Time `json:"-"`
	CreateTime time.Time `json:"-"`
	NextRetry  time.Time `json:"-"`

	ForcedExpire bool `json:"forced_expire"`
	// Size is message_size as postqueue reports it (Postfix: C field 1, or
	// the file size when there is none; qmail: the mess size).
	Size     int64 `json:"message_size"`
	FileSize int64 `json:"file_size"`

	Sender     string `json:"-"`
	NullSender bool   `json:"null_sender"`
	// DoubleBounce: a qmail double bounce, the bounce of a bounce, whose
	// envelope sender is "#@[]" (qmail-send.c injectbounce: "#@[]" when
	// the bounce itself bounces). A bounce, though its sender is not null.
	DoubleBounce bool `json:"double_bounce,omitempty"`

	// Recipients holds every envelope recipient in file order, pending,
	// done and canceled alike.
	Recipients []Recipient `json:"-"`

	// Attrs are Postfix named attributes (A records), last value wins.
	Attrs map[string]string `json:"-"`

	SASLMethod string `json:"-"`
	SASLUser   string `json:"-"`
	ClientAddr string `json:"-"`
	ClientName string `json:"-"`
	HELO       string `json:"-"`

	// Bouncing: a bounce log (Postfix bounce/ID) or bounce/N (qmail)
	// exists, i.e. a non-delivery report is pending.
	Bouncing bool `json:"-"`

	// Content is nil unless the headers were read.
	Content *Content `json:"-"`

	// Problems lists what is inconsistent about a partial message (qmail:
	// info without mess, ...). Empty for a healthy message.
	Problems []string `json:"-"`
	// Err is set when the message could not be read completely (a corrupt
	// or truncated file); the fields read before the error stay valid.
	Err error `json:"-"`
}

// Pending returns the recipients still to be delivered.
func (m *Message) Pending() []Recipient {
	var out []Recipient
	for _, r := range m.Recipients {
		if !r.Done && !r.Canceled {
			out = append(out, r)
		}
	}
	return out
}

// DoneRecipients returns the recipients that are finished (delivered or
// bounced), not counting canceled ones.
func (m *Message) DoneRecipients() []Recipient {
	var out []Recipient
	for _, r := range m.Recipients {
		if r.Done && !r.Canceled {
			out = append(out, r)
		}
	}
	return out
}

// Ref names a message a Source found while walking, before it is read.
type Ref struct {
	Queue string
	ID    string
	// Path of the message file relative to the queue root ("" for a qmail
	// message whose mess file is missing).
	Path string
}

// ContentOptions says how much of a message's content to read.
type ContentOptions struct {
	Body bool
}

// Source is one MTA's queue, readable without the MTA's help.
//
// Walk is the producer of restic-style parallel listing: it lists messages
// cheaply (directory entries only) and calls fn for each; it stops when fn
// returns an error or ctx is done. Read is called by workers, concurrently,
// and returns the envelope only. A corrupt message is returned with Err set,
// not as an error: the error return is for messages that vanished
// (fs.ErrNotExist) or could not be opened at all.
type Source interface {
	MTA() MTA
	Root() string
	Walk(ctx context.Context, fn func(Ref) error) error
	Read(ref Ref) (*Message, error)
	ReadContent(m *Message, opt ContentOptions) (*Content, error)
}

// ErrNotReady is wrapped by a Source's Read for an entry that is not a
// message to read or act on yet: a file the MTA is still writing. It is
// left alone quietly, like a message that left the queue between Walk and
// Read.
var ErrNotReady = errors.New("not ready: the MTA is still writing it")

// Progress is called by long operations with the work done so far and the
// total (total < 0 when unknown).
type Progress func(done, total int64)

// ProblemIDNotInode starts the problem every message of a qmail queue
// copied to another filesystem has: its name is no longer its mess file's
// inode. It says nothing about the message itself.
const ProblemIDNotInode = "id-not-inode"

// Damaged reports whether the message could not be read cleanly or is
// inconsistent, not counting a name that is merely no longer its inode.
func (m *Message) Damaged() bool {
	if m.Err != nil {
		return true
	}
	for _, p := range m.Problems {
		if !strings.HasPrefix(p, ProblemIDNotInode) {
			return true
		}
	}
	return false
}

// Fields names message fields a selection can test before the whole
// message is read (see StagedSource).
type Fields uint8

const (
	FieldSASLUser Fields = 1 << iota // SASLUser
	FieldSender                      // Sender, NullSender
)

// A StagedSource can read first only what some fields need, so that a
// selection reads the rest only of the messages those fields let through
// ("envelope first, content only for envelope matches", one step earlier):
// on qmail the AUTH user is in the head of mess and the sender in info,
// while Read opens every part of the message.
type StagedSource interface {
	Source
	// ReadFields returns a Message whose fields f are exactly what Read
	// would give them, and nil (with a nil error) when it cannot tell
	// them cheaply; the caller then uses Read. Errors are Read's.
	ReadFields(ref Ref, f Fields) (*Message, error)
	// ReadRest reads the whole message, as Read does, after ReadFields(ref,
	// f) returned a Message.
	ReadRest(ref Ref, f Fields) (*Message, error)
}

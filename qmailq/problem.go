package qmailq

import "github.com/qsurgeon/qsurgeon/queue"

// Problem is one inconsistency of a qmail message on disk.
type Problem struct {
	// Kind is one of the Kind* constants: short, stable, for filtering and
	// JSON ("id-not-inode", "info-without-mess", ...).
	Kind string
	ID   uint64
	// Path of the file concerned, relative to the queue root ("" when the
	// problem is a missing file with no file of its own to name).
	Path string
	// Detail says what is wrong and what qmail does about it.
	Detail string
}

// String is "kind: detail", the form stored in queue.Message.Problems.
func (p Problem) String() string { return p.Kind + ": " + p.Detail }

// The problem kinds Inspect reports.
const (
	// KindIDNotInode: the mess file's inode differs from its name (the id).
	// Expected on EVERY message of a queue copied or restored onto another
	// file system; qmail needs the names fixed (queue-fix) before it runs.
	KindIDNotInode = queue.ProblemIDNotInode
	// KindWrongSubdir: a file is not in the subdirectory fmtqfn() computes
	// (id % conf-split, or flat for todo/intd/bounce on stock qmail).
	KindWrongSubdir = "wrong-subdir"
	// KindDuplicate: a part exists in more than one place.
	KindDuplicate = "duplicate"
	// KindZeroLengthMess: the mess file is empty.
	KindZeroLengthMess = "zero-length-mess"
	// KindInfoWithoutMess: info (a queued message) but no mess.
	KindInfoWithoutMess = "info-without-mess"
	// KindTodoWithoutMess: todo but no mess.
	KindTodoWithoutMess = "todo-without-mess"
	// KindMissingMess: only local/remote/intd/bounce files, no mess.
	KindMissingMess = "missing-mess"
	// KindMessWithoutInfo: mess with no info, local, remote or todo (an
	// orphan: S2/S3 of INTERNALS).
	KindMessWithoutInfo = "mess-without-info"
	// KindChannelWithoutInfo: local/remote without info and without todo.
	KindChannelWithoutInfo = "channel-without-info"
	// KindTodoWithoutIntd: todo without intd.
	KindTodoWithoutIntd = "todo-without-intd"
	// KindIntdWithoutTodo: intd left over without todo.
	KindIntdWithoutTodo = "intd-without-todo"
	// KindTodoAndInfo: todo next to info: qmail-send will redo it.
	KindTodoAndInfo = "todo-and-info"
	// KindBounceWithoutInfo: bounce/id without info or todo.
	KindBounceWithoutInfo = "bounce-without-info"
	// KindCorrupt: a file could not be parsed (the error has the offset).
	KindCorrupt = "corrupt"
	// KindTrailingNUL: an envelope file ends with an extra NUL.
	KindTrailingNUL = "trailing-nul"
	// KindChannelsGone: info and mess without local, remote, todo or
	// bounce: qmail-send finishes the message as delivered
	// (qmail-send.c:pqadd() puts it on pqdone, messdone() removes it); any
	// recipient that was still pending is lost.
	KindChannelsGone = "channels-gone"
	// KindUnreadable: a listed file could not be opened or read, or is not
	// a regular file.
	KindUnreadable = "unreadable"
)

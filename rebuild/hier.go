package rebuild

import (
	"io/fs"
	"strconv"
)

// EntryType is what a hierarchy entry must be.
type EntryType int

// Entry types, as hier.c creates them: d() directories, z() zero-filled
// files, p() named pipes.
const (
	Dir EntryType = iota
	File
	FIFO
)

func (t EntryType) String() string {
	switch t {
	case Dir:
		return "directory"
	case File:
		return "file"
	case FIFO:
		return "fifo"
	}
	return "entry"
}

// Split says whether a directory of the table is hashed by conf-split.
type Split int

// How a directory is split.
const (
	NotSplit     Split = iota
	AlwaysSplit        // dsplit() in every qmail: mess, info, local, remote
	BigTodoSplit       // dsplit() only with the big-todo patch: todo, intd
)

// Rule is one line of the queue hierarchy table.
type Rule struct {
	Path  string // relative to the queue root; "." is the root itself
	Type  EntryType
	User  string // account name, resolved through IDs
	Group string
	Mode  fs.FileMode
	Size  int64 // for File: the exact size (z(): zero bytes of this length)
	Split Split
}

// hierQueue is qmail's queue hierarchy, in the order of notqmail
// hier.c:hier_queue() (inline in hier() in qmail-1.03/netqmail-1.06):
//
//	d(auto_qmail,"queue",auto_uidq,auto_gidq,0750);
//	d(auto_qmail,"queue/pid",auto_uidq,auto_gidq,0700);
//	d(auto_qmail,"queue/intd",auto_uidq,auto_gidq,0700);
//	d(auto_qmail,"queue/todo",auto_uidq,auto_gidq,0750);
//	d(auto_qmail,"queue/bounce",auto_uids,auto_gidq,0700);
//	dsplit("queue/mess",auto_uidq,0750);
//	dsplit("queue/info",auto_uids,0700);
//	dsplit("queue/local",auto_uids,0700);
//	dsplit("queue/remote",auto_uids,0700);
//	d(auto_qmail,"queue/lock",auto_uidq,auto_gidq,0750);
//	z(auto_qmail,"queue/lock/tcpto",1024,auto_uidr,auto_gidq,0644);
//	z(auto_qmail,"queue/lock/sendmutex",0,auto_uids,auto_gidq,0600);
//	p(auto_qmail,"queue/lock/trigger",auto_uids,auto_gidq,0622);
//
// The big-todo patch turns the intd and todo lines into
// dsplit("queue/intd",auto_uidq,0700) and dsplit("queue/todo",auto_uidq,0750).
// dsplit() creates the directory and 0..auto_split-1 below it, all with the
// same owner, group qmail and mode.
var hierQueue = []Rule{
	{Path: ".", Type: Dir, User: UserQ, Group: GroupQ, Mode: 0o750},
	{Path: "pid", Type: Dir, User: UserQ, Group: GroupQ, Mode: 0o700},
	{Path: "intd", Type: Dir, User: UserQ, Group: GroupQ, Mode: 0o700, Split: BigTodoSplit},
	{Path: "todo", Type: Dir, User: UserQ, Group: GroupQ, Mode: 0o750, Split: BigTodoSplit},
	{Path: "bounce", Type: Dir, User: UserS, Group: GroupQ, Mode: 0o700},
	{Path: "mess", Type: Dir, User: UserQ, Group: GroupQ, Mode: 0o750, Split: AlwaysSplit},
	{Path: "info", Type: Dir, User: UserS, Group: GroupQ, Mode: 0o700, Split: AlwaysSplit},
	{Path: "local", Type: Dir, User: UserS, Group: GroupQ, Mode: 0o700, Split: AlwaysSplit},
	{Path: "remote", Type: Dir, User: UserS, Group: GroupQ, Mode: 0o700, Split: AlwaysSplit},
	{Path: "lock", Type: Dir, User: UserQ, Group: GroupQ, Mode: 0o750},
	{Path: "lock/tcpto", Type: File, User: UserR, Group: GroupQ, Mode: 0o644, Size: 1024},
	{Path: "lock/sendmutex", Type: File, User: UserS, Group: GroupQ, Mode: 0o600, Size: 0},
	{Path: "lock/trigger", Type: FIFO, User: UserS, Group: GroupQ, Mode: 0o622},
}

// FileRule is what every message file in a part directory must look like
// (qmail-queue.md §4.2, from the creating code).
type FileRule struct {
	User string
	// Group is "" when the group is not checked: mess, todo and intd get
	// the egid of whoever ran the setuid (not setgid) qmail-queue.
	Group string
	Mode  fs.FileMode
}

// fileRules: qmail-queue.c creates pid/mess/intd with open_excl (0644)
// under umask 033 as qmailq; qmail-send.c creates info/local/remote with
// open_excl under umask 077 and bounce/ with open_append 0600, as qmails
// with gid qmail.
var fileRules = map[string]FileRule{
	"mess":   {User: UserQ, Mode: 0o644},
	"todo":   {User: UserQ, Mode: 0o644},
	"intd":   {User: UserQ, Mode: 0o644},
	"info":   {User: UserS, Group: GroupQ, Mode: 0o600},
	"local":  {User: UserS, Group: GroupQ, Mode: 0o600},
	"remote": {User: UserS, Group: GroupQ, Mode: 0o600},
	"bounce": {User: UserS, Group: GroupQ, Mode: 0o600},
}

// Rules returns the table as given, unexpanded.
func Rules() []Rule { return append([]Rule(nil), hierQueue...) }

// Hier returns every entry a queue with this conf-split and todo layout
// must have, expanded the way dsplit() does: each split directory is
// followed by its subdirectories 0..split-1.
func Hier(split int, bigTodo bool) []Rule {
	var out []Rule
	for _, r := range hierQueue {
		out = append(out, r)
		if r.Split == AlwaysSplit || r.Split == BigTodoSplit && bigTodo {
			for i := 0; i < split; i++ {
				sub := r
				sub.Path = r.Path + "/" + strconv.Itoa(i)
				sub.Split = NotSplit
				out = append(out, sub)
			}
		}
	}
	return out
}

// isSplitDir reports whether the part directory top is hashed.
func isSplitDir(top string, bigTodo bool) bool {
	for _, r := range hierQueue {
		if r.Path == top {
			return r.Split == AlwaysSplit || r.Split == BigTodoSplit && bigTodo
		}
	}
	return false
}

// Package quarantine moves whole messages out of a Postfix or qmail queue
// into a quarantine directory on the same file system, with a JSON-lines
// manifest, and puts them back.
//
// Every move is a rename (safefs.MoveBetween: renameat2 RENAME_NOREPLACE), so
// a part keeps its inode, owner, mode and times; a quarantine directory on
// another file system is refused (safefs.ErrCrossDevice), never copied to.
// Each operation is a Plan (printable for --dry-run) executed step by step;
// the order of the steps is chosen so that a crash after any step leaves a
// queue the MTA tolerates and every part either in the queue or in the
// quarantine directory, and Restore continues an interrupted run.
//
// For many messages, build the plans first (PlanQuarantine, PlanRestore:
// what --dry-run prints) and run them with ExecuteBatch, which writes the
// manifest twice per batch instead of twice per message.
//
// Layout of the quarantine directory:
//
//	DIR/manifest.jsonl                 one line per state change of an entry
//	DIR/<key>/<path in the queue>      the parts of one message, e.g.
//	DIR/7A6D1BE4D7/deferred/7/7A6D1BE4D7, DIR/7A6D1BE4D7/defer/7/7A6D1BE4D7
//
// The caller holds qmailq.LockSend on a qmail queue, and knows whether a
// Postfix master runs on a Postfix queue (Options.MasterRunning).
// Nothing here prints.
package quarantine

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

// Options tune Quarantine.
type Options struct {
	// Now stamps the manifest entry; zero means clock.Now().
	Now time.Time
	// MasterRunning: a Postfix master runs on the queue, so messages in
	// active/ are refused (qmgr holds them in memory).
	MasterRunning bool
}

// DirReader is what planning needs of the quarantine directory: a
// *safefs.FS, or for a dry run into a directory not created yet, one in
// which nothing exists.
type DirReader interface {
	Root() string
	Lstat(p string) (fs.FileInfo, error)
}

// PlanQuarantine works out how message m of src moves into the quarantine
// directory dir, without changing anything. queueFS is src's root opened
// with safefs. m must come from src.Read (its inode is re-checked when the
// plan runs).
func PlanQuarantine(src queue.Source, m *queue.Message, dir DirReader, queueFS *safefs.FS, opt Options) (*Plan, error) {
	if m == nil || m.ID == "" {
		return nil, errors.New("quarantine: no message")
	}
	if err := CheckOutside(queueFS.Root(), dir.Root()); err != nil {
		return nil, err
	}
	if !sameDir(src.Root(), queueFS.Root()) {
		return nil, fmt.Errorf("quarantine: the message was read from %s but the queue opened for changes is %s", src.Root(), queueFS.Root())
	}
	now := opt.Now
	if now.IsZero() {
		now = clock.Now()
	}
	e := Entry{
		MTA:       src.MTA(),
		QueueDir:  src.Root(),
		QueueName: m.Queue,
		ID:        m.ID,
		Envelope:  summary(m),
		Time:      now.UTC(),
	}
	var (
		parts []string // queue paths, in the order they move out
		names []string
		inos  = map[string]uint64{}
	)
	switch s := src.(type) {
	case *postfixq.Spool:
		if !postfixq.ValidName(m.ID) || m.Path == "" || path.Base(m.Path) != m.ID || !strings.HasPrefix(m.Path, m.Queue+"/") {
			return nil, fmt.Errorf("quarantine: %s: message path %q does not match queue %s", m.ID, m.Path, m.Queue)
		}
		if m.Queue == queue.Active && opt.MasterRunning {
			return nil, fmt.Errorf("quarantine: %s: active/ while the Postfix master runs: %w", m.ID, postfixq.ErrActiveLive)
		}
		// postsuper.c delete_one order: the logs first (bounce, defer,
		// trace), then the message, so that a crash never leaves a log
		// without its message (a stale bounce log would be attached to a
		// later message reusing the short ID).
		for _, svc := range []string{postfixq.LogBounce, postfixq.LogDefer, postfixq.LogTrace} {
			parts = append(parts, s.LogPath(svc, m.ID))
			names = append(names, svc)
		}
		parts = append(parts, m.Path)
		names = append(names, "message")
		if m.Inode == 0 {
			return nil, fmt.Errorf("quarantine: %s: message was not read (no inode)", m.ID)
		}
		inos[m.Path] = m.Inode
	case *qmailq.Queue:
		id, ok := qmailq.ParseID(m.ID)
		if !ok {
			return nil, fmt.Errorf("quarantine: %q is not a qmail message id", m.ID)
		}
		l := s.Layout()
		for _, p := range qmailOutOrder(m.Queue) {
			qp := l.Path(p, id)
			if p == qmailq.PartMess && m.Path != "" {
				qp = m.Path // where the reader found it
				if m.Inode != 0 {
					inos[qp] = m.Inode
				}
			}
			parts = append(parts, qp)
			names = append(names, p.Dir())
		}
	default:
		return nil, fmt.Errorf("quarantine: unsupported source %T", src)
	}

	key, err := freeKey(dir, m.ID)
	if err != nil {
		return nil, err
	}
	e.Key = key
	for i, qp := range parts {
		fi, err := queueFS.Lstat(qp)
		if errors.Is(err, fs.ErrNotExist) {
			if names[i] == "message" {
				return nil, fmt.Errorf("quarantine: %s: %s: %w: %w", m.ID, qp, ErrChanged, err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("quarantine: %s: %w", m.ID, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("quarantine: %s: %s: %w (%s)", m.ID, qp, ErrNotRegular, fi.Mode().Type())
		}
		st := statOf(fi)
		if want, ok := inos[qp]; ok && want != st.Ino {
			return nil, fmt.Errorf("quarantine: %s: %s: %w: inode %d, read as %d", m.ID, qp, ErrChanged, st.Ino, want)
		}
		e.Parts = append(e.Parts, Part{
			Name:      names[i],
			QueuePath: qp,
			DirPath:   key + "/" + qp,
			Mode:      unixMode(fi.Mode()),
			UID:       int(st.Uid),
			GID:       int(st.Gid),
			Inode:     st.Ino,
			Size:      fi.Size(),
			MTime:     fi.ModTime().UTC(),
		})
	}
	if len(e.Parts) == 0 {
		return nil, fmt.Errorf("quarantine: %s: no file of the message is in the queue: %w", m.ID, fs.ErrNotExist)
	}

	p := &Plan{NewID: m.ID}
	start := e
	start.State = StateQuarantining
	p.Steps = append(p.Steps, Step{Op: OpRecord, Payload: &start})
	var dirs []string
	for _, pt := range e.Parts {
		dirs = append(dirs, path.Dir(pt.DirPath))
	}
	for _, d := range mkdirAll(dirs) {
		p.Steps = append(p.Steps, Step{Op: OpMkdir, Root: InDir, Path: d, Perm: 0o700, UID: -1, GID: -1})
	}
	for _, pt := range e.Parts {
		p.Steps = append(p.Steps, Step{Op: OpMove, Root: InQueue, Path: pt.QueuePath, DestRoot: InDir, Dest: pt.DirPath, Inode: pt.Inode})
	}
	e.State = StateQuarantined
	done := e
	p.Steps = append(p.Steps, Step{Op: OpRecord, Payload: &done})
	p.Entry = e
	return p, nil
}

// Quarantine moves message m of src, whole, into the quarantine directory
// dir and records it in dir's manifest. It is PlanQuarantine executed on
// disk.
func Quarantine(src queue.Source, m *queue.Message, dir, queueFS *safefs.FS, opt Options) (Entry, error) {
	p, err := PlanQuarantine(src, m, dir, queueFS, opt)
	if err != nil {
		return Entry{}, err
	}
	return p.Execute(&Disk{Queue: queueFS, Dir: dir})
}

// qmailOutOrder is the order the parts of a qmail message leave the queue,
// each prefix of which leaves a state qmail heals by itself (doc §3.6, §5.9).
//
// Preprocessed (info exists, no todo): bounce first (a bounce file without
// info is inherited by the next message with that inode), then info (the
// message is then invisible: qmail-send.c:pqstart() scans info/ only),
// then the channel files, intd, mess. Not qmail's own elimination order
// (messdone() removes the channel files before info): that order is right
// for a finished message, but a crash after the channel files left and
// before info did would leave info+mess without channels, which
// qmail-send.c:pqadd() sends straight to messdone(): it would delete the
// message's info and mess before the quarantine could be resumed.
//
// Not preprocessed (todo exists): bounce, then info/local/remote while
// todo/ still exists (todo_do unlinks and redoes them; pqadd skips an id
// whose todo exists), then todo, intd, mess (S3, S2: cleaned by qmail).
// Taking todo away before a half-written info would expose that info to
// qmail-send's startup scan as a preprocessed message with partial
// recipients, so todo goes after them.
func qmailOutOrder(queueName string) []qmailq.Part {
	if queueName == queue.QmailTodo {
		return []qmailq.Part{qmailq.PartBounce, qmailq.PartInfo, qmailq.PartLocal, qmailq.PartRemote, qmailq.PartTodo, qmailq.PartIntd, qmailq.PartMess}
	}
	return []qmailq.Part{qmailq.PartBounce, qmailq.PartInfo, qmailq.PartLocal, qmailq.PartRemote, qmailq.PartTodo, qmailq.PartIntd, qmailq.PartMess}
}

func summary(m *queue.Message) Envelope {
	env := Envelope{
		Sender:     m.Sender,
		SASLUser:   m.SASLUser,
		ClientAddr: m.ClientAddr,
		Size:       m.Size,
		Arrival:    m.Arrival.UTC(),
	}
	if m.Arrival.IsZero() {
		env.Arrival = time.Time{}
	}
	for _, r := range m.Recipients {
		if r.Canceled {
			continue
		}
		env.Recipients = append(env.Recipients, Recipient{Address: r.Address, Done: r.Done})
	}
	return env
}

// freeKey picks the entry directory name: the id, or id.N when an earlier
// quarantine of a message with the same id is still there.
func freeKey(dir DirReader, id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return "", fmt.Errorf("quarantine: unusable id %q", id)
	}
	for n := 0; n < 10000; n++ {
		k := id
		if n > 0 {
			k = id + "." + strconv.Itoa(n)
		}
		_, err := dir.Lstat(k)
		if errors.Is(err, fs.ErrNotExist) {
			return k, nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("quarantine: no free entry name for %s", id)
}

// mkdirAll lists every directory (parents first) needed for dirs.
func mkdirAll(dirs []string) []string {
	seen := map[string]bool{".": true}
	var out []string
	var add func(d string)
	add = func(d string) {
		if seen[d] {
			return
		}
		add(path.Dir(d))
		seen[d] = true
		out = append(out, d)
	}
	for _, d := range dirs {
		add(d)
	}
	return out
}

// sameDir reports whether a and b are the same directory (by device and
// inode, after following symbolic links in the operator-given paths).
func sameDir(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

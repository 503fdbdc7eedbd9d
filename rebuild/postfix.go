package rebuild

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// Problem kinds reported for a Postfix queue (besides KindIDNotInode and
// KindStray).
const (
	KindLongID       = "long-id"        // long queue ID with enable_long_queue_ids = no: postsuper -s makes it short
	KindWrongHashDir = "wrong-hash-dir" // not where hash_queue_names/depth put it
	KindStaleTemp    = "stale-temp"     // a message file never completed (mode not u+rwx), older than 7 days
	KindOrphanLog    = "orphan-log"     // defer/bounce/trace log of a message that is not queued
	KindCorrupt      = "corrupt"        // a queue file qmgr would move to corrupt/
	KindBadName      = "bad-name"       // not a queue ID (postsuper: "bogus file name")
	KindFixLeftover  = "fix-leftover"   // ID#FIX left by an interrupted postsuper -s
)

// PostfixOptions tune CheckPostfix.
type PostfixOptions struct {
	// Config gives hash_queue_names/depth and enable_long_queue_ids (e.g.
	// postfixq.LoadConfig of the instance); nil means both are inferred
	// from the tree (see PostfixAssumed).
	Config *postfixq.Config
	// Now is the reference time for ages; zero means clock.Now().
	Now time.Time
	// Assumed, when set, receives what the check took the layout to be
	// (so a command can say it): from Config, or inferred from the tree.
	Assumed *PostfixAssumed
}

// PostfixAssumed is the layout CheckPostfix checked the queue against.
type PostfixAssumed struct {
	// FromConfig: the layout came from PostfixOptions.Config; otherwise
	// it was inferred from the tree, as the readers infer it.
	FromConfig bool
	// LongIDs is enable_long_queue_ids. Inferred: yes when any message
	// file has a long queue ID (Postfix names files long only when it is
	// on; a queue with long names and the setting off is a main.cf that
	// changed, which only --config-dir can tell).
	LongIDs bool
	// HashDepth is the hash depth of each queue and log directory (0:
	// flat), as postfixq.Spool found or was told.
	HashDepth map[string]int
}

// maxTempAge is postsuper.c MAX_TEMP_AGE: "-p" removes message files that
// are not ready and whose mtime is older than this.
const maxTempAge = 7 * 24 * time.Hour

// postfix queue directories: the message queues (postsuper's
// MESSAGE_QUEUE: expected mode 0700) and the logfile queues
// (postsuper.c:fix_queue_id log_queue_names).
var (
	pfMessageQueues = []string{queue.Maildrop, queue.Incoming, queue.Active, queue.Deferred, queue.Hold}
	pfLogQueues     = []string{"defer", "bounce", "trace"}
)

type pfFile struct {
	dir  string // queue name
	n    *node
	name string
}

// CheckPostfix inspects a Postfix queue_directory read-only, the way
// postsuper -s -p would (postsuper.c:super, fix_queue_id): queue files
// whose name no longer matches their inode (restored or copied queue; short
// IDs keep their five microsecond digits and get the new hex inode, long
// IDs are compared only when they are being converted to short ones),
// files in the wrong hash directory, files never completed that are older
// than 7 days, non-regular entries and bad names; and beyond postsuper,
// defer/bounce/trace logs of messages that are not queued and queue files
// the envelope reader finds corrupt.
func CheckPostfix(root string, opts PostfixOptions) ([]Problem, error) {
	now := opts.Now
	if now.IsZero() {
		now = clock.Now()
	}
	sp, err := postfixq.Open(root, postfixq.Options{Config: opts.Config})
	if err != nil {
		return nil, err
	}
	defer sp.Close()
	longIDs := opts.Config != nil && opts.Config.LongQueueIDs
	t, err := openTree(root)
	if err != nil {
		return nil, err
	}
	defer t.close()
	var probs []Problem
	add := func(p Problem) { probs = append(probs, p) }
	walk := func(dir string) []pfFile {
		var out []pfFile
		var rec func(rel string, level int)
		rec = func(rel string, level int) {
			ents, err := t.list(rel)
			if err != nil {
				if !os.IsNotExist(err) {
					add(Problem{Kind: KindStray, Path: rel, Detail: err.Error(), Fix: "none automatic"})
				}
				return
			}
			for _, e := range ents {
				base := path.Base(e.Rel)
				if e.isDir() && len(base) == 1 && dir != queue.Maildrop && level < 8 {
					rec(e.Rel, level+1)
					continue
				}
				out = append(out, pfFile{dir: dir, n: e, name: base})
			}
		}
		rec(dir, 0)
		return out
	}
	// The message queues first: without a configuration, whether long IDs
	// are on is inferred from the names found (postfixq reads both kinds
	// either way).
	msgFiles := map[string][]pfFile{}
	anyLong := false
	for _, dir := range pfMessageQueues {
		msgFiles[dir] = walk(dir)
		for _, f := range msgFiles[dir] {
			if id, err := postfixq.ParseID(f.name); err == nil && id.Kind == postfixq.LongID {
				anyLong = true
			}
		}
	}
	if opts.Config == nil {
		longIDs = anyLong
	}
	if a := opts.Assumed; a != nil {
		a.FromConfig, a.LongIDs, a.HashDepth = opts.Config != nil, longIDs, map[string]int{}
		for _, d := range append(append([]string{}, pfMessageQueues...), pfLogQueues...) {
			a.HashDepth[d] = sp.HashDepth(d)
		}
	}
	queued := map[string]bool{}
	var logs []pfFile
	for _, dir := range pfLogQueues {
		logs = append(logs, walk(dir)...)
	}
	// Log directories first, as postsuper does ("before message
	// directories"), for position checks.
	checkPlace := func(f pfFile) {
		want := f.dir + "/" + postfixq.HashDir(f.name, sp.HashDepth(f.dir)) + f.name
		if f.n.Rel != want {
			add(Problem{Kind: KindWrongHashDir, ID: f.name, Path: f.n.Rel, Detail: fmt.Sprintf("hash_queue_depth %d puts it at %s", sp.HashDepth(f.dir), want), Fix: "rename to " + want + " (postsuper -s)"})
		}
	}
	for _, f := range logs {
		if !f.n.isFile() {
			add(Problem{Kind: KindStray, Path: f.n.Rel, Detail: "a " + typeName(f.n.Type) + " in a log directory (postsuper removes it)", Fix: "move it to lost+found"})
			continue
		}
		if !postfixq.ValidName(f.name) {
			add(Problem{Kind: KindBadName, Path: f.n.Rel, Detail: "not a queue ID (postsuper: bogus file name)", Fix: "none"})
			continue
		}
		checkPlace(f)
	}
	for _, dir := range pfMessageQueues {
		for _, f := range msgFiles[dir] {
			rel, name := f.n.Rel, f.name
			if !f.n.isFile() {
				add(Problem{Kind: KindStray, Path: rel, Detail: "a " + typeName(f.n.Type) + " in a queue directory (postsuper removes it)", Fix: "move it to lost+found"})
				continue
			}
			ready := f.n.Perm&0o700 == 0o700 // mail_open_ok.c
			if !ready {
				if age := now.Sub(f.n.Mtime); age > maxTempAge {
					add(Problem{Kind: KindStaleTemp, Path: rel, Detail: fmt.Sprintf("mode %04o (never completed), %s old", uint32(f.n.Perm.Perm()), roundAge(age)), Fix: "move it to lost+found (postsuper -p deletes it)"})
				}
				continue // being written, or a temporary usec.pid file
			}
			if strings.HasSuffix(name, "#FIX") {
				add(Problem{Kind: KindFixLeftover, ID: strings.TrimSuffix(name, "#FIX"), Path: rel, Detail: "left by an interrupted postsuper -s", Fix: "postsuper -s strips #FIX"})
				continue
			}
			if !postfixq.ValidName(name) {
				if !strings.Contains(name, ".") {
					add(Problem{Kind: KindBadName, Path: rel, Detail: "not a queue ID (postsuper: bogus file name)", Fix: "none"})
				}
				continue
			}
			id, err := postfixq.ParseID(name)
			if err != nil {
				add(Problem{Kind: KindBadName, Path: rel, Detail: "not a queue ID (postsuper: bogus file name)", Fix: "none"})
				continue
			}
			queued[name] = true
			// postsuper.c:super: rename when a long name must become
			// short, or the inode differs (long names only with -S).
			newID := ""
			kind := KindIDNotInode
			switch {
			case id.Kind == postfixq.LongID && !longIDs:
				newID = postfixq.NewShortID(id.Usec, f.n.Ino)
				kind = KindLongID
			case id.Kind == postfixq.ShortID && id.Inode != f.n.Ino:
				newID = postfixq.NewShortID(id.Usec, f.n.Ino)
			}
			if newID != "" {
				detail := fmt.Sprintf("name says inode %d, file has inode %d", id.Inode, f.n.Ino)
				if kind == KindLongID {
					detail = "long queue ID while enable_long_queue_ids = no"
				}
				want := dir + "/" + postfixq.HashDir(newID, sp.HashDepth(dir)) + newID
				add(Problem{Kind: kind, ID: name, Path: rel, Detail: detail, Fix: fmt.Sprintf("rename to %s with its defer/bounce/trace logs (postsuper -s: %s)", newID, want)})
			} else {
				checkPlace(f)
			}
			// Corruption, as the envelope reader (qmgr's rules) sees it.
			if err := pfCorrupt(t, rel, f.n.Size); err != nil {
				add(Problem{Kind: KindCorrupt, ID: name, Path: rel, Detail: err.Error(), Fix: "none automatic: qmgr would move it to corrupt/"})
			}
		}
	}
	for _, f := range logs {
		if f.n.isFile() && postfixq.ValidName(f.name) && !queued[f.name] {
			add(Problem{Kind: KindOrphanLog, ID: f.name, Path: f.n.Rel, Detail: "log of a message that is not queued (left by postsuper -r, or a deleted message); a later message with the same short ID would inherit it", Fix: "move it to lost+found"})
		}
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Path < probs[j].Path })
	return probs, nil
}

func pfCorrupt(t *tree, rel string, size int64) error {
	f, err := t.openRegular(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	m, _ := postfixq.ParseEnvelope(f, size, rel)
	if m != nil && m.Err != nil {
		return m.Err
	}
	return nil
}

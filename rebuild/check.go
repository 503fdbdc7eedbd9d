package rebuild

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/queue"

	"github.com/qsurgeon/qsurgeon/qmailq"
)

// Problem is one thing wrong with a queue, and what repair would do about
// it. The JSON members are the CLI contract of `qsurgeon check --format
// json`.
type Problem struct {
	Kind string `json:"kind"`
	// ID is the message id when the problem concerns one message.
	ID string `json:"id,omitempty"`
	// Path is relative to the queue root.
	Path   string `json:"path"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
	// Severity says what the problem means for the mail in the queue: one
	// of SeverityRisk, SeverityFault, SeverityNote.
	Severity string `json:"severity"`
}

// Severities of a Problem. check's exit code follows the worst one.
const (
	// SeverityRisk: mail will be lost, never delivered, or delivered twice
	// unless the problem is fixed.
	SeverityRisk = "at-risk"
	// SeverityFault: the queue is not as qmail makes it, but no mail is at
	// risk (qmail works around it, or it holds no mail).
	SeverityFault = "fault"
	// SeverityNote: a state qmail tolerates or will clean up itself.
	SeverityNote = "note"
)

// AtRisk reports whether any problem puts mail at risk.
func AtRisk(probs []Problem) bool {
	for _, p := range probs {
		if p.Severity == SeverityRisk {
			return true
		}
	}
	return false
}

func (p Problem) String() string {
	s := p.Kind
	if p.Severity != "" && p.Severity != SeverityFault {
		s += " [" + p.Severity + "]"
	}
	if p.ID != "" {
		s += " #" + p.ID
	}
	if p.Path != "" {
		s += " " + p.Path
	}
	s += ": " + p.Detail
	if p.Fix != "" {
		s += " (fix: " + p.Fix + ")"
	}
	return s
}

// Problem kinds reported for a qmail queue.
const (
	// Queue structure.
	KindMissing       = "missing"         // a directory or lock file of hier.c is missing
	KindWrongType     = "wrong-type"      // e.g. lock/trigger is not a FIFO
	KindWrongOwner    = "wrong-owner"     // owner or group differs from the table
	KindWrongMode     = "wrong-mode"      // permission bits differ from the table
	KindWrongSize     = "wrong-size"      // lock/tcpto not 1024 bytes, lock/sendmutex not empty
	KindExtraSplitDir = "extra-split-dir" // mess/N with N >= conf-split: qmail never reads it
	KindTodoSubdir    = "todo-subdir"     // todo/N or intd/N on a flat-todo queue
	KindStray         = "stray"           // an entry that is not a qmail message file
	KindStalePid      = "stale-pid"       // pid/ file older than 36 h
	KindPidFile       = "pid-file"        // pid/ file younger than 36 h
	KindSplitUnknown  = "split-guessed"   // no split subdirectory at all

	// Messages.
	KindIDNotInode          = "id-not-inode"           // mess name differs from its inode number
	KindWrongSubdir         = "wrong-subdir"           // a part is not in id % split (or not where the todo layout wants it)
	KindDuplicatePart       = "duplicate-part"         // the same part exists twice (two subdirectories)
	KindInfoWithoutMess     = "info-without-mess"      // info (and perhaps local/remote) but no mess
	KindEnvelopeWithoutMess = "envelope-without-mess"  // todo/intd/local/remote without mess and info
	KindBounceOrphan        = "bounce-without-message" // bounce/N of a message that no longer exists
	KindStaleBounce         = "stale-bounce"           // bounce/N next to a message still in todo (reused inode)
	KindMessWithoutEnvelope = "mess-without-envelope"  // S2: mess only
	KindZeroLengthMess      = "zero-length-mess"       // mess of 0 bytes
	KindTodoWithoutIntd     = "todo-without-intd"
	KindIntdWithoutTodo     = "intd-without-todo"
	KindChannelWithoutInfo  = "channel-without-info" // local/remote without info (and no todo)

	// Contents of the envelope files, parsed by qmailq (the one parser of
	// qmail's formats).
	KindEmptyInfo       = "empty-info"           // info of 0 bytes: qmail-send's getinfo() fails, "trouble opening" forever
	KindCorruptInfo     = "corrupt-info"         // info whose first record is not a complete F record
	KindChannelCut      = "channel-cut"          // local/remote ends inside a record: qmail drops that recipient silently
	KindCorruptChannel  = "corrupt-channel"      // local/remote with a record that is not T or D
	KindChannelTrailing = "channel-trailing-nul" // local/remote ends with an extra NUL: qmail-send never finishes the message
	KindChannelAllDone  = "channel-all-done"     // local/remote with only D records: qmail-send removes it on its next pass
	KindChannelsGone    = "channels-gone"        // info+mess, no local/remote/todo/bounce: qmail-send finishes it as delivered
	KindCorruptEnvelope = "corrupt-envelope"     // todo/intd that qmail-send's todo_do() cannot read
)

// TodoLayout says whether todo/ and intd/ are split (big-todo patch).
type TodoLayout int

// Todo layouts; TodoAuto decides from where the envelope files are
// (qmailq.DetectLayout).
const (
	TodoAuto TodoLayout = iota
	TodoFlat
	TodoBig
)

// Options tune check and repair.
type Options struct {
	// Split overrides the detected conf-split when > 0.
	Split int
	// Todo overrides the detected todo layout.
	Todo TodoLayout
	// Now is the reference time for ages; zero means clock.Now().
	Now time.Time
	// Detached says no qmail process can own any part of this queue (it
	// was moved aside, or qmail is stopped for good): every fragment counts
	// as ossified whatever its age. Now stays the real time, so names and
	// notes carry the date they were made.
	Detached bool
	// SendLogs are qmail-send log files (qmail-start's output, splogger's
	// syslog, multilog's current): their "info msg" lines are evidence of a
	// lost info file's sender.
	SendLogs []string
	// LostFound is where repair moves fragments it cannot put back into a
	// legal state. It must be outside the queue and on the same
	// filesystem. Empty means "<queue>.lost+found" next to the queue.
	LostFound string
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return clock.Now()
	}
	return o.Now
}

// ossified reports whether a fragment of this age can no longer belong to
// a running qmail-queue: qmail's 36-hour rule, or any age on a detached
// queue.
func (o Options) ossified(age time.Duration) bool {
	return o.Detached || age >= Ossified
}

// Ossified is qmail's age for leftovers no process can still own:
// qmail-send.c OSSIFIED (36 h, longer than qmail-queue's 24 h DEATH alarm),
// also used by qmail-clean.c:cleanuppid(). qmail measures atime; check uses
// mtime, which a copy keeps and reading never changes (mess and pid files
// are not written after qmail-queue exits).
const Ossified = 36 * time.Hour

// Report is everything CheckQmail found, with the layout it assumed.
type Report struct {
	Root    string
	Split   int
	BigTodo bool
	// Layout is qmailq's detection (split votes, todo evidence, notes).
	Layout   *qmailq.Layout
	Problems []Problem
	// Messages is the number of message names found.
	Messages int
}

// CheckQmail inspects a qmail queue read-only and returns every problem
// found, sorted by path. ids must hold qmailq, qmails, qmailr and group
// qmail (see Resolve). It fails only when the queue cannot be read at all.
func CheckQmail(root string, ids IDs, opts Options) ([]Problem, error) {
	r, err := InspectQmail(root, ids, opts)
	if err != nil {
		return nil, err
	}
	return r.Problems, nil
}

// InspectQmail is CheckQmail returning the layout it assumed as well.
func InspectQmail(root string, ids IDs, opts Options) (*Report, error) {
	if err := needIDs(ids); err != nil {
		return nil, err
	}
	s, err := takeSnapshot(root, opts.Split, opts.Todo)
	if err != nil {
		return nil, err
	}
	a := analyze(s, ids, opts)
	r := &Report{Root: s.root, Split: s.layout.Split, BigTodo: s.layout.BigTodo, Layout: s.layout, Messages: len(s.msgs)}
	for _, f := range a.findings {
		r.Problems = append(r.Problems, f.Problem)
	}
	return r, nil
}

func needIDs(ids IDs) error {
	for _, u := range []string{UserQ, UserR, UserS} {
		if _, ok := ids.Users[u]; !ok {
			return fmt.Errorf("rebuild: %w: user %s has no id (call Resolve, or give --user %s=UID)", ErrUnknownAccount, u, u)
		}
	}
	if _, ok := ids.Groups[GroupQ]; !ok {
		return fmt.Errorf("rebuild: %w: group %s has no id (call Resolve, or give --group %s=GID)", ErrUnknownAccount, GroupQ, GroupQ)
	}
	return nil
}

// action is what repair does about a finding.
type action int

const (
	actNone           action = iota
	actMkdir                 // create the directory
	actMkfile                // create a lock file
	actMkfifo                // create lock/trigger
	actReplace               // move aside to lost+found, then create as in the table
	actChown                 // fix owner/group
	actChmod                 // fix mode
	actLostFound             // move the file(s) to lost+found
	actMoveMsg               // rename the message's parts to their right places
	actLinkIntd              // link todo -> intd
	actLinkTodo              // link intd -> todo
	actMakeInfo              // recreate info from the mess
	actDrainDir              // move entries of a wrong directory to their places, then rmdir it
	actAsideTodo             // todo of a preprocessed message to lost+found
	actAsideIntd             // stale intd of a preprocessed message to lost+found
	actAsideBounce           // stale bounce to lost+found
	actWait                  // young leftover: leave it to qmail
	actRewriteChannel        // the channel file to lost+found, its complete records written back
)

// finding is a Problem plus what repair needs to act on it.
type finding struct {
	Problem
	act   action
	msg   *msg
	node  *node
	rule  *Rule
	uid   int
	gid   int
	perm  fs.FileMode
	nodes []*node // for actLostFound: the files to move
	// For actMakeInfo: the sender to write and where it comes from.
	sender, evidence string
	// For actRewriteChannel: the records to write back.
	channel *qmailq.Channel
}

type analysis struct {
	opts     Options
	s        *snapshot
	ids      IDs
	findings []finding
	// fate of each message: what repair will do with it as a whole.
	lost  map[uint64]bool // goes to lost+found entirely
	final map[uint64]uint64
	t     *tree // opened on the first file read
	// infoLog: the "info msg" lines of opts.SendLogs by id (read once).
	infoLog map[uint64][]qmailq.SendLogInfo
}

func (a *analysis) close() {
	if a.t != nil {
		a.t.close()
		a.t = nil
	}
}

func analyze(s *snapshot, ids IDs, opts Options) *analysis {
	a := &analysis{opts: opts, s: s, ids: ids, lost: map[uint64]bool{}, final: map[uint64]uint64{}}
	defer a.close()
	now := opts.now()
	l := s.layout
	add := func(f finding) { a.findings = append(a.findings, f) }

	// 1. The hierarchy of hier.c.
	if s.layout.SplitGuessed {
		add(finding{Problem: Problem{Kind: KindSplitUnknown, Path: "mess", Detail: fmt.Sprintf("no split subdirectory found; assuming conf-split %d", l.Split), Fix: fmt.Sprintf("create the %d split subdirectories", l.Split)}})
	}
	for _, r := range Hier(l.Split, l.BigTodo) {
		r := r
		n := s.top[r.Path]
		if n == nil {
			if top, sub, ok := cutSub(r.Path); ok {
				n = s.subdirs[top][sub]
			} else if s.lock[r.Path] != nil {
				n = s.lock[r.Path]
			}
		}
		want := fmt.Sprintf("%s %s:%s %04o", r.Type, r.User, r.Group, uint32(r.Mode))
		if r.Type == File {
			want += fmt.Sprintf(", %d bytes", r.Size)
		}
		if n == nil {
			act := actMkdir
			switch r.Type {
			case File:
				act = actMkfile
			case FIFO:
				act = actMkfifo
			}
			add(finding{Problem: Problem{Kind: KindMissing, Path: r.Path, Detail: "missing; want " + want, Fix: "create " + want}, act: act, rule: &r})
			continue
		}
		if !typeMatches(n, r.Type) {
			fix := "move it to lost+found and create " + want
			act := actReplace
			if r.Path == "." || r.Type == Dir {
				fix, act = "none automatic: move it away by hand and rerun repair", actNone
			}
			add(finding{Problem: Problem{Kind: KindWrongType, Path: r.Path, Detail: fmt.Sprintf("is a %s; want %s", typeName(n.Type), want), Fix: fix}, act: act, node: n, rule: &r})
			continue
		}
		a.ownerMode(n, nil, r.User, r.Group, r.Mode)
		if r.Type == File && n.Size != r.Size {
			fix := "none needed (qmail-send only locks it)"
			act := actNone
			if r.Path == "lock/tcpto" {
				fix, act = "move it to lost+found and create 1024 zero bytes (what qmail-tcpok writes)", actReplace
			}
			add(finding{Problem: Problem{Kind: KindWrongSize, Path: r.Path, Detail: fmt.Sprintf("%d bytes; want %d", n.Size, r.Size), Fix: fix}, act: act, node: n, rule: &r})
		}
	}
	// Split subdirectories qmail never reads (readsubdir.c scans 0..split-1).
	for _, top := range partNames {
		var extra []int
		for d := range s.subdirs[top] {
			if d >= l.Split {
				extra = append(extra, d)
			}
		}
		sort.Ints(extra)
		for _, d := range extra {
			n := s.subdirs[top][d]
			add(finding{Problem: Problem{Kind: KindExtraSplitDir, Path: n.Rel, Detail: fmt.Sprintf("subdirectory %d is beyond conf-split %d: qmail never reads it", d, l.Split), Fix: "move its files to their id % split subdirectories, then remove the empty directory"}, act: actDrainDir, node: n})
		}
	}
	for _, n := range s.flatSub {
		add(finding{Problem: Problem{Kind: KindTodoSubdir, Path: n.Rel, Detail: "a subdirectory in a flat (stock qmail) " + path.Dir(n.Rel) + "/: qmail-send takes it for message " + path.Base(n.Rel) + " and warns 'unable to stat' on every todo scan", Fix: "move any files to " + path.Dir(n.Rel) + "/, then remove the empty directory"}, act: actDrainDir, node: n})
	}
	for _, st := range s.strays {
		add(finding{Problem: Problem{Kind: KindStray, Path: st.n.Rel, Detail: st.why, Fix: "move it to lost+found"}, act: actLostFound, nodes: []*node{st.n}})
	}
	for _, p := range s.pids {
		age := now.Sub(p.Mtime)
		if opts.ossified(age) {
			add(finding{Problem: Problem{Kind: KindStalePid, Path: p.Rel, Detail: fmt.Sprintf("left by a qmail-queue that never linked it into mess/ (%s old, %d bytes)", roundAge(age), p.Size), Fix: "move it to lost+found"}, act: actLostFound, nodes: []*node{p}})
		} else {
			add(finding{Problem: Problem{Kind: KindPidFile, Path: p.Rel, Detail: fmt.Sprintf("qmail-queue temporary file, %s old: a running qmail-queue may still own it", roundAge(age)), Fix: "none yet: repair moves it to lost+found once it is 36 h old (qmail-clean removes it then)"}, act: actWait})
		}
	}

	// 2. Messages.
	for _, id := range s.sortedIDs() {
		a.message(s.msgs[id], now)
	}
	for i := range a.findings {
		f := &a.findings[i]
		if f.Severity == "" {
			f.Severity = severityOf(f)
		}
	}
	sort.SliceStable(a.findings, func(i, j int) bool {
		if a.findings[i].Path != a.findings[j].Path {
			return a.findings[i].Path < a.findings[j].Path
		}
		return a.findings[i].Kind < a.findings[j].Kind
	})
	return a
}

func roundAge(d time.Duration) string {
	if d < 0 {
		return "0s"
	}
	return d.Round(time.Minute).String()
}

func cutSub(p string) (string, int, bool) {
	dir, base := path.Split(p)
	if dir == "" {
		return "", 0, false
	}
	n, err := strconv.Atoi(base)
	if err != nil {
		return "", 0, false
	}
	return dir[:len(dir)-1], n, true
}

func typeMatches(n *node, t EntryType) bool {
	switch t {
	case Dir:
		return n.isDir()
	case File:
		return n.isFile()
	case FIFO:
		return n.Type == fs.ModeNamedPipe
	}
	return false
}

// ownerMode adds wrong-owner / wrong-mode findings for n. group "" means
// the group is not checked.
func (a *analysis) ownerMode(n *node, m *msg, user, group string, mode fs.FileMode) {
	id := ""
	if m != nil {
		id = itoa(m.ID)
	}
	uid := a.ids.uid(user)
	gid := -1
	if group != "" {
		gid = a.ids.gid(group)
	}
	if n.UID != uid || gid >= 0 && n.GID != gid {
		want := user
		if group != "" {
			want += ":" + group
		}
		detail := fmt.Sprintf("owner %s:%s; want %s (%d:%s)", a.ids.userName(n.UID), a.ids.groupName(n.GID), want, uid, gidText(gid))
		a.findings = append(a.findings, finding{Problem: Problem{Kind: KindWrongOwner, ID: id, Path: n.Rel, Detail: detail, Fix: "chown " + want}, act: actChown, node: n, msg: m, uid: uid, gid: gid})
	}
	if n.Perm != mode {
		a.findings = append(a.findings, finding{Problem: Problem{Kind: KindWrongMode, ID: id, Path: n.Rel, Detail: fmt.Sprintf("mode %04o; want %04o", queue.UnixMode(n.Perm), uint32(mode)), Fix: fmt.Sprintf("chmod %04o", uint32(mode))}, act: actChmod, node: n, msg: m, perm: mode})
	}
}

func gidText(gid int) string {
	if gid < 0 {
		return "any"
	}
	return strconv.Itoa(gid)
}

// message classifies one message against qmail's legal states (INTERNALS:
// S1 nothing; S2 +mess; S3 +mess +intd; S4 +mess ?intd +todo ?info ?local
// ?remote; S5 +mess -intd -todo +info ?local ?remote ?bounce) and adds a
// finding for each thing that is off.
func (a *analysis) message(m *msg, now time.Time) {
	l := a.s.layout
	idStr := itoa(m.ID)
	has := m.has
	mess := m.one(qmailq.PartMess, l)
	all := func() []*node {
		var out []*node
		for _, p := range qmailq.Parts {
			out = append(out, m.parts[p]...)
		}
		return out
	}
	add := func(kind, p, detail, fix string, act action, nodes []*node) {
		a.findings = append(a.findings, finding{Problem: Problem{Kind: kind, ID: idStr, Path: p, Detail: detail, Fix: fix}, act: act, msg: m, nodes: nodes})
	}
	firstPath := func() string {
		for _, p := range []qmailq.Part{qmailq.PartMess, qmailq.PartInfo, qmailq.PartTodo, qmailq.PartIntd, qmailq.PartLocal, qmailq.PartRemote, qmailq.PartBounce} {
			if n := m.one(p, l); n != nil {
				return n.Rel
			}
		}
		return ""
	}
	present := func() string {
		var b bytes.Buffer
		for _, p := range qmailq.Parts {
			if has(p) {
				if b.Len() > 0 {
					b.WriteByte('+')
				}
				b.WriteString(p.Dir())
			}
		}
		return b.String()
	}

	// Fate of the whole message.
	lostKind, lostDetail, lostSev := "", "", ""
	wait := false
	switch {
	case mess == nil && has(qmailq.PartInfo):
		lostKind, lostDetail = KindInfoWithoutMess, "the message file is gone ("+present()+"): qmail defers it with 'unable to open message' until queuelifetime, then cannot build the bounce"
	case mess == nil && (has(qmailq.PartTodo) || has(qmailq.PartIntd) || has(qmailq.PartLocal) || has(qmailq.PartRemote)):
		lostKind, lostDetail = KindEnvelopeWithoutMess, "envelope files without a message file ("+present()+")"
	case mess == nil:
		lostKind, lostDetail = KindBounceOrphan, "bounce/"+idStr+" of a message that no longer exists: the next message that gets this inode inherits the old failure text"
	case mess.Size == 0 && (has(qmailq.PartInfo) || has(qmailq.PartTodo) || has(qmailq.PartLocal) || has(qmailq.PartRemote)):
		lostKind, lostDetail = KindZeroLengthMess, "the message file is empty ("+present()+"): qmail would deliver an empty message"
	case !has(qmailq.PartTodo) && !has(qmailq.PartIntd) && !has(qmailq.PartInfo) && !has(qmailq.PartLocal) && !has(qmailq.PartRemote):
		age := now.Sub(mess.Mtime)
		kind := KindMessWithoutEnvelope
		detail := fmt.Sprintf("message file without envelope (%s, %d bytes, %s old): qmail-queue died before it got the envelope, or the envelope was removed; qmail-send cleans it after 36 h", present(), mess.Size, roundAge(age))
		if mess.Size == 0 {
			kind = KindZeroLengthMess
			detail = fmt.Sprintf("empty message file without envelope (%s old): qmail-queue died before any input", roundAge(age))
			lostSev = SeverityFault // no content, no recipient: nothing to lose
		}
		lostKind, lostDetail = kind, detail
		wait = !a.opts.ossified(age)
	case !has(qmailq.PartTodo) && has(qmailq.PartIntd) && !has(qmailq.PartInfo):
		// S3: qmail-queue died while writing the envelope or at link (66).
		age := now.Sub(mess.Mtime)
		if !a.opts.ossified(age) {
			add(KindIntdWithoutTodo, m.one(qmailq.PartIntd, l).Rel, fmt.Sprintf("injection not finished (%s old): a running qmail-queue may still own it", roundAge(age)), "none yet: repair acts once it is 36 h old", actWait, nil)
			a.idCheck(m, true)
			return
		}
		if env := a.envelopeOK(m.one(qmailq.PartIntd, l)); env != nil {
			lostKind, lostDetail = KindIntdWithoutTodo, "injection stopped before link(intd, todo) (qmail-queue exit 66): the envelope is incomplete: "+env.Error()
		} else {
			add(KindIntdWithoutTodo, m.one(qmailq.PartIntd, l).Rel, "injection stopped before link(intd, todo) (qmail-queue exit 66); the envelope in intd is complete", "link intd to todo, finishing qmail-queue's last step", actLinkTodo, nil)
		}
	}
	if lostKind == "" && !has(qmailq.PartTodo) && has(qmailq.PartInfo) && !has(qmailq.PartLocal) && !has(qmailq.PartRemote) && !has(qmailq.PartBounce) {
		// qmail-send.c:pqadd(): info without todo and without any channel
		// file goes straight to pqdone; messdone() then logs "end msg",
		// unlinks info and has qmail-clean remove mess. That is right when
		// qmail-send crashed after job_close() unlinked the last channel
		// file, and loses every pending recipient when the channel files
		// were removed or lost. Nothing on disk tells which: keep the
		// message out of qmail's reach.
		lostKind, lostDetail = KindChannelsGone, "info and mess without local/ or remote/ ("+present()+"): qmail-send finishes it as delivered and deletes it (qmail-send.c:pqadd() -> messdone()); any recipient still pending is lost without a trace"
	}
	if lostKind != "" {
		fix := "move " + present() + " to lost+found"
		if lostKind == KindChannelsGone {
			fix += " with a note (re-inject it with the recipients it still needs, or delete it if its log shows every delivery)"
		}
		act := actLostFound
		if wait {
			fix, act = "none yet: repair moves it to lost+found once it is 36 h old (a running qmail-queue may still own it)", actWait
		} else {
			a.lost[m.ID] = true
		}
		add(lostKind, firstPath(), lostDetail, fix, act, all())
		if lostSev != "" {
			a.findings[len(a.findings)-1].Severity = lostSev
		}
		if mess != nil {
			a.idCheck(m, false)
		}
		return
	}
	if mess == nil {
		return
	}

	switch {
	case has(qmailq.PartTodo) && !has(qmailq.PartIntd) && has(qmailq.PartInfo):
		add(KindTodoWithoutIntd, m.one(qmailq.PartTodo, l).Rel, "todo without intd next to info: qmail-clean removed intd but not todo; qmail-send would preprocess it again and deliver done recipients twice", "move todo/"+idStr+" to lost+found (finishing qmail-clean's job: info, local and remote were complete before it was asked)", actAsideTodo, m.parts[qmailq.PartTodo])
	case has(qmailq.PartTodo) && !has(qmailq.PartIntd):
		add(KindTodoWithoutIntd, m.one(qmailq.PartTodo, l).Rel, "todo without intd: intd and todo are one inode written by qmail-queue", "link todo to intd", actLinkIntd, nil)
	case has(qmailq.PartIntd) && !has(qmailq.PartTodo) && has(qmailq.PartInfo):
		add(KindIntdWithoutTodo, m.one(qmailq.PartIntd, l).Rel, "intd left next to a preprocessed message: qmail-clean unlinks intd before todo, so qmail did not leave this", "move intd/"+idStr+" to lost+found", actAsideIntd, m.parts[qmailq.PartIntd])
	case !has(qmailq.PartTodo) && !has(qmailq.PartInfo) && (has(qmailq.PartLocal) || has(qmailq.PartRemote)):
		a.infoFromEvidence(m, KindChannelWithoutInfo, firstChannel(m, l), "local/remote without info: invisible to qmail-send (it scans info/ only)", nil)
	}
	if todo := m.one(qmailq.PartTodo, l); todo != nil {
		// qmail-send.c:todo_do(): a record it does not know makes it give
		// up and retry for ever; a record cut at the end is dropped (that
		// recipient is lost); without an F record the info it writes is
		// empty and getinfo() fails on every pass.
		if err := a.envelopeOK(todo); err != nil {
			add(KindCorruptEnvelope, todo.Rel, fmt.Sprintf("%v: qmail-send's todo_do() cannot preprocess it whole (an unknown record: it retries for ever; a cut record: that recipient is dropped; no F record: an empty info)", err), "none automatic: re-inject the message with the sender and recipients it should have (the envelope's complete records are in the detail)", actNone, nil)
		}
	}
	a.contents(m)
	if a.lost[m.ID] {
		a.idCheck(m, false)
		return
	}
	if has(qmailq.PartTodo) && has(qmailq.PartBounce) {
		add(KindStaleBounce, m.one(qmailq.PartBounce, l).Rel, "bounce text next to a message that was never preprocessed: left by an earlier message with the same inode", "move bounce/"+idStr+" to lost+found", actAsideBounce, m.parts[qmailq.PartBounce])
	}
	a.idCheck(m, true)
	// Ownership and modes of the files (hier.c does not create them; the
	// rules come from the code that does, qmail-queue.md §4.2).
	for _, p := range qmailq.Parts {
		for _, n := range m.parts[p] {
			r := fileRules[p.Dir()]
			a.ownerMode(n, m, r.User, r.Group, r.Mode)
		}
	}
}

func firstChannel(m *msg, l *qmailq.Layout) string {
	if n := m.one(qmailq.PartLocal, l); n != nil {
		return n.Rel
	}
	return m.one(qmailq.PartRemote, l).Rel
}

// idCheck reports id-not-inode (once per message), misplaced parts and
// duplicates. When move is false the message goes to lost+found whole and
// nothing is renamed.
func (a *analysis) idCheck(m *msg, move bool) {
	l := a.s.layout
	mess := m.one(qmailq.PartMess, l)
	idStr := itoa(m.ID)
	// The kept mess names the message: a duplicate copy goes to
	// lost+found in the same repair, so the rename to the inode number
	// happens in the same pass too.
	final := m.ID
	if mess != nil {
		final = mess.Ino
	}
	if final != m.ID {
		fix := fmt.Sprintf("rename the message to %d (its inode) with all its files", final)
		if !move {
			fix = "none: the message goes to lost+found"
		}
		detail := fmt.Sprintf("mess %s has inode %d: the queue was copied or restored; new messages can collide with it (qmail-queue exits 64/65/66)", mess.Rel, mess.Ino)
		if len(m.merged) > 0 {
			detail += fmt.Sprintf("; files already renamed to %d by an interrupted repair", final)
		}
		a.findings = append(a.findings, finding{Problem: Problem{Kind: KindIDNotInode, ID: idStr, Path: mess.Rel, Detail: detail, Fix: fix}, act: actMoveMsg, msg: m})
	}
	if !move {
		return
	}
	a.final[m.ID] = final
	for _, p := range qmailq.Parts {
		ns := m.parts[p]
		if len(ns) == 0 {
			continue
		}
		want := l.Path(p, m.ID)
		keep := m.one(p, l)
		for _, n := range ns {
			if n != keep {
				a.findings = append(a.findings, finding{Problem: Problem{Kind: KindDuplicatePart, ID: idStr, Path: n.Rel, Detail: fmt.Sprintf("a second %s file for message %s (the other is %s)", p.Dir(), idStr, keep.Rel), Fix: "move it to lost+found"}, act: actLostFound, msg: m, nodes: []*node{n}})
				continue
			}
			if n.Rel != want && !(final != m.ID && n.Rel == l.Path(p, final)) {
				why := fmt.Sprintf("belongs in %s (id %% %d = %d)", want, l.Split, l.Subdir(m.ID))
				if !l.IsSplit(p) {
					why = "belongs in " + want + " (" + p.Dir() + "/ is not split on this queue)"
				}
				fix := "rename to " + want
				if final != m.ID {
					fix = "rename to " + l.Path(p, final) + " (with the rest of the message, to its inode number)"
				}
				a.findings = append(a.findings, finding{Problem: Problem{Kind: KindWrongSubdir, ID: idStr, Path: n.Rel, Detail: why + ": qmail never finds it here", Fix: fix}, act: actMoveMsg, msg: m})
			}
		}
	}
}

// envelopeOK parses an intd/todo envelope with qmailq's parser (the
// records qmail-send.c:todo_do() accepts, u, p, F and T in any order) and
// returns an error unless it is complete: every record NUL-terminated, an F
// record, at least one T.
func (a *analysis) envelopeOK(n *node) error {
	data, err := a.read(n, maxEnvelope)
	if err != nil {
		return err
	}
	e, err := qmailq.ParseEnvelope(n.Rel, data)
	if err != nil {
		return err
	}
	if len(e.Recipients) == 0 {
		return fmt.Errorf("%s: no recipient", n.Rel)
	}
	return nil
}

// read reads a queue file (beneath the root, never through a symbolic
// link) through the analysis' one open tree.
func (a *analysis) read(n *node, max int64) ([]byte, error) {
	if a.t == nil {
		t, err := openTree(a.s.root)
		if err != nil {
			return nil, err
		}
		a.t = t
	}
	return a.t.readFile(n.Rel, max)
}

func (a *analysis) head(n *node) ([]byte, error) {
	if a.t == nil {
		t, err := openTree(a.s.root)
		if err != nil {
			return nil, err
		}
		a.t = t
	}
	return a.t.readHead(n.Rel, 64<<10)
}

// maxEnvelope bounds what is read of an envelope file (qmailq's cap).
const maxEnvelope = qmailq.MaxEnvelopeSize

// severityOf is a finding's severity from its kind: what qmail does with
// the state decides whether mail is at risk.
func severityOf(f *finding) string {
	if f.act == actWait {
		return SeverityNote
	}
	switch f.Kind {
	case KindPidFile, KindChannelAllDone:
		return SeverityNote
	case KindWrongSize, KindTodoSubdir, KindStray, KindStalePid, KindSplitUnknown, KindDuplicatePart, KindBounceOrphan, KindStaleBounce:
		return SeverityFault
	case KindMissing:
		if f.Path == "lock/trigger" {
			// qmail-send still scans todo/ every 25 minutes without it.
			return SeverityFault
		}
	}
	return SeverityRisk
}

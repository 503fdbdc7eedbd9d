package quarantine

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

type qmailCopy struct {
	tmp, root, qdir string
	queueFS, dirFS  *safefs.FS
}

func (c *qmailCopy) open(t *testing.T) *qmailq.Queue {
	t.Helper()
	q, err := qmailq.Open(c.root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// newQmailCopy extracts the qmail fixture and makes its names valid: the
// extracted files have new inodes, so every name (the generating machine's
// inode) is stale. All messages are quarantined into a scratch directory
// and restored, which names each after its mess inode; the test checks
// that this kept every message's envelope and every file's content.
func newQmailCopy(t *testing.T) *qmailCopy {
	t.Helper()
	tmp := extract(t, "qmail-incident")
	c := &qmailCopy{tmp: tmp, root: filepath.Join(tmp, testkit.QmailRoot), qdir: filepath.Join(tmp, "quarantine")}
	for _, d := range []string{c.qdir, filepath.Join(tmp, "normalize")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	c.queueFS = testkit.OpenFS(t, c.root)
	c.dirFS = testkit.OpenFS(t, c.qdir)
	unlock, err := qmailq.LockSend(c.root)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	q := c.open(t)
	before := testkit.ReadAll(t, q)
	stale := 0
	for _, m := range before {
		for _, p := range m.Problems {
			if strings.HasPrefix(p, qmailq.KindIDNotInode) {
				stale++
			}
		}
	}
	if stale == 0 {
		t.Fatal("extracted qmail fixture has no stale names: the normalization is untested")
	}
	contents := multiset(t, c.root)
	norm := testkit.OpenFS(t, filepath.Join(tmp, "normalize"))
	disk := &Disk{Queue: c.queueFS, Dir: norm}
	var plans []*Plan
	for _, m := range sorted(before) {
		p, err := PlanQuarantine(q, m, norm, c.queueFS, Options{})
		if err != nil {
			t.Fatalf("normalize: quarantine %s: %v", m.ID, err)
		}
		plans = append(plans, p)
	}
	for i, err := range ExecuteBatch(plans, disk, nil) {
		if err != nil {
			t.Fatalf("normalize: quarantine %s: %v", plans[i].Entry.ID, err)
		}
	}
	var restores []*Plan
	for _, p := range plans {
		r, err := PlanRestore(p.Entry, norm, c.queueFS, RestoreOptions{Layout: q.Layout()})
		if err != nil {
			t.Fatalf("normalize: restore %s: %v", p.Entry.Key, err)
		}
		restores = append(restores, r)
	}
	for i, err := range ExecuteBatch(restores, disk, nil) {
		if err != nil {
			t.Fatalf("normalize: restore %s: %v", restores[i].Entry.Key, err)
		}
	}
	for _, e := range readManifest(t, filepath.Join(tmp, "normalize")) {
		if e.State != StateRestored {
			t.Fatalf("normalize: %s is %s", e.Key, e.State)
		}
	}
	after := testkit.ReadAll(t, c.open(t))
	if len(after) != len(before) {
		t.Fatalf("normalize: %d messages, had %d", len(after), len(before))
	}
	for _, m := range after {
		for _, p := range m.Problems {
			if strings.HasPrefix(p, qmailq.KindIDNotInode) {
				t.Errorf("normalize: %s still misnamed: %s", m.ID, p)
			}
		}
	}
	// Same contents per part kind (names changed, bytes did not).
	if got := multiset(t, c.root); strings.Join(got, "\n") != strings.Join(contents, "\n") {
		t.Fatal("normalize changed file contents")
	}
	// Same envelopes: match by the (unchanged) envelope text.
	var eb, ea []string
	for _, m := range before {
		eb = append(eb, envelopeNoName(m))
	}
	for _, m := range after {
		ea = append(ea, envelopeNoName(m))
	}
	sort.Strings(eb)
	sort.Strings(ea)
	if strings.Join(eb, "\n") != strings.Join(ea, "\n") {
		t.Fatal("normalize changed envelopes")
	}
	return c
}

// multiset lists "dir:sha" of every regular file in the message
// directories, sorted.
func multiset(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for p, s := range testkit.Snapshot(t, root) {
		top, _, _ := strings.Cut(p, "/")
		switch top {
		case "mess", "info", "local", "remote", "todo", "intd", "bounce":
			if s.Mode.IsRegular() {
				out = append(out, top+":"+string(s.Sum[:]))
			}
		}
	}
	sort.Strings(out)
	return out
}

func envelopeNoName(m *queue.Message) string {
	var b strings.Builder
	b.WriteString(m.Queue + "|" + m.Sender + "|" + m.SASLUser + "|" + m.ClientAddr + "|")
	for _, r := range m.Recipients {
		b.WriteString(r.Address + "/" + r.Channel)
		if r.Done {
			b.WriteString("/done")
		}
		b.WriteString(";")
	}
	for _, p := range m.Problems {
		if !strings.HasPrefix(p, qmailq.KindIDNotInode) {
			b.WriteString(p + ";")
		}
	}
	return b.String()
}

func sorted(msgs map[string]*queue.Message) []*queue.Message {
	var out []*queue.Message
	for _, m := range msgs {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// qmailSelect: the compromised account's mail and every todo message.
func qmailSelect(msgs map[string]*queue.Message) []*queue.Message {
	var sel []*queue.Message
	for _, m := range sorted(msgs) {
		if m.SASLUser == hello || m.Queue == queue.QmailTodo {
			sel = append(sel, m)
		}
	}
	return sel
}

func TestQmailRoundTrip(t *testing.T) {
	t.Parallel()
	c := newQmailCopy(t)
	lockSend(t, c.root)
	q := c.open(t)
	orig := testkit.Snapshot(t, c.root)
	msgs := testkit.ReadAll(t, q)
	sel := qmailSelect(msgs)
	var todo, hellos, bounces int
	for _, m := range sel {
		if m.Queue == queue.QmailTodo {
			todo++
		}
		if m.SASLUser == hello {
			hellos++
		}
	}
	if todo == 0 || hellos == 0 {
		t.Fatalf("selection has %d todo and %d %s messages", todo, hellos, hello)
	}
	moved := map[string]bool{}
	for _, m := range sel {
		e, err := Quarantine(q, m, c.dirFS, c.queueFS, Options{})
		if err != nil {
			t.Fatalf("quarantine %s: %v", m.ID, err)
		}
		for _, p := range e.Parts {
			moved[p.QueuePath] = true
			if p.Name == "bounce" {
				bounces++
			}
		}
	}
	if bounces == 0 {
		t.Error("no selected message had a bounce file: that part is untested")
	}
	after := testkit.ReadAll(t, c.open(t))
	if len(after) != len(msgs)-len(sel) {
		t.Errorf("%d messages left, want %d", len(after), len(msgs)-len(sel))
	}
	for _, m := range sel {
		if _, ok := after[m.ID]; ok {
			t.Errorf("%s still in the queue", m.ID)
		}
	}
	for id, m := range after {
		if envelopeKey(m) != envelopeKey(msgs[id]) {
			t.Errorf("%s changed:\n%s\n%s", id, envelopeKey(msgs[id]), envelopeKey(m))
		}
	}
	if d := diffSnapshots(orig, testkit.Snapshot(t, c.root), func(p string) bool { return moved[p] }); len(d) > 0 {
		t.Errorf("quarantine changed other files:\n%s", strings.Join(d, "\n"))
	}

	entries := readManifest(t, c.qdir)
	if len(entries) != len(sel) {
		t.Fatalf("manifest: %d entries, want %d", len(entries), len(sel))
	}
	for _, e := range entries {
		id, err := Restore(e, c.dirFS, c.queueFS, RestoreOptions{Layout: q.Layout()})
		if err != nil {
			t.Fatalf("restore %s: %v", e.Key, err)
		}
		if id != e.ID {
			t.Errorf("restore %s: new id %s (the name was already the inode)", e.ID, id)
		}
	}
	if d := diffSnapshots(orig, testkit.Snapshot(t, c.root), nil); len(d) > 0 {
		t.Errorf("restore did not give back the queue:\n%s", strings.Join(d, "\n"))
	}
	back := testkit.ReadAll(t, c.open(t))
	if len(back) != len(msgs) {
		t.Errorf("%d messages after restore, had %d", len(back), len(msgs))
	}
	for id, m := range msgs {
		if b, ok := back[id]; !ok || envelopeKey(b) != envelopeKey(m) {
			t.Errorf("%s not restored as it was", id)
		}
	}
}

// TestQmailRestoreInto restores quarantined messages into another, empty
// qmail queue on the same file system (the seed 000 move: the flooded
// queue was swapped out for an empty one): each message is named after
// its mess inode there, with the same parts, owners, modes and bytes.
func TestQmailRestoreInto(t *testing.T) {
	t.Parallel()
	c := newQmailCopy(t)
	live := filepath.Join(c.tmp, "live")
	if err := os.Mkdir(live, 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.ExtractInto(t, testkit.Fixture(t, "qmail-incident", "queue.tar.gz"), live)
	liveRoot := filepath.Join(live, testkit.QmailRoot)
	for p, s := range testkit.Snapshot(t, liveRoot) {
		top, _, _ := strings.Cut(p, "/")
		switch top {
		case "mess", "info", "local", "remote", "todo", "intd", "bounce":
			if s.Mode.IsRegular() {
				if err := os.Remove(filepath.Join(liveRoot, p)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	lockSend(t, c.root)
	lockSend(t, liveRoot)
	lay, err := qmailq.DetectLayout(liveRoot)
	if err != nil {
		t.Fatal(err)
	}
	liveFS := testkit.OpenFS(t, liveRoot)
	q := c.open(t)
	msgs := testkit.ReadAll(t, q)
	sel := qmailSelect(msgs)
	orig := testkit.Snapshot(t, c.root)
	want := map[string]string{} // id -> envelope
	for _, m := range sel {
		e, err := Quarantine(q, m, c.dirFS, c.queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		id, err := Restore(e, c.dirFS, liveFS, RestoreOptions{Into: true, Layout: lay})
		if err != nil {
			t.Fatalf("restore into %s: %v", m.ID, err)
		}
		want[id] = envelopeNoName(m)
		for _, pt := range e.Parts {
			p := filepath.Join(liveRoot, strings.Replace(pt.QueuePath, "/"+m.ID, "/"+id, 1))
			fi, err := os.Lstat(p)
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			o := orig[pt.QueuePath]
			if st.Ino != o.Ino || fi.Mode() != o.Mode || st.Uid != o.UID || st.Gid != o.GID {
				t.Errorf("%s: not the quarantined file, or owner/mode changed", p)
			}
		}
	}
	lq, err := qmailq.Open(liveRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer lq.Close()
	got := testkit.ReadAll(t, lq)
	if len(got) != len(want) {
		t.Errorf("live queue has %d messages, want %d", len(got), len(want))
	}
	for id, m := range got {
		if strconv.FormatUint(m.Inode, 10) != id {
			t.Errorf("%s: name is not the mess inode %d", id, m.Inode)
		}
		if want[id] != envelopeNoName(m) {
			t.Errorf("%s: envelope\n%s\nwant\n%s", id, envelopeNoName(m), want[id])
		}
	}
}

// faultRig is one extracted queue on which a message is quarantined and
// restored with a fault injected at every step.
type faultRig struct {
	root, qdir     string
	queueFS, dirFS *safefs.FS
	open           func(t *testing.T) queue.Source
	ropt           RestoreOptions
	check          func(t *testing.T, label string) // the queue is consistent
}

// runFaults fails step k = 1, 2, ... of the quarantine of m, then of its
// restore, until a run completes. After each fault: the queue is
// consistent (check), every part is in the queue or in the quarantine
// directory, and a Restore of whatever the manifest says resumes and gives
// back the queue file for file.
func (r *faultRig) runFaults(t *testing.T, id string) {
	t.Helper()
	orig := testkit.Snapshot(t, r.root)
	read := func() (queue.Source, *queue.Message) {
		src := r.open(t)
		msgs := testkit.ReadAll(t, src)
		m, ok := msgs[id]
		if !ok {
			t.Fatalf("%s is not in the queue", id)
		}
		return src, m
	}
	recover := func(label string) {
		t.Helper()
		entries := readManifest(t, r.qdir)
		partsAccounted(t, r.root, r.qdir, entries, func(e Entry, p Part) []string { return []string{p.QueuePath} })
		for _, e := range entries {
			if e.State == StateRestored {
				continue
			}
			if _, err := Restore(e, r.dirFS, r.queueFS, r.ropt); err != nil {
				t.Fatalf("%s: resuming restore of %s (%s): %v", label, e.Key, e.State, err)
			}
		}
		if d := diffSnapshots(orig, testkit.Snapshot(t, r.root), nil); len(d) > 0 {
			t.Fatalf("%s: queue not given back:\n%s", label, strings.Join(d, "\n"))
		}
	}

	// everyFault executes a fresh plan with a fault at step 1, 2, ...
	// until one completes; every cut must leave a state recover gives back
	// whole. It returns the number of steps.
	everyFault := func(what string, plan func() *Plan) int {
		for k := 1; ; k++ {
			p := plan()
			label := fmt.Sprintf("%s %s fault at %d/%d", id, what, k, len(p.Steps))
			fm := &faultyMover{Mover: &Disk{Queue: r.queueFS, Dir: r.dirFS}, failAt: k}
			_, err := p.Execute(fm)
			if err == nil {
				if k <= len(p.Steps) {
					t.Errorf("%s: no error", label)
				}
				recover(label)
				return k - 1
			}
			if !errors.Is(err, safefs.ErrInjected) {
				t.Fatalf("%s: %v", label, err)
			}
			r.check(t, label)
			recover(label)
		}
	}
	qsteps := everyFault("quarantine", func() *Plan {
		src, m := read()
		p, err := PlanQuarantine(src, m, r.dirFS, r.queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
	if qsteps < 3 {
		t.Errorf("%s: only %d quarantine steps", id, qsteps)
	}
	everyFault("restore", func() *Plan {
		src, m := read()
		e, err := Quarantine(src, m, r.dirFS, r.queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := PlanRestore(e, r.dirFS, r.queueFS, r.ropt)
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
}

func TestPostfixFaults(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	msgs := testkit.ReadAll(t, c.spool(t))
	// A deferred message with a defer log, an active one with a bounce
	// log, and a held one.
	var picks []string
	pick := func(ok func(m *queue.Message) bool) {
		for _, m := range sorted(msgs) {
			if ok(m) {
				picks = append(picks, m.ID)
				return
			}
		}
		t.Fatal("no message for the fault matrix")
	}
	has := func(dir, id string) bool {
		_, err := c.queueFS.Lstat(c.spool(t).LogPath(dir, id))
		return err == nil
	}
	pick(func(m *queue.Message) bool { return m.Queue == queue.Deferred && has("defer", m.ID) })
	pick(func(m *queue.Message) bool { return m.Queue == queue.Active && has("bounce", m.ID) })
	pick(func(m *queue.Message) bool { return m.Queue == queue.Hold })
	rig := &faultRig{
		root: c.root, qdir: c.qdir, queueFS: c.queueFS, dirFS: c.dirFS,
		open: func(t *testing.T) queue.Source { return c.spool(t) },
	}
	checked := 0
	baseOrphans := orphanLogs(t, c.root, msgs)
	rig.check = func(t *testing.T, label string) {
		t.Helper()
		now := testkit.ReadAll(t, c.spool(t)) // every message still reads
		// No log outlives its message (a stale bounce log would be
		// attached to a later message reusing the short ID).
		for p := range orphanLogs(t, c.root, now) {
			if !baseOrphans[p] {
				t.Errorf("%s: orphan log %s", label, p)
			}
		}
		// The real postsuper -s finds nothing to fix (it is slow: once
		// per step of the first message only).
		if checked < 40 && strings.HasPrefix(label, picks[0]) {
			checked++
			postsuperCheck(t, c.root)
		}
	}
	for _, id := range picks {
		rig.runFaults(t, id)
	}
	if checked == 0 {
		t.Error("postsuper never ran")
	}
}

// qmailTolerated are the problems a fault may leave: states qmail heals
// itself (doc §3.6) or that are invisible to qmail-send while the mess,
// whose inode is the id, is still there (so no new message can inherit a
// bounce or channel file), until Restore resumes.
var qmailTolerated = []string{
	qmailq.KindMessWithoutInfo, qmailq.KindIntdWithoutTodo, qmailq.KindTodoWithoutIntd,
	qmailq.KindTodoAndInfo, qmailq.KindBounceWithoutInfo, qmailq.KindChannelWithoutInfo,
}

func TestQmailFaults(t *testing.T) {
	t.Parallel()
	c := newQmailCopy(t)
	lockSend(t, c.root)
	open := func(t *testing.T) queue.Source { return c.open(t) }
	base := testkit.ReadAll(t, c.open(t))
	problems := func(msgs map[string]*queue.Message) map[string]bool {
		out := map[string]bool{}
		for id, m := range msgs {
			for _, p := range m.Problems {
				out[id+" "+p] = true
			}
		}
		return out
	}
	baseProblems := problems(base)
	var picks []string
	for _, m := range sorted(base) {
		if m.Queue == queue.QmailQueue && m.SASLUser == hello {
			if _, err := c.queueFS.Lstat("bounce/" + m.ID); err == nil {
				picks = append(picks, m.ID)
				break
			}
		}
	}
	for _, m := range sorted(base) {
		if m.Queue == queue.QmailTodo {
			picks = append(picks, m.ID)
			break
		}
	}
	if len(picks) != 2 {
		t.Fatalf("fault matrix messages: %v", picks)
	}
	rig := &faultRig{
		root: c.root, qdir: c.qdir, queueFS: c.queueFS, dirFS: c.dirFS, open: open,
		ropt: RestoreOptions{Layout: c.open(t).Layout()},
	}
	rig.check = func(t *testing.T, label string) {
		t.Helper()
		for p := range problems(testkit.ReadAll(t, c.open(t))) {
			if baseProblems[p] {
				continue
			}
			_, rest, _ := strings.Cut(p, " ")
			ok := false
			for _, k := range qmailTolerated {
				if strings.HasPrefix(rest, k+":") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: new problem %s", label, p)
			}
		}
	}
	for _, id := range picks {
		rig.runFaults(t, id)
	}
}

// orphanLogs lists the defer/bounce/trace logs whose message is not in
// msgs.
func orphanLogs(t *testing.T, root string, msgs map[string]*queue.Message) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for p, s := range testkit.Snapshot(t, root) {
		top, _, _ := strings.Cut(p, "/")
		if (top == "defer" || top == "bounce" || top == "trace") && s.Mode.IsRegular() {
			if _, ok := msgs[path.Base(p)]; !ok {
				out[p] = true
			}
		}
	}
	return out
}

// TestBatchFaults quarantines and restores a batch of Postfix messages
// with ExecuteBatch, failing every step in turn: the queue stays readable
// with no orphan log, every part is in the queue or in quarantine, and
// resuming with Restore gives back the queue file for file.
func TestBatchFaults(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	orig := testkit.Snapshot(t, c.root)
	baseMsgs := testkit.ReadAll(t, c.spool(t))
	baseOrphans := orphanLogs(t, c.root, baseMsgs)
	var ids []string
	for _, m := range sorted(baseMsgs) {
		if m.SASLUser == hello && len(ids) < 4 {
			ids = append(ids, m.ID)
		}
	}
	disk := &Disk{Queue: c.queueFS, Dir: c.dirFS}
	recover := func(label string) {
		t.Helper()
		entries := readManifest(t, c.qdir)
		partsAccounted(t, c.root, c.qdir, entries, func(e Entry, p Part) []string { return []string{p.QueuePath} })
		for _, e := range entries {
			if e.State != StateRestored {
				if _, err := Restore(e, c.dirFS, c.queueFS, RestoreOptions{}); err != nil {
					t.Fatalf("%s: resume %s: %v", label, e.Key, err)
				}
			}
		}
		if d := diffSnapshots(orig, testkit.Snapshot(t, c.root), nil); len(d) > 0 {
			t.Fatalf("%s: queue not given back:\n%s", label, strings.Join(d, "\n"))
		}
	}
	check := func(label string) {
		t.Helper()
		now := testkit.ReadAll(t, c.spool(t))
		for p := range orphanLogs(t, c.root, now) {
			if !baseOrphans[p] {
				t.Errorf("%s: orphan log %s", label, p)
			}
		}
	}
	plan := func() []*Plan {
		sp := c.spool(t)
		msgs := testkit.ReadAll(t, sp)
		var plans []*Plan
		for _, id := range ids {
			p, err := PlanQuarantine(sp, msgs[id], c.dirFS, c.queueFS, Options{})
			if err != nil {
				t.Fatal(err)
			}
			plans = append(plans, p)
		}
		return plans
	}
	for phase := 0; phase < 2; phase++ {
		for k := 1; ; k++ {
			plans := plan()
			if phase == 1 {
				for i, err := range ExecuteBatch(plans, disk, nil) {
					if err != nil {
						t.Fatal(i, err)
					}
				}
				var rs []*Plan
				for _, p := range plans {
					r, err := PlanRestore(p.Entry, c.dirFS, c.queueFS, RestoreOptions{})
					if err != nil {
						t.Fatal(err)
					}
					rs = append(rs, r)
				}
				plans = rs
			}
			label := fmt.Sprintf("phase %d fault at %d", phase, k)
			fm := &faultyMover{Mover: disk, failAt: k}
			failed := 0
			for _, err := range ExecuteBatch(plans, fm, nil) {
				if err != nil {
					if !errors.Is(err, safefs.ErrInjected) {
						t.Fatalf("%s: %v", label, err)
					}
					failed++
				}
			}
			if failed == 0 {
				if k < 5 {
					t.Errorf("%s: batch completed after only %d steps", label, k-1)
				}
				recover(label)
				break
			}
			check(label)
			recover(label)
		}
	}
}

// An append after a line cut short (a crash, a full disk) drops the cut
// line instead of joining it: both entries read back, without a warning.
func TestAppendManifestDropsCutLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "manifest.jsonl")
	if err := appendManifest(p, Entry{Key: "a", ID: "A"}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"key":"cut","id`)
	f.Close()
	if err := appendManifest(p, Entry{Key: "b", ID: "B"}); err != nil {
		t.Fatal(err)
	}
	es, err := ReadManifest(p)
	if err != nil || len(es) != 2 || es[0].ID != "A" || es[1].ID != "B" {
		t.Errorf("ReadManifest = %+v, %v", es, err)
	}
}

// lockSend takes qmail-send's lock/sendmutex of root, as a surgeon must,
// until the test ends.
func lockSend(t *testing.T, root string) {
	t.Helper()
	unlock, err := qmailq.LockSend(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
}

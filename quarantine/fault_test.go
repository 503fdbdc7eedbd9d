package quarantine

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

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

	qsteps := 0
	for k := 1; ; k++ {
		src, m := read()
		p, err := PlanQuarantine(src, m, r.dirFS, r.queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		label := fmt.Sprintf("%s quarantine fault at %d/%d", id, k, len(p.Steps))
		fm := &faultyMover{Mover: &Disk{Queue: r.queueFS, Dir: r.dirFS}, failAt: k}
		_, err = p.Execute(fm)
		if err == nil {
			if k <= len(p.Steps) {
				t.Errorf("%s: no error", label)
			}
			qsteps = k - 1
			recover(label)
			break
		}
		if !errors.Is(err, safefs.ErrInjected) {
			t.Fatalf("%s: %v", label, err)
		}
		r.check(t, label)
		recover(label)
	}
	if qsteps < 3 {
		t.Errorf("%s: only %d quarantine steps", id, qsteps)
	}

	for k := 1; ; k++ {
		src, m := read()
		e, err := Quarantine(src, m, r.dirFS, r.queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := PlanRestore(e, r.dirFS, r.queueFS, r.ropt)
		if err != nil {
			t.Fatal(err)
		}
		label := fmt.Sprintf("%s restore fault at %d/%d", id, k, len(p.Steps))
		fm := &faultyMover{Mover: &Disk{Queue: r.queueFS, Dir: r.dirFS}, failAt: k}
		_, err = p.Execute(fm)
		if err == nil {
			if k <= len(p.Steps) {
				t.Errorf("%s: no error", label)
			}
			recover(label)
			break
		}
		if !errors.Is(err, safefs.ErrInjected) {
			t.Fatalf("%s: %v", label, err)
		}
		r.check(t, label)
		recover(label)
	}
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
	unlock, err := qmailq.LockSend(c.root)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
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

package qmailq

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
)

// The mutation tests act on private extractions of the real fixtures
// (testdata/queues/qmail-incident: queue.tar.gz and broken.tar.gz).

// messageFiles lists the paths of snapshot s that are files of message id.
func messageFiles(s testkit.Tree, id string) []string {
	var out []string
	for p, e := range s {
		if e.Mode.IsDir() || filepath.Base(p) != id {
			continue
		}
		switch strings.SplitN(p, "/", 2)[0] {
		case "mess", "info", "local", "remote", "todo", "intd", "bounce":
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func qDigest(m *queue.Message) string {
	errs := ""
	if m.Err != nil {
		errs = m.Err.Error()
	}
	return fmt.Sprintf("%s %s %s ino=%d mode=%v mtime=%d size=%d arrival=%d retry=%d sender=%q rcpt=%+v bouncing=%v problems=%q err=%q sasl=%q",
		m.Queue, m.ID, m.Path, m.Inode, m.Mode, m.ModTime.Unix(), m.Size, m.Arrival.Unix(), m.NextRetry.Unix(),
		m.Sender, m.Recipients, m.Bouncing, m.Problems, errs, m.SASLUser)
}

func qReadAll(t *testing.T, root string) (*Queue, map[string]*queue.Message) {
	t.Helper()
	q, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q, testkit.ReadAll(t, q)
}

// qPick returns up to n ids, ascending, whose set of parts is exactly want.
func qPick(s testkit.Tree, msgs map[string]*queue.Message, n int, want ...string) []string {
	sort.Strings(want)
	var ids []string
	for id := range msgs {
		var parts []string
		for _, p := range messageFiles(s, id) {
			parts = append(parts, strings.SplitN(p, "/", 2)[0])
		}
		sort.Strings(parts)
		if strings.Join(parts, ",") == strings.Join(want, ",") {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { a, _ := strconv.Atoi(ids[i]); b, _ := strconv.Atoi(ids[j]); return a < b })
	if len(ids) > n {
		ids = ids[:n]
	}
	return ids
}

// qUntouched checks that every entry of before not in gone is unchanged in
// after (name, type, owner, mode, inode, size, content, mtime; not
// directory times, as entries come and go) and that nothing appeared.
// atime moves whenever anything (the reader, a snapshot) reads a file; the
// actions' own atime changes are checked where they matter.
func qUntouched(t *testing.T, label string, before, after testkit.Tree, gone map[string]bool) {
	t.Helper()
	for p := range gone {
		if _, ok := after[p]; ok {
			t.Errorf("%s: %s should be gone", label, p)
		}
	}
	for _, d := range before.Diff(after, testkit.IgnoreDirTimes(), testkit.IgnorePaths(func(p string) bool { return gone[p] })) {
		t.Errorf("%s: %s", label, d)
	}
}

func qOthersRead(t *testing.T, label, root string, before map[string]*queue.Message, skip ...string) {
	t.Helper()
	_, after := qReadAll(t, root)
	for id, m := range before {
		if slices.Contains(skip, id) {
			continue
		}
		if m2, ok := after[id]; !ok || qDigest(m2) != qDigest(m) {
			t.Errorf("%s: message %s reads differently", label, id)
		}
	}
}

func TestDeleteClean(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	q, msgs := qReadAll(t, root)
	before := testkit.Snapshot(t, root)
	var ids []string
	for _, parts := range [][]string{
		{"mess", "info", "local", "remote"},
		{"mess", "info", "remote", "bounce"},
		{"mess", "info", "remote"},
		{"mess", "info", "local"},
		{"mess", "todo", "intd"},
	} {
		got := qPick(before, msgs, 2, parts...)
		if len(got) == 0 {
			t.Fatalf("fixture has no message with parts %v", parts)
		}
		ids = append(ids, got...)
	}
	fsys := testkit.OpenFS(t, root)
	gone := map[string]bool{}
	for _, id := range ids {
		for _, p := range messageFiles(before, id) {
			gone[p] = true
		}
		if err := q.Delete(fsys, msgs[id], ActOptions{}); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	qUntouched(t, "delete", before, testkit.Snapshot(t, root), gone)
	qOthersRead(t, "delete", root, msgs, ids...)
	_, after := qReadAll(t, root)
	for _, id := range ids {
		if _, ok := after[id]; ok {
			t.Errorf("message %s still listed", id)
		}
	}
}

// brokenIDs are the damaged messages of broken.tar.gz (broken-defects.json).
var brokenIDs = map[string]string{
	"10004805": "A01 mess only (crash)", "10004835": "A02 zero-length mess orphan",
	"10003718": "A04 wrong subdir", "10004533": "A04 wrong subdir", "10006318": "A04 wrong subdir",
	"10003719": "A05 split 29", "10006092": "A05 split 29",
	"10004796": "A06 info without mess", "10006447": "A06 info without mess",
	"10006490": "A07 mess without info", "10004436": "A08 todo without intd", "10006773": "A08 todo without intd",
	"10004643": "A09 zero-length mess",
}

func TestDeleteBroken(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	q, msgs := qReadAll(t, root)
	before := testkit.Snapshot(t, root)
	fsys := testkit.OpenFS(t, root)
	gone := map[string]bool{}
	var ids []string
	for id, what := range brokenIDs {
		m, ok := msgs[id]
		if !ok {
			t.Fatalf("%s (%s) not listed by the reader", id, what)
		}
		files := messageFiles(before, id)
		if len(files) == 0 {
			t.Fatalf("%s (%s): no files", id, what)
		}
		// Extraction stamped the files with the kernel's time: judge
		// their age by the same clock (the clock-ahead run moves clock.Now).
		err := q.Delete(fsys, m, ActOptions{Now: time.Now()})
		orphan := m.Queue == queue.QmailTodo && !slices.ContainsFunc(files, func(s string) bool { return strings.HasPrefix(s, "todo/") }) && slices.ContainsFunc(files, func(s string) bool { return strings.HasPrefix(s, "mess/") })
		if orphan {
			// Extraction just set its ctime: it looks like a message
			// qmail-queue is writing.
			if !errors.Is(err, ErrInProgress) {
				t.Errorf("%s (%s): %v, want ErrInProgress", id, what, err)
			}
			err = q.Delete(fsys, m, ActOptions{Now: time.Now(), AllowYoungOrphan: true})
		}
		if err != nil {
			t.Errorf("%s (%s): %v", id, what, err)
			continue
		}
		ids = append(ids, id)
		for _, p := range files {
			gone[p] = true
		}
	}
	qUntouched(t, "delete broken", before, testkit.Snapshot(t, root), gone)
	qOthersRead(t, "delete broken", root, msgs, ids...)
}

func TestDeleteOldOrphanAllowed(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	q, msgs := qReadAll(t, root)
	fsys := testkit.OpenFS(t, root)
	m := msgs["10004805"]
	// Just extracted: young by the kernel's clock, which stamped it.
	if err := q.Delete(fsys, m, ActOptions{Now: time.Now()}); !errors.Is(err, ErrInProgress) {
		t.Fatalf("young orphan: %v", err)
	}
	if err := q.Delete(fsys, m, ActOptions{Now: time.Now().Add(OssifiedAge + time.Hour)}); err != nil {
		t.Fatalf("orphan older than 36 h: %v", err)
	}
}

// tolerated checks that the files left of a message form a state qmail
// handles by itself (qmail-queue.md §3.6): no bounce without info, no info
// without mess, no todo without mess, no channel file without info or todo.
func tolerated(files []string) error {
	has := map[string]bool{}
	for _, p := range files {
		has[strings.SplitN(p, "/", 2)[0]] = true
	}
	switch {
	case has["bounce"] && !has["info"] && !has["todo"]:
		return errors.New("bounce without info")
	case has["info"] && !has["mess"]:
		return errors.New("info without mess")
	case has["todo"] && !has["mess"]:
		return errors.New("todo without mess")
	case (has["local"] || has["remote"]) && !has["info"] && !has["todo"]:
		return errors.New("channel file without info")
	}
	return nil
}

func TestDeleteFaultCut(t *testing.T) {
	cases := []struct {
		tarball string
		parts   []string
		id      string
	}{
		{"queue.tar.gz", []string{"mess", "info", "remote", "bounce"}, ""},
		{"queue.tar.gz", []string{"mess", "info", "local", "remote"}, ""},
		{"queue.tar.gz", []string{"mess", "todo", "intd"}, ""},
		{"broken.tar.gz", nil, "10004436"}, // A08: todo next to info/remote
		{"broken.tar.gz", nil, "10003719"}, // A05: parts in a subdirectory beyond the split
	}
	for _, c := range cases {
		name := c.id
		if name == "" {
			name = strings.Join(c.parts, "+")
		}
		t.Run(name, func(t *testing.T) {
			ref := extract(t, c.tarball)
			q, msgs := qReadAll(t, ref)
			refBefore := testkit.Snapshot(t, ref)
			id := c.id
			if id == "" {
				id = qPick(refBefore, msgs, 1, c.parts...)[0]
			}
			counter := safefs.NewFaulty(testkit.OpenFS(t, ref), 0)
			if err := q.Delete(counter, msgs[id], ActOptions{AllowYoungOrphan: true}); err != nil {
				t.Fatal(err)
			}
			refOps := counter.Done()
			refAfter := testkit.Snapshot(t, ref)
			if len(refOps) < 3 {
				t.Fatalf("only %d steps", len(refOps))
			}
			for k := 1; k <= len(refOps); k++ {
				label := fmt.Sprintf("%s cut at %d/%d (%s)", id, k, len(refOps), refOps[k-1])
				root := extract(t, c.tarball)
				q, msgs := qReadAll(t, root)
				before := testkit.Snapshot(t, root)
				fsys := testkit.OpenFS(t, root)
				err := q.Delete(safefs.NewFaulty(fsys, k), msgs[id], ActOptions{AllowYoungOrphan: true})
				if !errors.Is(err, safefs.ErrInjected) {
					t.Fatalf("%s: %v", label, err)
				}
				cut := testkit.Snapshot(t, root)
				// Exactly the first k-1 steps happened.
				gone := map[string]bool{}
				for _, o := range refOps[:k-1] {
					if _, ok := before[o.Path]; ok {
						gone[o.Path] = true
					}
				}
				qUntouched(t, label, before, cut, gone)
				left := messageFiles(cut, id)
				if err := tolerated(left); err != nil {
					t.Errorf("%s: left %v: %v", label, left, err)
				}
				// Every other message reads as before; then resume:
				// read what is left and delete again.
				q2, msgs2 := qReadAll(t, root)
				for oid, om := range msgs {
					if m2, ok := msgs2[oid]; oid != id && (!ok || qDigest(m2) != qDigest(om)) {
						t.Errorf("%s: message %s reads differently", label, oid)
					}
				}
				m2, ok := msgs2[id]
				if !ok {
					t.Fatalf("%s: the rest of the message is not listed", label)
				}
				if err := q2.Delete(fsys, m2, ActOptions{AllowYoungOrphan: true}); err != nil {
					t.Fatalf("%s: resume: %v", label, err)
				}
				final := testkit.Snapshot(t, root)
				if got := messageFiles(final, id); len(got) != 0 {
					t.Errorf("%s: after resuming, left %v", label, got)
				}
				// Same result as the uncut run (inodes differ between
				// extractions: compare everything else).
				for _, d := range refAfter.Diff(final, testkit.IgnoreDirTimes(), testkit.IgnoreInodes()) {
					t.Errorf("%s: differs from the uncut run: %s", label, d)
				}
			}
			_ = refBefore
		})
	}
}

func TestDeleteRefusesChanged(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	q, msgs := qReadAll(t, root)
	s := testkit.Snapshot(t, root)
	fsys := testkit.OpenFS(t, root)
	id := qPick(s, msgs, 1, "mess", "info", "remote", "bounce")[0]
	m := msgs[id]
	// A different file under the same name (restored, or a new message
	// after the old one was removed).
	abs := filepath.Join(root, m.Path)
	b, _ := os.ReadFile(abs)
	if err := os.WriteFile(abs+".x", b, 0644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(abs+".x", abs); err != nil {
		t.Fatal(err)
	}
	before := testkit.Snapshot(t, root)
	for name, do := range map[string]func(*Queue, queue.Mutator, *queue.Message, ActOptions) error{
		"delete": (*Queue).Delete, "requeue": (*Queue).Requeue, "expire": (*Queue).Expire,
	} {
		if err := do(q, fsys, m, ActOptions{}); !errors.Is(err, ErrChanged) {
			t.Errorf("%s of a replaced mess: %v, want ErrChanged", name, err)
		}
	}
	// Nothing changed: in particular bounce/ID, which comes first, is
	// still there.
	qUntouched(t, "refused", before, testkit.Snapshot(t, root), nil)

	// A todo message that was preprocessed meanwhile (state changed).
	tid := qPick(s, msgs, 1, "mess", "todo", "intd")[0]
	tm := *msgs[tid]
	tm.Queue = queue.QmailQueue
	if err := q.Delete(fsys, &tm, ActOptions{}); !errors.Is(err, ErrChanged) {
		t.Errorf("state changed: %v", err)
	}
	// Vanished mess.
	os.Remove(abs)
	if err := q.Delete(fsys, m, ActOptions{}); !errors.Is(err, ErrChanged) {
		t.Errorf("vanished mess: %v", err)
	}
}

func TestDeleteSymlinkedMess(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	s := testkit.Snapshot(t, root)
	_, msgs := qReadAll(t, root)
	id := qPick(s, msgs, 1, "mess", "info", "remote")[0]
	outside := filepath.Join(filepath.Dir(root), "outside")
	if err := os.WriteFile(outside, []byte("not mail\n"), 0644); err != nil {
		t.Fatal(err)
	}
	mess := filepath.Join(root, msgs[id].Path)
	os.Remove(mess)
	if err := os.Symlink(outside, mess); err != nil {
		t.Fatal(err)
	}
	q, msgs := qReadAll(t, root)
	before := testkit.Snapshot(t, root)
	if err := q.Delete(testkit.OpenFS(t, root), msgs[id], ActOptions{}); err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	for _, p := range messageFiles(before, id) {
		gone[p] = true
	}
	qUntouched(t, "symlinked mess", before, testkit.Snapshot(t, root), gone)
	if b, err := os.ReadFile(outside); err != nil || string(b) != "not mail\n" {
		t.Fatalf("the link target changed: %q %v", b, err)
	}
}

func TestDeleteDryRun(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	q, msgs := qReadAll(t, root)
	s := testkit.Snapshot(t, root)
	dry := safefs.NewDryRun(testkit.OpenFS(t, root))
	id := qPick(s, msgs, 1, "mess", "info", "remote", "bounce")[0]
	tid := qPick(s, msgs, 1, "mess", "todo", "intd")[0]
	if err := q.Delete(dry, msgs[id], ActOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := q.Delete(dry, msgs[tid], ActOptions{}); err != nil {
		t.Fatal(err)
	}
	qUntouched(t, "dry run", s, testkit.Snapshot(t, root), nil)
	n, _ := strconv.ParseUint(id, 10, 64)
	tn, _ := strconv.ParseUint(tid, 10, 64)
	sub, tsub := strconv.FormatUint(n%23, 10), strconv.FormatUint(tn%23, 10)
	want := []string{
		"remove bounce/" + id,
		"remove remote/" + sub + "/" + id,
		"remove info/" + sub + "/" + id,
		"remove mess/" + sub + "/" + id,
		"remove todo/" + tid,
		"remove intd/" + tid,
		"remove bounce/" + tid, // always tried (ENOENT is fine)
		"remove mess/" + tsub + "/" + tid,
	}
	var got []string
	for _, o := range dry.Ops() {
		got = append(got, o.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRequeueExpire(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	q, msgs := qReadAll(t, root)
	before := testkit.Snapshot(t, root)
	fsys := testkit.OpenFS(t, root)
	id := qPick(before, msgs, 1, "mess", "info", "local", "remote")[0]
	m := msgs[id]
	now := time.Unix(1795400000, 0)

	if err := q.Requeue(fsys, m, ActOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	after := testkit.Snapshot(t, root)
	changed := map[string]bool{}
	for _, p := range messageFiles(before, id) {
		if strings.HasPrefix(p, "local/") || strings.HasPrefix(p, "remote/") {
			changed[p] = true
			e := after[p]
			if !e.Mtime.Equal(now) || !e.Atime.Equal(now) {
				t.Errorf("requeue: %s: mtime %v atime %v, want %v", p, e.Mtime, e.Atime, now)
			}
			b := before[p]
			e.Mtime, b.Mtime = time.Time{}, time.Time{}
			if !e.Equal(b) {
				t.Errorf("requeue: %s changed beyond its times", p)
			}
		}
	}
	if len(changed) != 2 {
		t.Fatalf("expected a local and a remote file, got %v", changed)
	}
	for p := range changed {
		before[p], after[p] = testkit.Entry{}, testkit.Entry{}
	}
	qUntouched(t, "requeue", before, after, nil)
	_, msgs2 := qReadAll(t, root)
	if got := msgs2[id].NextRetry; !got.Equal(now) {
		t.Errorf("reader's next retry %v, want %v", got, now)
	}

	// Expire with a queuelifetime in control/ next to the queue.
	if err := os.MkdirAll(filepath.Join(filepath.Dir(root), "control"), 0755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(root), "control", "queuelifetime"), []byte("86400\n"), 0644); err != nil {
		t.Fatal(err)
	}
	m2 := msgs2[id]
	before = testkit.Snapshot(t, root)
	info := q.Layout().InfoPath(mustID(t, id))
	var st1, st2 unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, info), &st1); err != nil {
		t.Fatal(err)
	}
	if err := q.Expire(fsys, m2, ActOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Join(root, info), &st2); err != nil {
		t.Fatal(err)
	}
	after = testkit.Snapshot(t, root)
	birth := now.Add(-86400*time.Second - time.Second)
	if mt := time.Unix(st2.Mtim.Unix()); !mt.Equal(birth) || st2.Atim != st1.Atim {
		t.Errorf("expire: info mtime %v atime %v, want mtime %v and atime unchanged (%v)", mt, st2.Atim, birth, st1.Atim)
	}
	before[info], after[info] = testkit.Entry{}, testkit.Entry{}
	qUntouched(t, "expire", before, after, nil)
	_, msgs3 := qReadAll(t, root)
	if got := msgs3[id].Arrival; !got.Equal(birth) {
		t.Errorf("reader's arrival %v, want %v", got, birth)
	}

	// Neither applies to a message not yet preprocessed.
	tid := qPick(before, msgs, 1, "mess", "todo", "intd")[0]
	if err := q.Requeue(fsys, msgs3[tid], ActOptions{}); !errors.Is(err, ErrWrongQueue) {
		t.Errorf("requeue of a todo message: %v", err)
	}
	if err := q.Expire(fsys, msgs3[tid], ActOptions{}); !errors.Is(err, ErrWrongQueue) {
		t.Errorf("expire of a todo message: %v", err)
	}
}

func mustID(t *testing.T, s string) uint64 {
	t.Helper()
	id, ok := ParseID(s)
	if !ok {
		t.Fatalf("bad id %q", s)
	}
	return id
}

func TestQueueLifetime(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "queue")
	os.Mkdir(root, 0755)
	if d, err := QueueLifetime(root); err != nil || d != DefaultQueueLifetime {
		t.Errorf("no control file: %v %v", d, err)
	}
	os.Mkdir(filepath.Join(base, "control"), 0755)
	for content, want := range map[string]time.Duration{
		"1209600\n":    1209600 * time.Second,
		"3600":         time.Hour,
		"7200 extra\n": 2 * time.Hour,
		"abc\n":        DefaultQueueLifetime,
		"":             DefaultQueueLifetime,
	} {
		os.WriteFile(filepath.Join(base, "control", "queuelifetime"), []byte(content), 0644)
		if d, err := QueueLifetime(root); err != nil || d != want {
			t.Errorf("%q: %v %v, want %v", content, d, err, want)
		}
	}
}

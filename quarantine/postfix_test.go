package quarantine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

const hello = "hello@example.com"

type postfixCopy struct {
	tmp, root, qdir string
	queueFS, dirFS  *safefs.FS
}

func newPostfixCopy(t *testing.T) *postfixCopy {
	t.Helper()
	tmp := extract(t, "postfix-incident")
	c := &postfixCopy{tmp: tmp, root: filepath.Join(tmp, testkit.PostfixRoot), qdir: filepath.Join(tmp, "quarantine")}
	if err := os.Mkdir(c.qdir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The extracted files have new inodes, so their names (which encode
	// the generating machine's inodes) are stale: let the real postsuper
	// -s rename them first, as a postfix start would, to get a valid queue.
	postsuper(t, c.root, false)
	c.queueFS = testkit.OpenFS(t, c.root)
	c.dirFS = testkit.OpenFS(t, c.qdir)
	return c
}

func (c *postfixCopy) spool(t *testing.T) *postfixq.Spool {
	t.Helper()
	s, err := postfixq.Open(c.root, postfixq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// postsuperCheck runs the real postsuper -s on the copy (a config dir
// pointing at it) and fails if it renamed or fixed anything: every
// remaining name must encode its inode and sit at its hashed path.
func postsuperCheck(t *testing.T, root string) {
	t.Helper()
	postsuper(t, root, true)
}

// postsuper runs the real postsuper -s on the queue at root; with
// noChange it fails the test if postsuper changed anything.
func postsuper(t *testing.T, root string, noChange bool) {
	t.Helper()
	bin := "/usr/sbin/postsuper"
	if _, err := os.Stat(bin); err != nil {
		t.Fatal("postsuper is not installed (Debian package postfix)")
	}
	// postsuper drops privileges to mail_owner: the path down to the
	// queue directory must be searchable by it.
	for d := filepath.Dir(root); d != "/" && strings.HasPrefix(d, os.TempDir()) && d != filepath.Clean(os.TempDir()); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	conf := filepath.Join(filepath.Dir(filepath.Dir(root)), "postsuper-conf-"+filepath.Base(filepath.Dir(root)))
	os.MkdirAll(conf, 0o755)
	data := filepath.Join(conf, "data")
	os.MkdirAll(data, 0o755)
	mainCF := fmt.Sprintf("compatibility_level = 3.6\nqueue_directory = %s\ndata_directory = %s\nmail_owner = postfix\nsetgid_group = postdrop\nhash_queue_depth = 1\nhash_queue_names = deferred, defer\n", root, data)
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := testkit.Snapshot(t, root)
	out, err := exec.Command(bin, "-c", conf, "-s").CombinedOutput()
	if err != nil {
		t.Fatalf("postsuper -s: %v\n%s", err, out)
	}
	if !noChange {
		return
	}
	if d := diffSnapshots(before, testkit.Snapshot(t, root), nil); len(d) > 0 {
		t.Errorf("postsuper -s changed the queue:\n%s\n%s", strings.Join(d, "\n"), out)
	}
	if strings.Contains(strings.ToLower(string(out)), "renam") {
		t.Errorf("postsuper -s output: %s", out)
	}
}

func selectSASL(msgs map[string]*queue.Message, user string) []*queue.Message {
	var sel []*queue.Message
	for _, m := range msgs {
		if m.SASLUser == user {
			sel = append(sel, m)
		}
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].ID < sel[j].ID })
	return sel
}

func TestPostfixRoundTrip(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	sp := c.spool(t)
	orig := testkit.Snapshot(t, c.root)
	msgs := testkit.ReadAll(t, sp)
	sel := selectSASL(msgs, hello)
	if len(sel) == 0 {
		t.Fatal("no message of", hello)
	}
	picked := map[string]bool{}
	var withLogs int
	for _, m := range sel {
		picked[m.ID] = true
		e, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{})
		if err != nil {
			t.Fatalf("quarantine %s: %v", m.ID, err)
		}
		if e.State != StateQuarantined || e.Envelope.SASLUser != hello || e.Envelope.Sender != m.Sender {
			t.Errorf("%s: entry %+v", m.ID, e)
		}
		if len(e.Parts) > 1 {
			withLogs++
		}
	}
	if withLogs == 0 {
		t.Error("no selected message had a log file: the log moves are untested")
	}
	// Gone from the reader's view; all others unchanged.
	after := testkit.ReadAll(t, c.spool(t))
	for id := range picked {
		if _, ok := after[id]; ok {
			t.Errorf("%s still in the queue", id)
		}
	}
	if len(after) != len(msgs)-len(sel) {
		t.Errorf("%d messages left, want %d", len(after), len(msgs)-len(sel))
	}
	moved := map[string]bool{}
	entries := readManifest(t, c.qdir)
	if len(entries) != len(sel) {
		t.Fatalf("manifest has %d entries, want %d", len(entries), len(sel))
	}
	for _, e := range entries {
		for _, p := range e.Parts {
			moved[p.QueuePath] = true
			if fi, err := os.Lstat(filepath.Join(c.qdir, p.DirPath)); err != nil || inode(fi) != p.Inode {
				t.Errorf("%s: %s not in quarantine with inode %d: %v", e.ID, p.DirPath, p.Inode, err)
			}
		}
	}
	mid := testkit.Snapshot(t, c.root)
	if d := diffSnapshots(orig, mid, func(p string) bool { return moved[p] }); len(d) > 0 {
		t.Errorf("quarantine changed other files:\n%s", strings.Join(d, "\n"))
	}
	for p := range moved {
		if _, ok := mid[p]; ok {
			t.Errorf("%s still in the queue", p)
		}
	}
	postsuperCheck(t, c.root)

	// Restore: the queue is as before, file for file.
	for _, e := range entries {
		id, err := Restore(e, c.dirFS, c.queueFS, RestoreOptions{})
		if err != nil {
			t.Fatalf("restore %s: %v", e.Key, err)
		}
		if id != e.ID {
			t.Errorf("restore %s gave id %s", e.ID, id)
		}
	}
	if d := diffSnapshots(orig, testkit.Snapshot(t, c.root), nil); len(d) > 0 {
		t.Errorf("restore did not give back the queue:\n%s", strings.Join(d, "\n"))
	}
	back := testkit.ReadAll(t, c.spool(t))
	for id, m := range msgs {
		b, ok := back[id]
		if !ok {
			t.Errorf("%s missing after restore", id)
			continue
		}
		if envelopeKey(m) != envelopeKey(b) {
			t.Errorf("%s: envelope differs:\n%s\n%s", id, envelopeKey(m), envelopeKey(b))
		}
	}
	for _, e := range readManifest(t, c.qdir) {
		if e.State != StateRestored {
			t.Errorf("%s: state %s after restore", e.Key, e.State)
		}
	}
	// A second restore of a restored entry is refused.
	if _, err := Restore(readManifest(t, c.qdir)[0], c.dirFS, c.queueFS, RestoreOptions{}); !errors.Is(err, ErrState) {
		t.Errorf("restore of a restored entry: %v", err)
	}
	postsuperCheck(t, c.root)
}

func TestPostfixRefusals(t *testing.T) {
	c := newPostfixCopy(t)
	sp := c.spool(t)
	msgs := testkit.ReadAll(t, sp)
	var m *queue.Message
	for _, x := range msgs {
		if x.Queue == queue.Deferred {
			m = x
			break
		}
	}
	// Quarantine directory inside the queue.
	inside := testkit.OpenFS(t, filepath.Join(c.root, "hold"))
	if _, err := PlanQuarantine(sp, m, inside, c.queueFS, Options{}); !errors.Is(err, ErrInside) {
		t.Errorf("dir inside the queue: %v", err)
	}
	// Another file system (/dev/shm is a tmpfs).
	if shm, err := os.MkdirTemp("/dev/shm", "quarantine-test-"); err == nil {
		defer os.RemoveAll(shm)
		if _, err := PlanQuarantine(sp, m, testkit.OpenFS(t, shm), c.queueFS, Options{}); !errors.Is(err, safefs.ErrCrossDevice) {
			t.Errorf("other file system: %v", err)
		}
	}
	// A message whose file was replaced (queue ID reuse) is refused.
	stale := *m
	stale.Inode++
	if _, err := Quarantine(sp, &stale, c.dirFS, c.queueFS, Options{}); !errors.Is(err, ErrChanged) {
		t.Errorf("changed inode: %v", err)
	}
	// active/ while master runs.
	for _, x := range msgs {
		if x.Queue == queue.Active {
			if _, err := PlanQuarantine(sp, x, c.dirFS, c.queueFS, Options{MasterRunning: true}); !errors.Is(err, postfixq.ErrActiveLive) {
				t.Errorf("active while master runs: %v", err)
			}
			break
		}
	}
	// Restore refuses (per message) when the name is taken.
	e, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.root, m.Path), []byte("other"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(e, c.dirFS, c.queueFS, RestoreOptions{}); !errors.Is(err, ErrOccupied) {
		t.Errorf("occupied name: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(c.qdir, e.Parts[len(e.Parts)-1].DirPath)); err != nil || inode(fi) != m.Inode {
		t.Errorf("refused restore moved the quarantined file: %v", err)
	}
	// Nothing was done, and the plan printed for a dry run names the moves.
	os.Remove(filepath.Join(c.root, m.Path))
	p, err := PlanRestore(e, c.dirFS, c.queueFS, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, st := range p.Steps {
		s = append(s, st.String())
	}
	if !strings.Contains(strings.Join(s, "\n"), "move dir:"+e.Key+"/"+m.Path+" -> queue:"+m.Path) {
		t.Errorf("plan:\n%s", strings.Join(s, "\n"))
	}
}

// TestPostfixRestoreInto restores quarantined messages into another
// (live) queue on the same file system the way postsuper -r requeues:
// maildrop/ID, owner mail_owner, mode 0700, times now; the logs stay in
// quarantine.
func TestPostfixRestoreInto(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	live := filepath.Join(c.tmp, "live")
	if err := os.Mkdir(live, 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.ExtractInto(t, testkit.Fixture(t, "postfix-incident", "queue.tar.gz"), live)
	liveRoot := filepath.Join(live, testkit.PostfixRoot)
	testkit.AdoptPostfixOwners(t, liveRoot)
	liveFS := testkit.OpenFS(t, liveRoot)
	liveBefore := testkit.Snapshot(t, liveRoot)
	sp := c.spool(t)
	msgs := testkit.ReadAll(t, sp)
	var sel []*queue.Message
	for _, m := range sorted(msgs) {
		if m.SASLUser != hello && m.Queue == queue.Deferred && len(sel) < 5 {
			sel = append(sel, m)
		}
	}
	sums := testkit.Snapshot(t, c.root)
	var md unixStat
	if err := lstat(filepath.Join(liveRoot, "maildrop"), &md); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	for _, m := range sel {
		e, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		id, err := Restore(e, c.dirFS, liveFS, RestoreOptions{Into: true})
		if err != nil {
			t.Fatalf("restore --into %s: %v", m.ID, err)
		}
		p := filepath.Join(liveRoot, "maildrop", id)
		var st unixStat
		if err := lstat(p, &st); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if st.Ino != m.Inode || st.Uid != md.Uid || st.Mode&0o7777 != 0o700 || time.Unix(st.Mtim.Unix()).Before(start) {
			t.Errorf("%s: inode %d (want %d) owner %d (want %d) mode %04o mtime %v", p, st.Ino, m.Inode, st.Uid, md.Uid, st.Mode&0o7777, time.Unix(st.Mtim.Unix()))
		}
		if got := testkit.Snapshot(t, filepath.Join(liveRoot, "maildrop"))[id].Sum; got != sums[m.Path].Sum {
			t.Errorf("%s: content changed", id)
		}
		for _, pt := range e.Parts {
			if pt.Name != "message" {
				if _, err := os.Lstat(filepath.Join(c.qdir, pt.DirPath)); err != nil {
					t.Errorf("%s: log %s left quarantine: %v", id, pt.Name, err)
				}
			}
		}
	}
	// The live queue reads the requeued files; nothing else changed there.
	ls, err := postfixq.Open(liveRoot, postfixq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	for _, m := range sel {
		lm, err := ls.Read(queue.Ref{Queue: queue.Maildrop, ID: m.ID, Path: "maildrop/" + m.ID})
		if err != nil || lm.Err != nil || lm.Queue != queue.Maildrop || lm.Sender != m.Sender || len(lm.Recipients) != len(m.Recipients) {
			t.Errorf("%s not readable in the live maildrop as it was: %v %+v", m.ID, err, lm)
		}
	}
	if d := diffSnapshots(liveBefore, testkit.Snapshot(t, liveRoot), func(p string) bool { return strings.HasPrefix(p, "maildrop/") || p == "maildrop" }); len(d) > 0 {
		t.Errorf("live queue changed outside maildrop:\n%s", strings.Join(d, "\n"))
	}
	for _, e := range readManifest(t, c.qdir) {
		if e.State != StateRestored || !e.Into || e.RestoredTo != liveRoot {
			t.Errorf("%s: manifest %s into=%v to=%s", e.Key, e.State, e.Into, e.RestoredTo)
		}
	}
}

type unixStat = unix.Stat_t

func lstat(p string, st *unix.Stat_t) error { return unix.Lstat(p, st) }

// TestPostfixRestoreActiveLive: with a master running, a message
// quarantined from active/ goes back into incoming/, where a running qmgr
// looks, under the same name; its bounce log goes back as it was.
func TestPostfixRestoreActiveLive(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	sp := c.spool(t)
	var m *queue.Message
	for _, x := range sorted(testkit.ReadAll(t, sp)) {
		if x.Queue == queue.Active {
			if _, err := c.queueFS.Lstat(sp.LogPath(postfixq.LogBounce, x.ID)); err == nil {
				m = x
				break
			}
		}
	}
	if m == nil {
		t.Fatal("no active message with a bounce log")
	}
	e, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(e, c.dirFS, c.queueFS, RestoreOptions{MasterRunning: true}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(c.root, "incoming", m.ID), &st); err != nil || st.Ino != m.Inode {
		t.Fatalf("not in incoming/: %v", err)
	}
	if err := unix.Lstat(filepath.Join(c.root, sp.LogPath(postfixq.LogBounce, m.ID)), &st); err != nil {
		t.Errorf("bounce log not restored: %v", err)
	}
	back, err := c.spool(t).Read(queue.Ref{Queue: queue.Incoming, ID: m.ID, Path: "incoming/" + m.ID})
	if err != nil || back.Err != nil || back.Sender != m.Sender {
		t.Errorf("incoming/%s: %v %+v", m.ID, err, back)
	}
	postsuperCheck(t, c.root)
}

// TestPostfixRealRoundTrip runs a real Postfix: three deferred messages;
// two are quarantined while Postfix is stopped, one is restored in place
// and one through maildrop (postsuper -r's route); after a start with the
// relay pointed at smtp-sink, all three arrive, each once, with the
// restored ones byte-identical in their bodies.
func TestPostfixRealRoundTrip(t *testing.T) {
	postfixtest.Require(t)
	pf := postfixtest.New(t, postfixtest.Options{})
	pf.Start()
	sink := postfixtest.StartSink(t)
	subjects := []string{"quarantine-in-place", "quarantine-into-maildrop", "never-quarantined"}
	ids := map[string]string{}
	for _, s := range subjects {
		ids[s] = pf.SendSMTP(postfixtest.Mail{From: "a@example.com", To: []string{"x@remote.example"},
			Data: postfixtest.NewMessage("a@example.com", []string{"x@remote.example"}, s, "body of "+s+"\n")})
	}
	pf.WaitQueued(len(subjects), 30*time.Second)
	pf.Stop()

	qdir := filepath.Join(filepath.Dir(pf.QueueDir), "quarantine")
	if err := os.Mkdir(qdir, 0o700); err != nil {
		t.Fatal(err)
	}
	queueFS, dirFS := testkit.OpenFS(t, pf.QueueDir), testkit.OpenFS(t, qdir)
	sp, err := postfixq.Open(pf.QueueDir, postfixq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	msgs := testkit.ReadAll(t, sp)
	entries := map[string]Entry{}
	for _, s := range subjects[:2] {
		m, ok := msgs[ids[s]]
		if !ok {
			t.Fatalf("%s (%s) not in the queue: %v", s, ids[s], msgs)
		}
		e, err := Quarantine(sp, m, dirFS, queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		entries[s] = e
	}
	if left := testkit.ReadAll(t, sp); len(left) != 1 {
		t.Fatalf("%d messages left after quarantine", len(left))
	}
	if _, err := Restore(entries[subjects[0]], dirFS, queueFS, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(entries[subjects[1]], dirFS, queueFS, RestoreOptions{Into: true}); err != nil {
		t.Fatal(err)
	}
	if out, err := pf.Postsuper("-s"); err != nil || strings.Contains(out, "enamed") {
		t.Errorf("postsuper -s: %v %s", err, out)
	}

	pf.Postconf("relayhost = [" + strings.Replace(sink.Addr, ":", "]:", 1))
	pf.Start()
	pf.Flush()
	got := sink.WaitMessages(len(subjects), 60*time.Second)
	seen := map[string]int{}
	for _, m := range got {
		for _, s := range subjects {
			if strings.Contains(string(m.Data), "Subject: "+s+"\n") && strings.Contains(string(m.Data), "body of "+s+"\n") {
				seen[s]++
			}
		}
	}
	for _, s := range subjects {
		if seen[s] != 1 {
			t.Errorf("%s arrived %d times", s, seen[s])
		}
	}
	if len(got) != len(subjects) {
		t.Errorf("sink got %d messages, want %d", len(got), len(subjects))
	}
}

// TestPlanChangesNothing: a plan (what --dry-run prints) is built without
// touching the queue or the quarantine directory, and lists every move
// Execute then makes, in order.
func TestPlanChangesNothing(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	sp := c.spool(t)
	msgs := testkit.ReadAll(t, sp)
	q0, d0 := testkit.Snapshot(t, c.root), testkit.Snapshot(t, c.qdir)
	var plans []*Plan
	for _, m := range selectSASL(msgs, hello)[:10] {
		p, err := PlanQuarantine(sp, m, c.dirFS, c.queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	if d := diffSnapshots(q0, testkit.Snapshot(t, c.root), nil); len(d) > 0 {
		t.Errorf("planning changed the queue: %v", d)
	}
	if d := diffSnapshots(d0, testkit.Snapshot(t, c.qdir), nil); len(d) > 0 {
		t.Errorf("planning changed the quarantine dir: %v", d)
	}
	rec := &recorder{Mover: &Disk{Queue: c.queueFS, Dir: c.dirFS}}
	for _, p := range plans {
		if _, err := p.Execute(rec); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, s := range p.Steps {
			if s.Op == OpMove {
				want = append(want, s.Path+" -> "+s.Dest)
			}
		}
		if got := rec.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: executed\n%s\nplanned\n%s", p.Entry.ID, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

type recorder struct {
	Mover
	moves []string
}

func (r *recorder) Move(a Root, from string, b Root, to string) error {
	r.moves = append(r.moves, from+" -> "+to)
	return r.Mover.Move(a, from, b, to)
}

func (r *recorder) take() []string { m := r.moves; r.moves = nil; return m }

// TestHostileParts: a symbolic link where a log belongs, and a quarantined
// file replaced by another, are refused before anything moves.
func TestHostileParts(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	sp := c.spool(t)
	msgs := testkit.ReadAll(t, sp)
	var m *queue.Message
	for _, x := range sorted(msgs) {
		if x.Queue == queue.Deferred {
			m = x
			break
		}
	}
	// A bounce log that is a symbolic link to a file outside the queue.
	outside := filepath.Join(c.tmp, "outside")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(c.root, sp.LogPath(postfixq.LogBounce, m.ID))
	os.MkdirAll(filepath.Dir(link), 0o700)
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	q0 := testkit.Snapshot(t, c.root)
	if _, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{}); !errors.Is(err, ErrNotRegular) {
		t.Errorf("symlinked log: %v", err)
	}
	if d := diffSnapshots(q0, testkit.Snapshot(t, c.root), nil); len(d) > 0 {
		t.Errorf("refused quarantine changed the queue: %v", d)
	}
	if b, _ := os.ReadFile(outside); string(b) != "secret" {
		t.Error("outside file changed")
	}
	os.Remove(link)

	// A quarantined file replaced by another one is not restored.
	e, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{})
	if err != nil {
		t.Fatal(err)
	}
	last := e.Parts[len(e.Parts)-1]
	qp := filepath.Join(c.qdir, last.DirPath)
	b, _ := os.ReadFile(qp)
	os.Remove(qp)
	if err := os.WriteFile(qp, b, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(e, c.dirFS, c.queueFS, RestoreOptions{}); !errors.Is(err, ErrChanged) {
		t.Errorf("replaced quarantined file: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(c.root, last.QueuePath)); !os.IsNotExist(err) {
		t.Errorf("replaced file was put into the queue: %v", err)
	}
}

// TestManifestDamage: a torn or garbage line is reported with its line
// number, the other entries are still read, and the last state wins.
func TestManifestDamage(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	sp := c.spool(t)
	sel := selectSASL(testkit.ReadAll(t, sp), hello)[:3]
	for _, m := range sel {
		if _, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	mf := filepath.Join(c.qdir, ManifestName)
	f, err := os.OpenFile(mf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not json\n{\"key\":\"")
	f.Close()
	es, err := ReadManifest(mf)
	var me *ManifestError
	if !errors.As(err, &me) || me.Line != 7 {
		t.Errorf("error %v, want a *ManifestError at line 7", err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries", len(es))
	}
	for i, e := range es {
		if e.State != StateQuarantined || e.ID != sel[i].ID {
			t.Errorf("entry %d: %s %s", i, e.ID, e.State)
		}
	}
	// A symbolic link is not followed.
	ln := filepath.Join(c.tmp, "link.jsonl")
	os.Symlink(mf, ln)
	if _, err := ReadManifest(ln); err == nil {
		t.Error("manifest read through a symbolic link")
	}
}

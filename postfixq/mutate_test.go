package postfixq

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
)

// The mutation tests act on private extractions of the real fixture and
// compare the result with what the real postsuper(1) does to a twin
// extraction.

// mutDigest is what the reader makes of a message, minus nothing that
// should stay stable when another message is acted on.
func mutDigest(m *queue.Message) string {
	errs := ""
	if m.Err != nil {
		errs = m.Err.Error()
	}
	return fmt.Sprintf("%s %s %s ino=%d mode=%v mtime=%d size=%d/%d sender=%q rcpt=%+v bouncing=%v expired=%v problems=%q err=%q attrs=%v sasl=%q client=%q",
		m.Queue, m.ID, m.Path, m.Inode, m.Mode, m.ModTime.Unix(), m.Size, m.FileSize, m.Sender, m.Recipients,
		m.Bouncing, m.ForcedExpire, m.Problems, errs, m.Attrs, m.SASLUser, m.ClientAddr)
}

// mutReadAll reads every message of the spool at root, keyed by ID.
func mutReadAll(t *testing.T, root string) (*Spool, map[string]*queue.Message) {
	t.Helper()
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, testkit.ReadAll(t, s)
}

// pick returns up to n IDs of messages in queue q that satisfy ok, sorted.
func pick(s *Spool, msgs map[string]*queue.Message, q string, n int, ok func(*queue.Message) bool) []string {
	var ids []string
	for id, m := range msgs {
		if m.Queue == q && (ok == nil || ok(m)) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) > n {
		ids = ids[:n]
	}
	return ids
}

func hasLog(s *Spool, svc string) func(*queue.Message) bool {
	return func(m *queue.Message) bool {
		_, err := s.Lstat(s.LogPath(svc, m.ID))
		return err == nil
	}
}

// addTrace gives msg a trace log: a copy of its real bounce(8) bounce or
// defer log (the trace log has the same format, bounce/bounce_append_service.c),
// so that Delete's removal of trace/ is exercised. Both twins get it.
func addTrace(t *testing.T, root string, s *Spool, id string) {
	t.Helper()
	src := s.LogPath(LogBounce, id)
	if _, err := s.Lstat(src); err != nil {
		src = s.LogPath(LogDefer, id)
	}
	b, err := os.ReadFile(filepath.Join(root, src))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(root, s.LogPath(LogTrace, id))
	if err := os.WriteFile(dst, b, 0600); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(dst, 102, 105); err != nil {
		t.Fatal(err)
	}
}

// postsuperTwin writes a minimal config directory for the extracted queue
// at root and returns a function running the real postsuper on it.
func postsuperTwin(t *testing.T, root string) func(args ...string) {
	t.Helper()
	bin, err := exec.LookPath("postsuper")
	if err != nil {
		bin = "/usr/sbin/postsuper"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("postsuper is not installed (Debian package postfix); the mutation tests compare with it")
		}
	}
	// postsuper drops privileges to mail_owner: the path down to the
	// queue directory must be searchable by it.
	for d := filepath.Dir(root); d != "/" && d != "." && strings.HasPrefix(d, os.TempDir()); d = filepath.Dir(d) {
		if d == filepath.Clean(os.TempDir()) {
			break
		}
		os.Chmod(d, 0755)
	}
	conf := t.TempDir()
	data := t.TempDir()
	os.Chmod(conf, 0755)
	mainCF := fmt.Sprintf("compatibility_level = 3.6\nqueue_directory = %s\ndata_directory = %s\nmail_owner = postfix\nsetgid_group = postdrop\nhash_queue_depth = 1\nhash_queue_names = deferred, defer\n", root, data)
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(mainCF), 0644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), nil, 0644); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"-c", conf}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("postsuper %v: %v\n%s", args, err, out)
		}
	}
}

// origins maps each inode of a snapshot to the path it had.
func origins(s testkit.Tree) map[uint64]string {
	o := map[uint64]string{}
	for p, e := range s {
		if e.Mode.IsRegular() {
			o[e.Ino] = p
		}
	}
	return o
}

// compareTwins checks that two trees acted on from identical extractions
// agree: same paths, types, modes, owners, contents, and each file is the
// same original file (by inode, mapped through the before snapshots). File
// mtimes must agree, within slack for the files in fresh (stamped with
// "now" by both sides).
func compareTwins(t *testing.T, label string, aBefore, a, bBefore, b testkit.Tree, fresh map[string]bool) {
	t.Helper()
	ao, bo := origins(aBefore), origins(bBefore)
	for p, ea := range a {
		eb, ok := b[p]
		if !ok {
			t.Errorf("%s: %s exists after qsurgeon but not after postsuper", label, p)
			continue
		}
		if ea.Mode != eb.Mode || ea.UID != eb.UID || ea.GID != eb.GID {
			t.Errorf("%s: %s: type/mode/owner %v %d:%d, postsuper %v %d:%d", label, p,
				ea.Mode, ea.UID, ea.GID, eb.Mode, eb.UID, eb.GID)
		}
		if !ea.Mode.IsRegular() {
			continue
		}
		if ea.Sum != eb.Sum {
			t.Errorf("%s: %s: content differs from postsuper's", label, p)
		}
		if ao[ea.Ino] != bo[eb.Ino] {
			t.Errorf("%s: %s is originally %q, postsuper's is %q", label, p, ao[ea.Ino], bo[eb.Ino])
		}
		d := ea.Mtime.Sub(eb.Mtime)
		if fresh[p] {
			if d < -60*time.Second || d > 60*time.Second {
				t.Errorf("%s: %s: mtime %v, postsuper %v", label, p, ea.Mtime, eb.Mtime)
			}
		} else if d != 0 {
			t.Errorf("%s: %s: mtime %v, postsuper %v", label, p, ea.Mtime, eb.Mtime)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			t.Errorf("%s: %s exists after postsuper but not after qsurgeon", label, p)
		}
	}
}

// checkUntouched checks that every entry of before that is not in changed
// is still there with the same name, owner, mode, inode, content and
// mtime (directories: not their times, entries moved in or out), and that
// the entries in changed are gone. New entries are not its business.
func checkUntouched(t *testing.T, label string, before, after testkit.Tree, changed map[string]bool) {
	t.Helper()
	for p := range changed {
		if _, ok := after[p]; ok {
			t.Errorf("%s: %s should be gone", label, p)
		}
	}
	skip := func(p string) bool {
		_, had := before[p]
		return changed[p] || !had
	}
	for _, d := range before.Diff(after, testkit.IgnoreDirTimes(), testkit.IgnorePaths(skip)) {
		t.Errorf("%s: %s", label, d)
	}
}

type mutCase struct {
	action string
	flag   string
	do     func(s *Spool, m queue.Mutator, msg *queue.Message, opt ActOptions) error
	// choose selects the IDs to act on.
	choose func(s *Spool, msgs map[string]*queue.Message) []string
	// dest is where the message file ends up ("" when removed).
	dest func(s *Spool, msg *queue.Message) string
	// logsRemoved: the action removes the logfiles.
	logsRemoved bool
}

func mutCases() []mutCase {
	return []mutCase{
		{
			action: "delete", flag: "-d", do: (*Spool).Delete, logsRemoved: true,
			choose: func(s *Spool, msgs map[string]*queue.Message) []string {
				ids := pick(s, msgs, queue.Active, 2, hasLog(s, LogBounce))
				ids = append(ids, pick(s, msgs, queue.Deferred, 3, hasLog(s, LogDefer))...)
				ids = append(ids, pick(s, msgs, queue.Hold, 1, nil)...)
				ids = append(ids, pick(s, msgs, queue.Incoming, 1, nil)...)
				ids = append(ids, pick(s, msgs, queue.Maildrop, 1, nil)...)
				return ids
			},
			dest: func(*Spool, *queue.Message) string { return "" },
		},
		{
			action: "hold", flag: "-h", do: (*Spool).Hold,
			choose: func(s *Spool, msgs map[string]*queue.Message) []string {
				ids := pick(s, msgs, queue.Deferred, 3, hasLog(s, LogDefer))
				ids = append(ids, pick(s, msgs, queue.Incoming, 1, nil)...)
				ids = append(ids, pick(s, msgs, queue.Active, 1, hasLog(s, LogBounce))...)
				return ids
			},
			dest: func(s *Spool, m *queue.Message) string { return s.MessagePath(queue.Hold, m.ID) },
		},
		{
			action: "release", flag: "-H", do: (*Spool).Release,
			choose: func(s *Spool, msgs map[string]*queue.Message) []string {
				return pick(s, msgs, queue.Hold, 3, nil)
			},
			dest: func(s *Spool, m *queue.Message) string { return s.MessagePath(queue.Deferred, m.ID) },
		},
		{
			action: "requeue", flag: "-r", do: (*Spool).Requeue,
			choose: func(s *Spool, msgs map[string]*queue.Message) []string {
				ids := pick(s, msgs, queue.Deferred, 2, hasLog(s, LogDefer))
				ids = append(ids, pick(s, msgs, queue.Hold, 1, nil)...)
				ids = append(ids, pick(s, msgs, queue.Incoming, 1, nil)...)
				ids = append(ids, pick(s, msgs, queue.Active, 1, hasLog(s, LogBounce))...)
				return ids
			},
			dest: func(s *Spool, m *queue.Message) string { return s.MessagePath(queue.Maildrop, m.ID) },
		},
		{
			action: "expire", flag: "-e", do: (*Spool).Expire,
			choose: func(s *Spool, msgs map[string]*queue.Message) []string {
				ids := pick(s, msgs, queue.Deferred, 2, nil)
				ids = append(ids, pick(s, msgs, queue.Hold, 1, nil)...)
				ids = append(ids, pick(s, msgs, queue.Incoming, 1, nil)...)
				ids = append(ids, pick(s, msgs, queue.Active, 1, nil)...)
				return ids
			},
			dest: func(s *Spool, m *queue.Message) string { return m.Path },
		},
	}
}

func TestMutateMatchesPostsuper(t *testing.T) {
	for _, c := range mutCases() {
		t.Run(c.action, func(t *testing.T) {
			ours, twin := copyFixture(t), copyFixture(t)
			s, msgs := mutReadAll(t, ours)
			ids := c.choose(s, msgs)
			if len(ids) < 3 {
				t.Fatalf("fixture offers only %d messages for %s", len(ids), c.action)
			}
			if c.action == "delete" {
				addTrace(t, ours, s, ids[0])
				addTrace(t, twin, s, ids[0])
			}
			before, twinBefore := testkit.Snapshot(t, ours), testkit.Snapshot(t, twin)

			fsys := testkit.OpenFS(t, ours)
			changed := map[string]bool{}
			fresh := map[string]bool{}
			var args []string
			for _, id := range ids {
				m := msgs[id]
				// The real postsuper stamps the kernel's time; give ours
				// the same now (the clock-ahead run moves clock.Now).
				if err := c.do(s, fsys, m, ActOptions{Now: time.Now()}); err != nil {
					t.Fatalf("%s %s: %v", c.action, id, err)
				}
				args = append(args, c.flag, id)
				if d := c.dest(s, m); d != m.Path {
					changed[m.Path] = true
					if c.action == "requeue" {
						fresh[d] = true
					}
				}
				if c.logsRemoved {
					for _, svc := range []string{LogBounce, LogDefer, LogTrace} {
						if _, ok := before[s.LogPath(svc, id)]; ok {
							changed[s.LogPath(svc, id)] = true
						}
					}
				}
			}
			after := testkit.Snapshot(t, ours)
			if c.action != "expire" {
				checkUntouched(t, c.action, before, after, changed)
			}
			for _, id := range ids {
				m := msgs[id]
				d := c.dest(s, m)
				if d == "" {
					continue
				}
				e, ok := after[d]
				if !ok {
					t.Errorf("%s %s: not at %s", c.action, id, d)
					continue
				}
				if e.Ino != m.Inode {
					t.Errorf("%s %s: inode %d, was %d", c.action, id, e.Ino, m.Inode)
				}
				if c.action == "expire" && e.Mode != before[m.Path].Mode|0o010 {
					t.Errorf("expire %s: mode %v", id, e.Mode)
				}
			}

			postsuperTwin(t, twin)(args...)
			compareTwins(t, c.action, before, after, twinBefore, testkit.Snapshot(t, twin), fresh)

			// The reader still reads every other message as before.
			_, msgs2 := mutReadAll(t, ours)
			for id, m := range msgs {
				if containsStr(ids, id) {
					continue
				}
				if m2, ok := msgs2[id]; !ok || mutDigest(m2) != mutDigest(m) {
					t.Errorf("%s: message %s reads differently afterwards", c.action, id)
				}
			}
		})
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestMutateWrongQueueAndActive(t *testing.T) {
	root := copyFixture(t)
	s, msgs := mutReadAll(t, root)
	fsys := testkit.OpenFS(t, root)
	before := testkit.Snapshot(t, root)
	first := func(q string) *queue.Message { return msgs[pick(s, msgs, q, 1, nil)[0]] }
	cases := []struct {
		name string
		err  error
		do   func() error
	}{
		{"hold maildrop", ErrWrongQueue, func() error { return s.Hold(fsys, first(queue.Maildrop), ActOptions{}) }},
		{"hold hold", ErrWrongQueue, func() error { return s.Hold(fsys, first(queue.Hold), ActOptions{}) }},
		{"release deferred", ErrWrongQueue, func() error { return s.Release(fsys, first(queue.Deferred), ActOptions{}) }},
		{"requeue maildrop", ErrWrongQueue, func() error { return s.Requeue(fsys, first(queue.Maildrop), ActOptions{}) }},
		{"expire maildrop", ErrWrongQueue, func() error { return s.Expire(fsys, first(queue.Maildrop), ActOptions{}) }},
		{"delete active live", ErrActiveLive, func() error {
			return s.Delete(fsys, first(queue.Active), ActOptions{MasterRunning: true})
		}},
		{"hold active live", ErrActiveLive, func() error {
			return s.Hold(fsys, first(queue.Active), ActOptions{MasterRunning: true})
		}},
		{"expire active live", ErrActiveLive, func() error {
			return s.Expire(fsys, first(queue.Active), ActOptions{MasterRunning: true})
		}},
		{"unread message", ErrNotRead, func() error {
			m := *first(queue.Deferred)
			m.Inode = 0
			return s.Delete(fsys, &m, ActOptions{})
		}},
		{"path outside its queue", ErrNotRead, func() error {
			m := *first(queue.Deferred)
			m.Path = "hold/" + m.ID
			return s.Delete(fsys, &m, ActOptions{})
		}},
	}
	for _, c := range cases {
		err := c.do()
		if !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	checkUntouched(t, "refused", before, testkit.Snapshot(t, root), nil)

	// With the master running but UnsafeActive, active is allowed.
	if err := s.Hold(fsys, first(queue.Active), ActOptions{MasterRunning: true, UnsafeActive: true}); err != nil {
		t.Fatal(err)
	}
}

func TestMutateRefusesReplacedFile(t *testing.T) {
	root := copyFixture(t)
	s, msgs := mutReadAll(t, root)
	fsys := testkit.OpenFS(t, root)
	ids := pick(s, msgs, queue.Deferred, 1, hasLog(s, LogDefer))
	m := msgs[ids[0]]
	// Someone replaces the file under the same ID (a reused short ID, or a
	// restore): new inode.
	abs := filepath.Join(root, m.Path)
	b, _ := os.ReadFile(abs)
	if err := os.WriteFile(abs+".new", b, 0700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(abs+".new", abs); err != nil {
		t.Fatal(err)
	}
	before := testkit.Snapshot(t, root)
	for name, do := range map[string]func(*Spool, queue.Mutator, *queue.Message, ActOptions) error{
		"delete": (*Spool).Delete, "hold": (*Spool).Hold, "requeue": (*Spool).Requeue, "expire": (*Spool).Expire,
	} {
		if err := do(s, fsys, m, ActOptions{}); !errors.Is(err, ErrChanged) {
			t.Errorf("%s of a replaced file: %v, want ErrChanged", name, err)
		}
	}
	// The defer log in particular must survive: identity is checked before
	// the logs are removed.
	checkUntouched(t, "replaced", before, testkit.Snapshot(t, root), nil)

	// Vanished.
	os.Remove(abs)
	if err := s.Delete(fsys, m, ActOptions{}); !errors.Is(err, ErrChanged) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("delete of a vanished file: %v", err)
	}
	// Not ready (being written: owner bits not rwx).
	m2 := msgs[pick(s, msgs, queue.Hold, 1, nil)[0]]
	os.Chmod(filepath.Join(root, m2.Path), 0600)
	if err := s.Release(fsys, m2, ActOptions{}); !errors.Is(err, ErrChanged) {
		t.Errorf("release of a file in progress: %v", err)
	}
}

func TestMutateDryRun(t *testing.T) {
	root := copyFixture(t)
	s, msgs := mutReadAll(t, root)
	fsys := testkit.OpenFS(t, root)
	dry := safefs.NewDryRun(fsys)
	before := testkit.Snapshot(t, root)
	id := pick(s, msgs, queue.Active, 1, hasLog(s, LogBounce))[0]
	hid := pick(s, msgs, queue.Hold, 1, nil)[0]
	now := time.Unix(1795363200, 0)
	for _, step := range []error{
		s.Delete(dry, msgs[id], ActOptions{}),
		s.Release(dry, msgs[hid], ActOptions{}),
		s.Requeue(dry, msgs[hid], ActOptions{Now: now}),
		s.Expire(dry, msgs[hid], ActOptions{}),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	if d := before.Diff(testkit.Snapshot(t, root)); d != nil {
		t.Fatalf("dry run changed the queue:\n%s", strings.Join(d, "\n"))
	}
	var got []string
	for _, o := range dry.Ops() {
		got = append(got, o.String())
	}
	mode := fmt.Sprintf("%04o", msgs[hid].Mode.Perm()|0o010)
	want := []string{
		"remove bounce/" + id,
		"remove defer/" + id[:1] + "/" + id,
		"remove trace/" + id,
		"remove active/" + id,
		"rename hold/" + hid + " -> deferred/" + hid[:1] + "/" + hid,
		"rename hold/" + hid + " -> maildrop/" + hid,
		"chtimes maildrop/" + hid + " atime " + now.UTC().Format(time.RFC3339) + " mtime " + now.UTC().Format(time.RFC3339),
		"chmod hold/" + hid + " " + mode,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestMutateFaultCut cuts each action at every step and checks that what is
// left is a state Postfix tolerates, that every other message reads as
// before, and that running the action again finishes the job with the same
// result as an uncut run.
func TestMutateFaultCut(t *testing.T) {
	for _, c := range mutCases() {
		t.Run(c.action, func(t *testing.T) {
			// Reference run, counting the steps.
			ref := copyFixture(t)
			s, msgs := mutReadAll(t, ref)
			id := c.choose(s, msgs)[0]
			if c.action == "delete" {
				addTrace(t, ref, s, id)
			}
			refBefore := testkit.Snapshot(t, ref)
			counter := safefs.NewFaulty(testkit.OpenFS(t, ref), 0)
			if err := c.do(s, counter, msgs[id], ActOptions{}); err != nil {
				t.Fatal(err)
			}
			refAfter := testkit.Snapshot(t, ref)
			steps := counter.Calls()
			if steps == 0 {
				t.Fatal("no steps")
			}
			for k := 1; k <= steps; k++ {
				root := copyFixture(t)
				s, msgs := mutReadAll(t, root)
				m := msgs[id]
				if c.action == "delete" {
					addTrace(t, root, s, id)
				}
				before := testkit.Snapshot(t, root)
				fsys := testkit.OpenFS(t, root)
				err := c.do(s, safefs.NewFaulty(fsys, k), m, ActOptions{})
				if !errors.Is(err, safefs.ErrInjected) {
					t.Fatalf("cut at %d/%d: %v", k, steps, err)
				}
				cut := testkit.Snapshot(t, root)
				label := fmt.Sprintf("%s cut at %d/%d", c.action, k, steps)

				// Postfix's rules for what may be left.
				_, msgThere := cut[m.Path]
				dest := c.dest(s, m)
				_, destThere := cut[dest]
				switch {
				case c.logsRemoved:
					// No log may outlive its message: the message is
					// removed last.
					if !msgThere {
						t.Errorf("%s: message removed before the cut step", label)
					}
				case dest != m.Path:
					if msgThere == destThere {
						t.Errorf("%s: message at old path %v, new path %v", label, msgThere, destThere)
					}
				}
				// Every other message reads as before.
				_, msgs2 := mutReadAll(t, root)
				for oid, om := range msgs {
					if oid == id {
						continue
					}
					if m2, ok := msgs2[oid]; !ok || mutDigest(m2) != mutDigest(om) {
						t.Errorf("%s: message %s reads differently", label, oid)
					}
				}
				// Resume: read the message where it now is and act again.
				s2, msgs3 := mutReadAll(t, root)
				m3, ok := msgs3[id]
				if !ok {
					t.Fatalf("%s: message %s not found after the cut", label, id)
				}
				if m3.Path == dest && dest != m.Path && c.action != "expire" {
					// The move happened; only the time stamp of
					// requeue can be missing. Finish it as the
					// action would.
					if c.action == "requeue" {
						now := clock.Now().Truncate(time.Second)
						if err := fsys.Chtimes(dest, now, now); err != nil {
							t.Fatal(err)
						}
					}
				} else if err := c.do(s2, fsys, m3, ActOptions{}); err != nil {
					t.Fatalf("%s: resume: %v", label, err)
				}
				final := testkit.Snapshot(t, root)
				fresh := map[string]bool{}
				if c.action == "requeue" {
					fresh[dest] = true
				}
				compareTwins(t, label+" then resumed", before, final, refBefore, refAfter, fresh)
			}
		})
	}
}

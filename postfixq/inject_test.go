package postfixq

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
)

// emptySkeleton extracts the fixture and removes every file, keeping the
// directory tree with its owners and modes: an empty live queue of the
// same instance.
func emptySkeleton(t *testing.T) string {
	t.Helper()
	root := copyFixture(t)
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func lstatT(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// postcatOK runs the real postcat on a queue file with an empty private
// configuration and returns its output.
func postcatOK(t *testing.T, file string) string {
	t.Helper()
	conf := t.TempDir()
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("postcat")
	if err != nil {
		bin = "/usr/sbin/postcat"
	}
	out, err := exec.Command(bin, "-c", conf, file).CombinedOutput()
	if err != nil {
		t.Fatalf("postcat %s: %v\n%s", file, err, out)
	}
	return string(out)
}

func pendingAddrs(m *queue.Message) []string {
	var out []string
	for _, r := range m.Pending() {
		out = append(out, r.Address)
	}
	slices.Sort(out)
	return out
}

// TestIntoMaildrop re-injects a selection of the detached fixture queue into
// an empty live queue, half by copy and half by move, and reads the live
// queue back: every message is in maildrop, ready for pickup as a requeued
// file, byte for byte what it was.
func TestIntoMaildrop(t *testing.T) {
	det := copyFixture(t)
	liveRoot := emptySkeleton(t)
	detSpool, msgs := mutReadAll(t, det)
	live, err := Open(liveRoot, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	detFS, liveFS := testkit.OpenFS(t, det), testkit.OpenFS(t, liveRoot)
	move := func(src, dst string) error { return safefs.MoveBetween(detFS, src, liveFS, dst) }
	ok := func(m *queue.Message) bool { return m.Err == nil && len(m.Pending()) > 0 }

	var sel []string
	sel = append(sel, pick(detSpool, msgs, queue.Deferred, 4, ok)...)
	sel = append(sel, pick(detSpool, msgs, queue.Hold, 2, ok)...)
	sel = append(sel, pick(detSpool, msgs, queue.Maildrop, 2, ok)...)
	if len(sel) < 6 {
		t.Fatalf("fixture selection too small: %v", sel)
	}
	mdUID := lstatT(t, filepath.Join(liveRoot, "maildrop")).Uid
	now := time.Now()
	type done struct {
		msg   *queue.Message
		into  Into
		data  []byte
		moved bool
	}
	var all []done
	for i, id := range sel {
		msg := msgs[id]
		data, err := os.ReadFile(filepath.Join(det, msg.Path))
		if err != nil {
			t.Fatal(err)
		}
		opt := IntoOptions{Now: now}
		if i%2 == 1 {
			opt.Move = move
		}
		into, err := detSpool.IntoMaildrop(live, liveFS, msg, opt)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if into.Moved != (opt.Move != nil) {
			t.Errorf("%s: moved=%v with Move set=%v", id, into.Moved, opt.Move != nil)
		}
		all = append(all, done{msg, into, data, into.Moved})
	}

	_, liveMsgs := mutReadAll(t, liveRoot)
	if len(liveMsgs) != len(all) {
		t.Errorf("live queue holds %d messages, injected %d", len(liveMsgs), len(all))
	}
	for _, d := range all {
		p := filepath.Join(liveRoot, d.into.Path)
		st := lstatT(t, p)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, d.data) {
			t.Errorf("%s: live %s differs from the detached file", d.msg.ID, d.into.Path)
		}
		if ino, err := IDInode(d.into.ID); err != nil || ino != st.Ino {
			t.Errorf("%s: live name %s does not encode inode %d (%v)", d.msg.ID, d.into.ID, st.Ino, err)
		}
		if d.msg.Queue == queue.Maildrop {
			// A postdrop submission stays one: owner and mode kept.
			if st.Mode&0o7777 != uint32(d.msg.Mode.Perm()) || int(st.Uid) != d.msg.UID {
				t.Errorf("%s: maildrop file got mode %o uid %d, was %v uid %d", d.msg.ID, st.Mode&0o7777, st.Uid, d.msg.Mode, d.msg.UID)
			}
		} else {
			// pickup.c MAIL_IS_REQUEUED: owner mail_owner, no S_IROTH.
			if st.Mode&0o777 != 0o700 || st.Uid != mdUID {
				t.Errorf("%s: requeued file has mode %o uid %d, want 0700 uid %d", d.msg.ID, st.Mode&0o7777, st.Uid, mdUID)
			}
		}
		srcGone := false
		if _, err := os.Lstat(filepath.Join(det, d.msg.Path)); errors.Is(err, fs.ErrNotExist) {
			srcGone = true
		}
		if d.moved {
			// postsuper -r keeps the ID; a name that does not encode the
			// inode (this extracted copy has new inodes) gets a new one.
			keep := false
			if ino, err := IDInode(d.msg.ID); err == nil && ino == d.msg.Inode {
				keep = true
			}
			if !srcGone || st.Ino != d.msg.Inode || (d.into.ID == d.msg.ID) != keep {
				t.Errorf("%s: moved, but source gone=%v inode %d->%d id %s", d.msg.ID, srcGone, d.msg.Inode, st.Ino, d.into.ID)
			}
			if time.Unix(st.Mtim.Unix()).Unix() != now.Unix() {
				t.Errorf("%s: moved file mtime %v, want now (postsuper -r utime)", d.msg.ID, time.Unix(st.Mtim.Unix()))
			}
		} else if srcGone || st.Ino == d.msg.Inode {
			t.Errorf("%s: copied, but the detached file is gone=%v or shares its inode", d.msg.ID, srcGone)
		}
		lm := liveMsgs[d.into.ID]
		if lm == nil {
			t.Errorf("%s: not found in the live queue as %s", d.msg.ID, d.into.ID)
			continue
		}
		if lm.Queue != queue.Maildrop || lm.Sender != d.msg.Sender || !slices.Equal(pendingAddrs(lm), pendingAddrs(d.msg)) {
			t.Errorf("%s: live %s/%s sender %q rcpt %v; detached sender %q rcpt %v", d.msg.ID, lm.Queue, lm.ID, lm.Sender, pendingAddrs(lm), d.msg.Sender, pendingAddrs(d.msg))
		}
		out := postcatOK(t, p)
		if !strings.Contains(out, "*** ENVELOPE RECORDS") || (d.msg.Sender != "" && !strings.Contains(out, "sender: "+d.msg.Sender+"\n")) {
			t.Errorf("%s: postcat does not show the envelope:\n%s", d.msg.ID, out)
		}
	}
	// Nothing else appeared in the live maildrop (no temporary file left).
	ents, err := os.ReadDir(filepath.Join(liveRoot, "maildrop"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(all) {
		t.Errorf("live maildrop holds %d entries, want %d", len(ents), len(all))
	}
}

// TestIntoMaildropDryRunAndFaults: a recording Mutator changes nothing in
// either queue; a failure at any step leaves no file pickup would take
// (only, at worst, a dot-named temporary file) and the detached queue
// untouched.
func TestIntoMaildropDryRunAndFaults(t *testing.T) {
	det := copyFixture(t)
	detSpool, msgs := mutReadAll(t, det)
	ids := pick(detSpool, msgs, queue.Deferred, 1, func(m *queue.Message) bool { return m.Err == nil })
	if len(ids) != 1 {
		t.Fatal("no deferred message")
	}
	msg := msgs[ids[0]]
	detBefore := testkit.Snapshot(t, det)

	liveRoot := emptySkeleton(t)
	live, err := Open(liveRoot, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	liveFS := testkit.OpenFS(t, liveRoot)
	liveBefore := testkit.Snapshot(t, liveRoot)
	dry := safefs.NewDryRun(liveFS)
	into, err := detSpool.IntoMaildrop(live, dry, msg, IntoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if into.ID != "" || !strings.HasPrefix(into.Path, "maildrop/") {
		t.Errorf("dry run result %+v", into)
	}
	var ops []string
	for _, o := range dry.Ops() {
		ops = append(ops, o.Op)
	}
	if !slices.Equal(ops, []string{"create", "chmod", "rename"}) {
		t.Errorf("dry run recorded %v", ops)
	}
	checkUntouched(t, "dry run live", liveBefore, testkit.Snapshot(t, liveRoot), nil)
	checkUntouched(t, "dry run detached", detBefore, testkit.Snapshot(t, det), nil)

	for failAt := 1; failAt <= 3; failAt++ {
		lr := emptySkeleton(t)
		lv, err := Open(lr, Options{})
		if err != nil {
			t.Fatal(err)
		}
		f := safefs.NewFaulty(testkit.OpenFS(t, lr), failAt)
		if _, err := detSpool.IntoMaildrop(lv, f, msg, IntoOptions{}); !errors.Is(err, safefs.ErrInjected) {
			t.Errorf("fail at %d: err %v", failAt, err)
		}
		lv.Close()
		ents, _ := os.ReadDir(filepath.Join(lr, "maildrop"))
		for _, e := range ents {
			if ValidName(e.Name()) {
				t.Errorf("fail at %d: maildrop/%s is a name pickup takes", failAt, e.Name())
			}
		}
		checkUntouched(t, "fault detached", detBefore, testkit.Snapshot(t, det), nil)
	}
}

// TestIntoMaildropRealPickup hands requeued files to a real Postfix: pickup
// must recognise them as requeued (it logs orig_id=), cleanup gives them
// new IDs, and postqueue -j shows each with its sender and recipients.
func TestIntoMaildropRealPickup(t *testing.T) {
	postfixtest.Require(t)
	pf := postfixtest.New(t, postfixtest.Options{})
	det := copyFixture(t)
	detSpool, msgs := mutReadAll(t, det)
	// Messages whose pending recipients are all remote (the instance's
	// relay is closed, so they stay deferred) and that have a sender.
	remoteOnly := func(m *queue.Message) bool {
		if m.Err != nil || m.Sender == "" || len(m.Pending()) == 0 {
			return false
		}
		for _, r := range m.Pending() {
			if strings.HasSuffix(r.Address, "@example.com") || !strings.Contains(r.Address, "@") {
				return false
			}
		}
		return true
	}
	ids := pick(detSpool, msgs, queue.Deferred, 3, remoteOnly)
	ids = append(ids, pick(detSpool, msgs, queue.Hold, 1, remoteOnly)...)
	if len(ids) < 3 {
		t.Fatalf("selection too small: %v", ids)
	}
	live, err := Open(pf.QueueDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	liveFS := testkit.OpenFS(t, pf.QueueDir)
	names := map[string]*queue.Message{}
	for _, id := range ids {
		into, err := detSpool.IntoMaildrop(live, liveFS, msgs[id], IntoOptions{})
		if err != nil {
			t.Fatal(err)
		}
		names[into.ID] = msgs[id]
	}
	pf.Start()
	q := pf.WaitQueued(len(ids), 60*time.Second)
	log := pf.Maillog()
	for name := range names {
		if !strings.Contains(log, "orig_id="+name) {
			t.Errorf("pickup did not treat maildrop/%s as requeued (no orig_id= in the log)", name)
		}
	}
	want := map[string][]string{}
	for _, m := range names {
		want[m.Sender] = pendingAddrs(m)
	}
	for _, e := range q {
		if names[e.QueueID] != nil {
			t.Errorf("message kept its maildrop name %s; cleanup should assign a new ID", e.QueueID)
		}
		var got []string
		for _, r := range e.Recipients {
			got = append(got, r.Address)
		}
		slices.Sort(got)
		w, ok := want[e.Sender]
		if !ok || !slices.Equal(got, w) {
			t.Errorf("queued %s: sender %q rcpt %v; want one of %v", e.QueueID, e.Sender, got, want)
		}
		delete(want, e.Sender)
	}
}

// TestIntoMaildropMoveKeepsID: a file whose name encodes its inode (as on
// the filesystem where Postfix made it) keeps its name when moved, as
// postsuper -r keeps it.
func TestIntoMaildropMoveKeepsID(t *testing.T) {
	det := copyFixture(t)
	detSpool, msgs := mutReadAll(t, det)
	ids := pick(detSpool, msgs, queue.Deferred, 1, func(m *queue.Message) bool { return m.Err == nil })
	if len(ids) != 1 {
		t.Fatal("no deferred message")
	}
	old := msgs[ids[0]]
	newID := NewShortID(0x12345, old.Inode)
	newPath := detSpool.MessagePath(queue.Deferred, newID)
	if err := os.Rename(filepath.Join(det, old.Path), filepath.Join(det, newPath)); err != nil {
		t.Fatal(err)
	}
	msg, err := detSpool.Read(queue.Ref{Queue: queue.Deferred, ID: newID, Path: newPath})
	if err != nil || msg.Err != nil {
		t.Fatal(err, msg.Err)
	}
	liveRoot := emptySkeleton(t)
	live, err := Open(liveRoot, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	detFS, liveFS := testkit.OpenFS(t, det), testkit.OpenFS(t, liveRoot)
	into, err := detSpool.IntoMaildrop(live, liveFS, msg, IntoOptions{Move: func(src, dst string) error {
		return safefs.MoveBetween(detFS, src, liveFS, dst)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !into.Moved || into.ID != newID || into.Path != "maildrop/"+newID {
		t.Errorf("got %+v, want maildrop/%s moved", into, newID)
	}
	if st := lstatT(t, filepath.Join(liveRoot, into.Path)); st.Ino != old.Inode {
		t.Errorf("inode %d, want %d", st.Ino, old.Inode)
	}
}

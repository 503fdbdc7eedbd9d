package qmailq_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/rebuild"
)

// These tests treat an extraction of the real fixture as the detached queue
// and an empty queue built by rebuild.Rebuild (qmail's hier.c owners and
// modes) as the live one.

func injExtract(t *testing.T) string {
	t.Helper()
	return filepath.Join(testkit.Extract(t, testkit.Fixture(t, "qmail-incident", "queue.tar.gz")), testkit.QmailRoot)
}

// injDetached unpacks the fixture queue (the detached one messages are
// injected from), opens it and reads every message.
func injDetached(t *testing.T) (string, *qmailq.Queue, map[string]*queue.Message) {
	t.Helper()
	det := injExtract(t)
	src, err := qmailq.Open(det)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return det, src, testkit.ReadAll(t, src)
}

func injIDs(t *testing.T) rebuild.IDs {
	t.Helper()
	users, groups := testkit.QmailOwners(t)
	return rebuild.IDs{Users: users, Groups: groups}
}

// injLive builds an empty live queue and opens it.
func injLive(t *testing.T, ids rebuild.IDs) (string, *qmailq.Queue, *safefs.FS) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "queue")
	parent, err := safefs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	if err := rebuild.Rebuild(root, 23, false, ids, parent); err != nil {
		t.Fatal(err)
	}
	q, err := qmailq.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return root, q, testkit.OpenFS(t, root)
}

// injTree hashes every entry below root (type, mode, owner, content).
func injTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fmt.Sprintf("%o %d:%d ino=%d mtime=%d", st.Mode, st.Uid, st.Gid, st.Ino, st.Mtim.Sec)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func pendingOf(m *queue.Message) []string {
	var out []string
	for _, r := range m.Pending() {
		out = append(out, r.Address)
	}
	slices.Sort(out)
	return out
}

// injSelect picks preprocessed messages with local and with remote pending
// recipients, a bounce (null sender) and the todo ones.
func injSelect(t *testing.T, msgs map[string]*queue.Message) []*queue.Message {
	t.Helper()
	var ids []string
	for id := range msgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var sel []*queue.Message
	var local, remote, null, todo int
	for _, id := range ids {
		m := msgs[id]
		if m.Err != nil || m.Path == "" || len(m.Pending()) == 0 {
			continue
		}
		hasLocal := slices.ContainsFunc(m.Pending(), func(r queue.Recipient) bool { return r.Channel == queue.ChannelLocal })
		switch {
		case m.Queue == queue.QmailTodo && todo < 3:
			todo++
		case m.Queue == queue.QmailQueue && hasLocal && local < 3:
			local++
		case m.Queue == queue.QmailQueue && m.NullSender && null < 2:
			null++
		case m.Queue == queue.QmailQueue && !hasLocal && remote < 3:
			remote++
		default:
			continue
		}
		sel = append(sel, m)
	}
	if todo == 0 || local == 0 || remote == 0 || null == 0 {
		t.Fatalf("fixture selection incomplete: todo %d local %d remote %d null %d", todo, local, remote, null)
	}
	return sel
}

func TestInject(t *testing.T) {
	ids := injIDs(t)
	det, src, msgs := injDetached(t)
	sel := injSelect(t, msgs)
	detBefore := injTree(t, det)
	liveRoot, live, liveFS := injLive(t, ids)

	// A reader on lock/trigger, as qmail-send.c:trigger_set keeps one.
	trig, err := unix.Open(filepath.Join(liveRoot, "lock", "trigger"), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(trig)

	newIDs := map[uint64]*queue.Message{}
	data := map[uint64][]byte{}
	for _, m := range sel {
		b, err := os.ReadFile(filepath.Join(det, m.Path))
		if err != nil {
			t.Fatal(err)
		}
		id, err := src.Inject(live, liveFS, m, qmailq.InjectOptions{})
		if err != nil {
			t.Fatalf("inject %s: %v", m.ID, err)
		}
		if newIDs[id] != nil {
			t.Fatalf("id %d returned twice", id)
		}
		newIDs[id], data[id] = m, b
	}
	if !maps2equal(detBefore, injTree(t, det)) {
		t.Error("the detached queue changed")
	}
	buf := make([]byte, 64)
	if n, _ := unix.Read(trig, buf); n != len(sel) {
		t.Errorf("trigger pulled %d times, want %d", n, len(sel))
	}

	lq, err := qmailq.Open(liveRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer lq.Close()
	got := testkit.ReadAll(t, lq)
	if len(got) != len(sel) {
		t.Errorf("live queue holds %d messages, injected %d", len(got), len(sel))
	}
	qmailq := ids.Users["qmailq"]
	for id, m := range newIDs {
		lm := got[strconv.FormatUint(id, 10)]
		if lm == nil {
			t.Errorf("%s: new id %d not in the live queue", m.ID, id)
			continue
		}
		wantPath := fmt.Sprintf("mess/%d/%d", id%23, id)
		if lm.Queue != queue.QmailTodo || lm.Path != wantPath || lm.Inode != id || len(lm.Problems) > 0 {
			t.Errorf("%s -> %d: queue %s path %s inode %d problems %q", m.ID, id, lm.Queue, lm.Path, lm.Inode, lm.Problems)
		}
		b, err := os.ReadFile(filepath.Join(liveRoot, wantPath))
		if err != nil || !bytes.Equal(b, data[id]) {
			t.Errorf("%s -> %d: content differs (%v)", m.ID, id, err)
		}
		if lm.Sender != m.Sender || lm.NullSender != m.NullSender {
			t.Errorf("%s -> %d: sender %q, was %q", m.ID, id, lm.Sender, m.Sender)
		}
		if !slices.Equal(pendingOf(lm), pendingOf(m)) {
			t.Errorf("%s -> %d: recipients %v, pending were %v", m.ID, id, pendingOf(lm), pendingOf(m))
		}
		// qmail-queue's files: mess, intd = todo (one inode), owner
		// qmailq, mode 0644 (qmail-queue.md §4.2).
		for _, rel := range []string{wantPath, fmt.Sprintf("intd/%d", id), fmt.Sprintf("todo/%d", id)} {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(liveRoot, rel), &st); err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			if st.Mode&0o7777 != 0o644 || int(st.Uid) != qmailq || st.Mode&unix.S_IFMT != unix.S_IFREG {
				t.Errorf("%s: mode %o uid %d, want 0644 uid %d", rel, st.Mode, st.Uid, qmailq)
			}
			if rel != wantPath && st.Nlink != 2 {
				t.Errorf("%s: %d links, want 2 (intd = todo)", rel, st.Nlink)
			}
		}
		env, err := os.ReadFile(filepath.Join(liveRoot, fmt.Sprintf("todo/%d", id)))
		if err != nil {
			t.Fatal(err)
		}
		wantEnv := fmt.Sprintf("u%d\x00p%d\x00F%s\x00", os.Getuid(), os.Getpid(), m.Sender)
		if !bytes.HasPrefix(env, []byte(wantEnv)) || bytes.HasSuffix(env, []byte("\x00\x00")) {
			t.Errorf("%d: envelope %q", id, env)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(liveRoot, "pid")); len(ents) != 0 {
		t.Errorf("pid/ not empty: %v", ents)
	}
	probs, err := rebuild.CheckQmail(liveRoot, ids, rebuild.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("live queue check: %v", p)
	}
}

func maps2equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestInjectDryRunAndFaults: a recording Mutator changes nothing; a
// failure at any step leaves no queued message (nothing in todo/), only the
// partial states qmail-queue itself leaves when it dies there.
func TestInjectDryRunAndFaults(t *testing.T) {
	ids := injIDs(t)
	_, src, msgs := injDetached(t)
	m := injSelect(t, msgs)[0]

	liveRoot, live, liveFS := injLive(t, ids)
	before := injTree(t, liveRoot)
	dry := safefs.NewDryRun(liveFS)
	id, err := src.Inject(live, dry, m, qmailq.InjectOptions{})
	if err != nil || id != 0 {
		t.Fatalf("dry run: id %d err %v", id, err)
	}
	var ops []string
	for _, o := range dry.Ops() {
		ops = append(ops, o.Op)
	}
	if !slices.Equal(ops, []string{"create", "link", "remove", "create", "link"}) {
		t.Errorf("dry run ops %v", ops)
	}
	if !maps2equal(before, injTree(t, liveRoot)) {
		t.Error("dry run changed the live queue")
	}

	for failAt := 1; failAt <= 5; failAt++ {
		lr, lv, lfs := injLive(t, ids)
		_, err := src.Inject(lv, safefs.NewFaulty(lfs, failAt), m, qmailq.InjectOptions{})
		if !errors.Is(err, safefs.ErrInjected) {
			t.Errorf("fail at %d: err %v", failAt, err)
		}
		if ents, _ := os.ReadDir(filepath.Join(lr, "todo")); len(ents) != 0 {
			t.Errorf("fail at %d: todo/ holds %v", failAt, ents)
		}
	}
}

// writeFakeQmailQueue writes a stand-in for the qmail-queue binary
// interface only: it stores fd 0 and fd 1 in dir and exits with the code
// in dir/code.
func writeFakeQmailQueue(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "qmail-queue")
	script := "#!/bin/sh\ncat > " + dir + "/msg || exit 54\ncat <&1 > " + dir + "/env || exit 54\nexit $(cat " + dir + "/code)\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestInjectViaQmailQueue(t *testing.T) {
	det, src, msgs := injDetached(t)
	// The largest message with pending recipients: more than a pipe
	// buffer, so fd 0 and fd 1 must not deadlock.
	var m *queue.Message
	for _, x := range msgs {
		if x.Err == nil && x.Path != "" && len(x.Pending()) > 0 && (m == nil || x.Size > m.Size) {
			m = x
		}
	}
	mess, err := os.ReadFile(filepath.Join(det, m.Path))
	if err != nil {
		t.Fatal(err)
	}
	if len(mess) < 1<<16 {
		t.Fatalf("largest fixture message has only %d bytes", len(mess))
	}
	dir := t.TempDir()
	bin := writeFakeQmailQueue(t, dir)
	for _, tc := range []struct {
		code      int
		permanent bool
	}{{0, false}, {65, false}, {11, true}, {91, false}} {
		if err := os.WriteFile(filepath.Join(dir, "code"), []byte(strconv.Itoa(tc.code)), 0o644); err != nil {
			t.Fatal(err)
		}
		err := src.InjectViaQmailQueue(context.Background(), bin, m, qmailq.InjectOptions{})
		if tc.code == 0 {
			if err != nil {
				t.Fatalf("exit 0: %v", err)
			}
			gotMsg, _ := os.ReadFile(filepath.Join(dir, "msg"))
			gotEnv, _ := os.ReadFile(filepath.Join(dir, "env"))
			if !bytes.Equal(gotMsg, mess) {
				t.Error("fd 0 did not carry the mess bytes")
			}
			want := "F" + m.Sender + "\x00"
			for _, r := range m.Pending() {
				want += "T" + r.Address + "\x00"
			}
			want += "\x00"
			if string(gotEnv) != want {
				t.Errorf("fd 1 envelope %q, want %q", gotEnv, want)
			}
			continue
		}
		var qe *qmailq.QueueExitError
		if !errors.As(err, &qe) || qe.Code != tc.code || qe.Permanent != tc.permanent {
			t.Errorf("exit %d: err %v", tc.code, err)
		}
	}
}

func TestVirtualDomainsStrip(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "virtualdomains")
	content := "# comment\nexample.com:example.com\n.sub.example.org:sub\nnoprefix.example:\nEXAMPLE.NET:joe\nexample.net:net   \n\nbogus line\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	vd, err := qmailq.LoadVirtualDomains(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range [][2]string{
		{"example.com-alice@example.com", "alice@example.com"},
		{"alice@example.com", "alice@example.com"},             // no prefix
		{"sub-bob@a.sub.example.org", "bob@a.sub.example.org"}, // suffix key
		{"x-bob@noprefix.example", "x-bob@noprefix.example"},   // empty prefix
		{"net-carol@Example.Net", "carol@Example.Net"},         // later line wins, case-insensitive
		{"joe-carol@example.net", "joe-carol@example.net"},
		{"nobody", "nobody"},
	} {
		if got := vd.Strip(tc[0]); got != tc[1] {
			t.Errorf("Strip(%q) = %q, want %q", tc[0], got, tc[1])
		}
	}
	none, err := qmailq.LoadVirtualDomains(filepath.Join(dir, "missing"))
	if err != nil || none.Strip("a-b@c") != "a-b@c" {
		t.Errorf("missing file: %v", err)
	}
}

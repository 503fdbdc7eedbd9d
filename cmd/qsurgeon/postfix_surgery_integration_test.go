package main

// The surgery round trip on a REAL Postfix 3.7 (internal/postfixtest): mail
// from a compromised SASL account and from two legitimate ones defers at a
// closed relay; qsurgeon holds and releases one user's mail while Postfix
// runs (postqueue -j must see it), then, with Postfix stopped, deletes the
// spam, holds and releases one user's mail and requeues the other's. A twin
// of the stopped queue gets the same treatment from the real postsuper
// (-d, -h, -H, -r with the same IDs), and both trees must end up the same.
// Finally the relay is pointed at smtp-sink: exactly the legitimate mail
// arrives, the deleted spam never does.

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/internal/testkit"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
)

// msgTops are the queue directories holding message files and their logs.
var msgTops = map[string]bool{
	"maildrop": true, "incoming": true, "active": true, "deferred": true, "hold": true,
	"corrupt": true, "defer": true, "bounce": true, "trace": true,
}

// compareTwins reports every difference between two queue trees in the
// message queues and log directories: the set of names, each entry's type,
// mode and owner, the contents of every file, and the mtime of every file
// except those in maildrop (postsuper -r and qsurgeon requeue both set it to
// "now", a second apart at most, not necessarily the same second).
func compareTwins(t *testing.T, qsRoot, psRoot string) {
	t.Helper()
	filter := func(s testkit.Tree) testkit.Tree {
		out := testkit.Tree{}
		for rel, st := range s {
			if msgTops[strings.Split(rel, string(filepath.Separator))[0]] {
				out[rel] = st
			}
		}
		return out
	}
	a, b := filter(testkit.Snapshot(t, qsRoot)), filter(testkit.Snapshot(t, psRoot))
	var diffs []string
	for rel, sa := range a {
		sb, ok := b[rel]
		if !ok {
			diffs = append(diffs, "only after qsurgeon: "+rel)
			continue
		}
		top := strings.Split(rel, string(filepath.Separator))[0]
		switch {
		case sa.Mode != sb.Mode || sa.UID != sb.UID || sa.GID != sb.GID:
			diffs = append(diffs, fmt.Sprintf("%s: qsurgeon %v %d:%d, postsuper %v %d:%d", rel, sa.Mode, sa.UID, sa.GID, sb.Mode, sb.UID, sb.GID))
		case sa.Sum != sb.Sum:
			diffs = append(diffs, rel+": contents differ")
		case sa.Mode.IsRegular() && top != "maildrop" && !sa.Mtime.Equal(sb.Mtime):
			diffs = append(diffs, fmt.Sprintf("%s: mtime qsurgeon %v, postsuper %v", rel, sa.Mtime, sb.Mtime))
		}
	}
	for rel := range b {
		if _, ok := a[rel]; !ok {
			diffs = append(diffs, "only after postsuper: "+rel)
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Errorf("qsurgeon and postsuper left different queues:\n  %s", strings.Join(diffs, "\n  "))
	}
}

// twinQueue copies a stopped instance's queue and config into a new
// directory (0755, so that postsuper can work there as mail_owner) and
// points the copy's queue_directory at the copied queue. It returns the
// twin's config and queue directories.
func twinQueue(t *testing.T, pf *postfixtest.Instance) (confDir, queueDir string) {
	t.Helper()
	root, err := os.MkdirTemp("", "qsurgeon-twin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	confDir, queueDir = filepath.Join(root, "conf"), filepath.Join(root, "spool")
	cpA(t, pf.QueueDir, queueDir)
	cpA(t, pf.ConfigDir, confDir)
	// postsuper appends to maillog_file as mail_owner.
	logFile := filepath.Join(root, "maillog")
	if err := os.WriteFile(logFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if u, err := user.Lookup("postfix"); err != nil {
		t.Fatal(err)
	} else {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(logFile, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("postconf", "-c", confDir, "-e", "queue_directory = "+queueDir,
		"maillog_file_prefixes = "+root, "maillog_file = "+logFile).CombinedOutput(); err != nil {
		t.Fatalf("postconf: %v: %s", err, out)
	}
	return confDir, queueDir
}

// postsuperTwin runs the real postsuper on the twin with one flag per ID and
// checks that it acted on every one ("N messages held" etc.).
func postsuperTwin(t *testing.T, confDir, flag string, idList []string) {
	t.Helper()
	args := []string{"-c", confDir}
	for _, id := range idList {
		args = append(args, flag, id)
	}
	out, err := exec.Command("postsuper", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("postsuper %v: %v: %s", args, err, out)
	}
	want := fmt.Sprintf("%d message", len(idList))
	if !strings.Contains(string(out), want) {
		t.Fatalf("postsuper %s on the twin: %q, want %q", flag, out, want)
	}
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestRealPostfixSurgeryRoundTrip(t *testing.T) {
	start := time.Now()
	postfixtest.Require(t)
	users := map[string]string{"spam@example.com": "pw-spam", "legit1@example.com": "pw-l1", "legit2@example.com": "pw-l2"}
	pf := postfixtest.New(t, postfixtest.Options{SASLUsers: users})
	pf.Start()

	// 12 messages: 5 spam, 4 from legit1, 3 from legit2, each with its
	// own Subject and Message-ID.
	type sent struct{ user, subject, msgID string }
	byID := map[string]sent{}
	idsOf := map[string][]string{}
	counts := []struct {
		user string
		n    int
	}{{"spam@example.com", 5}, {"legit1@example.com", 4}, {"legit2@example.com", 3}}
	for i := range 5 {
		for _, c := range counts {
			if i >= c.n {
				continue
			}
			local, _, _ := strings.Cut(c.user, "@")
			s := sent{c.user, fmt.Sprintf("%s message %d", local, i), fmt.Sprintf("surgery-%s-%d", local, i)}
			to := fmt.Sprintf("rcpt%d@remote.example", i)
			id := pf.SendSMTP(postfixtest.Mail{
				From: c.user, To: []string{to},
				AuthUser: c.user, AuthPass: users[c.user],
				XClientAddr: fmt.Sprintf("198.51.100.%d", 10+i),
				Data:        rawMessage(c.user, to, s.subject, s.msgID, "body of "+s.subject),
			})
			byID[id] = s
			idsOf[c.user] = append(idsOf[c.user], id)
		}
	}
	if len(byID) != 12 {
		t.Fatalf("Postfix gave %d distinct queue IDs for 12 messages", len(byID))
	}
	spam, legit1, legit2 := idsOf["spam@example.com"], idsOf["legit1@example.com"], idsOf["legit2@example.com"]
	q := pf.WaitQueued(12, 45*time.Second)
	for _, e := range q {
		if e.QueueName != "deferred" || byID[e.QueueID].user == "" {
			t.Fatalf("unexpected queue entry %+v", e)
		}
	}
	jr := []string{"--yes", "--journal", "none"}

	// qsurgeon selects by SASL user exactly what each user sent.
	for user, want := range idsOf {
		if got := ids(t, pf.QueueDir, "--sasl-user", user); !slices.Equal(sorted(got), sorted(want)) {
			t.Fatalf("list --sasl-user %s: %v, want %v", user, sorted(got), sorted(want))
		}
	}

	// While Postfix runs: hold and release legit1's deferred mail. Postfix's
	// own view (postqueue -j, via showq) must follow, inodes and mtimes
	// must not change.
	type fileID struct {
		ino   uint64
		mtime time.Time
		rel   string
	}
	orig := map[string]fileID{}
	for id, rel := range pf.QueueFiles() {
		fi, err := os.Lstat(filepath.Join(pf.QueueDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		orig[id] = fileID{fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime(), rel}
	}
	queueOf := func() map[string]string {
		m := map[string]string{}
		for _, e := range pf.Postqueue() {
			m[e.QueueID] = e.QueueName
		}
		return m
	}
	if r := qs(t, "", append([]string{"--queue", pf.QueueDir, "hold", "--sasl-user", "legit1@example.com"}, jr...)...); r.code != 0 {
		t.Fatalf("hold while Postfix runs: exit %d: %s", r.code, r.stderr)
	}
	live := queueOf()
	for id, s := range byID {
		want := "deferred"
		if s.user == "legit1@example.com" {
			want = "hold"
		}
		if live[id] != want {
			t.Errorf("after a live hold, postqueue -j shows %s (%s) in %q, want %q", id, s.user, live[id], want)
		}
	}
	for _, id := range legit1 {
		p := filepath.Join(pf.QueueDir, "hold", id)
		if inodeOf(t, p) != orig[id].ino {
			t.Errorf("%s: live hold changed the inode", id)
		}
	}
	if r := qs(t, "", append([]string{"--queue", pf.QueueDir, "release", "--sasl-user", "legit1@example.com"}, jr...)...); r.code != 0 {
		t.Fatalf("release while Postfix runs: exit %d: %s", r.code, r.stderr)
	}
	live = queueOf()
	for id, s := range byID {
		if live[id] != "deferred" {
			t.Errorf("after a live release, postqueue -j shows %s (%s) in %q, want deferred", id, s.user, live[id])
		}
	}
	for id, rel := range pf.QueueFiles() {
		fi, err := os.Lstat(filepath.Join(pf.QueueDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		if o := orig[id]; o.rel != rel || o.ino != fi.Sys().(*syscall.Stat_t).Ino || !o.mtime.Equal(fi.ModTime()) {
			t.Errorf("%s: after live hold+release at %s ino %d mtime %v, was %s ino %d mtime %v",
				id, rel, fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime(), o.rel, o.ino, o.mtime)
		}
	}

	// Stopped: the twin starts from the same bytes.
	pf.Stop()
	twinConf, twinQueueDir := twinQueue(t, pf)
	compareTwins(t, pf.QueueDir, twinQueueDir) // the copy itself is faithful
	before := testkit.Snapshot(t, pf.QueueDir)

	for _, step := range []struct {
		action, user, flag string
		ids                []string
	}{
		{"delete", "spam@example.com", "-d", spam},
		{"hold", "legit1@example.com", "-h", legit1},
		{"release", "legit1@example.com", "-H", legit1},
		{"requeue", "legit2@example.com", "-r", legit2},
	} {
		r := qs(t, "", append([]string{"--queue", pf.QueueDir, step.action, "--sasl-user", step.user}, jr...)...)
		if r.code != 0 {
			t.Fatalf("%s --sasl-user %s: exit %d: %s", step.action, step.user, r.code, r.stderr)
		}
		postsuperTwin(t, twinConf, step.flag, step.ids)
	}

	// The resulting state, as qsurgeon and the file system see it.
	after := testkit.Snapshot(t, pf.QueueDir)
	listed := listByID(t, pf.QueueDir)
	for _, id := range spam {
		if _, ok := listed[id]; ok {
			t.Errorf("spam %s still listed after delete", id)
		}
		for rel := range after {
			if filepath.Base(rel) == id {
				t.Errorf("spam %s: %s remains after delete", id, rel)
			}
		}
	}
	for _, id := range legit1 {
		o := orig[id]
		if str(listed[id]["queue_name"]) != "deferred" || str(listed[id]["path"]) != o.rel {
			t.Errorf("legit1 %s after hold+release: %v at %v, want deferred at %s", id, listed[id]["queue_name"], listed[id]["path"], o.rel)
		}
		if st := after[o.rel]; !st.Equal(before[o.rel]) {
			t.Errorf("legit1 %s: hold+release changed %s: %+v -> %+v (inode, mtime, contents must stay)", id, o.rel, before[o.rel], st)
		}
	}
	for _, id := range legit2 {
		rel := filepath.Join("maildrop", id)
		st, ok := after[rel]
		if !ok {
			t.Errorf("legit2 %s: not in maildrop after requeue", id)
			continue
		}
		if o := before[orig[id].rel]; st.Ino != o.Ino || st.Sum != o.Sum || st.UID != o.UID || st.GID != o.GID || st.Mode != o.Mode {
			t.Errorf("legit2 %s: maildrop file %+v is not the deferred file %+v moved", id, st, o)
		}
		if d := clock.Now().Sub(st.Mtime); d < 0 || d > time.Minute {
			t.Errorf("legit2 %s: requeued file mtime %v, want now (postsuper -r utime)", id, st.Mtime)
		}
		if str(listed[id]["queue_name"]) != "maildrop" {
			t.Errorf("legit2 %s: listed in %v, want maildrop", id, listed[id]["queue_name"])
		}
	}
	if len(listed) != len(legit1)+len(legit2) {
		t.Errorf("after surgery qsurgeon lists %d messages, want %d", len(listed), len(legit1)+len(legit2))
	}
	// ... and exactly what postsuper made of the twin.
	compareTwins(t, pf.QueueDir, twinQueueDir)

	// Deliver: relay to smtp-sink, start, flush. Exactly the legitimate
	// mail arrives, each message once; the deleted spam never does.
	sink := postfixtest.StartSink(t)
	pf.SetRelay(sink.Addr)
	pf.Start()
	pf.Flush()
	pf.WaitQueue(45*time.Second, "an empty queue", func(q []postfixtest.QueueEntry) bool { return len(q) == 0 })
	msgs := sink.WaitMessages(len(legit1)+len(legit2), 10*time.Second)
	var gotIDs, wantIDs []string
	for _, m := range msgs {
		h := m.Header()
		if h == nil {
			t.Errorf("sink message %s does not parse", m.Path)
			continue
		}
		gotIDs = append(gotIDs, h.Get("Message-Id")+" "+h.Get("Subject"))
	}
	for _, id := range append(slices.Clone(legit1), legit2...) {
		s := byID[id]
		wantIDs = append(wantIDs, "<"+s.msgID+"@qsurgeon.test> "+s.subject)
	}
	if !slices.Equal(sorted(gotIDs), sorted(wantIDs)) {
		t.Errorf("smtp-sink received:\n  %s\nwant exactly the legitimate mail:\n  %s", strings.Join(sorted(gotIDs), "\n  "), strings.Join(sorted(wantIDs), "\n  "))
	}
	for _, g := range gotIDs {
		if strings.Contains(g, "surgery-spam-") {
			t.Errorf("deleted spam was delivered: %s", g)
		}
	}
	t.Logf("took %v", time.Since(start))
}

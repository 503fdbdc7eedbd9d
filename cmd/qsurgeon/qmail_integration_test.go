package main

// The "what the real qmail-send must show": queues changed by the
// qsurgeon binary, then run by the real qmail-send (internal/qmailtest),
// with what it delivered and logged compared to what qsurgeon listed.

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/qmailtest"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

// fixtureMe is control/me of the machine that made the qmail fixture.
const fixtureMe = "mailserver.example.com"

func newQmail(t *testing.T) *qmailtest.Instance {
	t.Helper()
	return qmailtest.New(t, qmailtest.Options{Me: fixtureMe})
}

// layFixture replaces the instance's queue by a fixture tarball's queue/,
// extracted in place (the inodes are the prefix file system's own).
func layFixture(t *testing.T, q *qmailtest.Instance, tarball string) {
	t.Helper()
	q.RemoveQueue()
	if err := testkit.Untar(filepath.Join(qmailFixture, tarball), q.Prefix); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(q.QueueDir + ".lost+found") })
}

// pair is one envelope delivery: sender and one recipient.
type pair struct{ sender, rcpt string }

func (p pair) String() string { return fmt.Sprintf("<%s> -> %s", p.sender, p.rcpt) }

// envSender is the envelope sender of a list --format json message ("" for
// the null sender, which list shows as MAILER-DAEMON, as postqueue does).
func envSender(m map[string]any) string {
	if m["null_sender"] == true {
		return ""
	}
	return str(m["sender"])
}

// pendingPairs lists, from `qsurgeon list --format json`, every pending
// recipient of every message with its sender.
func pendingPairs(t *testing.T, root string, filter ...string) map[pair]int {
	t.Helper()
	out := map[pair]int{}
	for _, m := range listByID(t, root, filter...) {
		for _, r := range m["recipients"].([]any) {
			out[pair{envSender(m), str(r.(map[string]any)["address"])}]++
		}
	}
	return out
}

func deliveredPairs(res qmailtest.Result) map[pair]int {
	out := map[pair]int{}
	for _, d := range res.Delivered {
		for _, r := range d.Recipients {
			out[pair{d.Sender, r}]++
		}
	}
	return out
}

// logClean fails the test on any line of qmail-send's log that says it
// could not do its job.
func logClean(t *testing.T, log string) {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		for _, bad := range []string{"trouble", "unable", "alert"} {
			if strings.Contains(l, bad) {
				t.Errorf("qmail-send logged: %s", l)
			}
		}
	}
}

func diffPairs(got, want map[pair]int) []string {
	var d []string
	for p, n := range want {
		if got[p] != n {
			d = append(d, fmt.Sprintf("%v: delivered %d times, want %d", p, got[p], n))
		}
	}
	for p, n := range got {
		if _, ok := want[p]; !ok {
			d = append(d, fmt.Sprintf("%v: delivered %d times, want none", p, n))
		}
	}
	sort.Strings(d)
	return d
}

// 1. rebuild --new, then qmail-inject: delivered; qmail's own instcheck
// passes on the rebuilt queue.
func TestQmailRealRebuildNew(t *testing.T) {
	q := newQmail(t)
	q.RemoveQueue()
	if r := qs(t, "", "rebuild", "--new", q.QueueDir, "--yes"); r.code != 0 {
		t.Fatalf("rebuild --new: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if out, err := q.Instcheck(); err != nil {
		t.Fatalf("instcheck on the rebuilt queue: %v\n%s", err, out)
	}
	if r := qs(t, "", "--queue", q.QueueDir, "check"); r.code != 0 {
		t.Errorf("check of the rebuilt queue: exit %d\n%s", r.code, r.stdout)
	}
	q.Inject("alice@example.com", []string{"bob@example.com", "carol@remote.example"}, []byte("Subject: rebuilt\n\nhello\n"))
	q.Start()
	res := q.WaitIdle(2 * time.Minute)
	want := map[pair]int{{"alice@example.com", "bob@example.com"}: 1, {"alice@example.com", "carol@remote.example"}: 1}
	for _, d := range diffPairs(deliveredPairs(res), want) {
		t.Error(d)
	}
	logClean(t, res.Log)
}

// 2. A detached incident queue: rebuild --new, then requeue --into of
// everything but the compromised account: exactly the legitimate messages
// are delivered, to their pending recipients only; no done recipient gets
// a second copy; none of the account's spam arrives.
func TestQmailRealRequeueIntoFromDetached(t *testing.T) {
	q := newQmail(t)
	det := filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue")
	q.RemoveQueue()
	if r := qs(t, "", "rebuild", "--new", q.QueueDir, "--yes"); r.code != 0 {
		t.Fatalf("rebuild --new: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	keep := []string{"--not-sasl-user", "hello@example.com"}
	want := pendingPairs(t, det, keep...)
	spam := pendingPairs(t, det, "--sasl-user", "hello@example.com")
	if len(want) < 20 || len(spam) < 100 {
		t.Fatalf("fixture: %d legitimate and %d spam deliveries pending", len(want), len(spam))
	}
	done := map[pair]bool{}
	for _, m := range listByID(t, det, keep...) {
		for _, r := range m["done_recipients"].([]any) {
			done[pair{envSender(m), str(r.(map[string]any)["address"])}] = true
		}
	}
	r := qs(t, "", append([]string{"--queue", det, "requeue", "--into", q.QueueDir, "--yes", "--journal", "none"}, keep...)...)
	if r.code != 0 {
		t.Fatalf("requeue --into: exit %d: %s", r.code, r.stderr)
	}
	q.Start()
	res := q.WaitIdle(5 * time.Minute)
	got := deliveredPairs(res)
	for _, d := range diffPairs(got, want) {
		t.Error(d)
	}
	for p := range got {
		if done[p] && want[p] == 0 {
			t.Errorf("%v: done before, delivered again", p)
		}
	}
	// diffPairs refuses any delivery not wanted; the spam is not.
	for p := range spam {
		if got[p] > want[p] {
			t.Errorf("%v: spam of the compromised account delivered", p)
		}
	}
	logClean(t, res.Log)
}

// 3. The broken twin: repair (one pass), then check exits 0; qmail-send
// starts, logs no trouble, unable or alert line, delivers every recoverable
// recipient and the bounces the queue owed; a second repair is a no-op.
func TestQmailRealRepairBrokenTwin(t *testing.T) {
	q := newQmail(t)
	layFixture(t, q, "broken.tar.gz")
	if r := qs(t, "", "--queue", q.QueueDir, "repair", "--yes"); r.code != 0 {
		t.Fatalf("repair: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := qs(t, "", "--queue", q.QueueDir, "check"); r.code != 0 {
		t.Fatalf("check after one repair: exit %d\n%s", r.code, r.stdout)
	}
	before := testkit.Snapshot(t, q.QueueDir)
	if r := qs(t, "", "--queue", q.QueueDir, "repair", "--yes"); r.code != 0 {
		t.Fatalf("second repair: exit %d: %s", r.code, r.stderr)
	}
	if d := before.Diff(testkit.Snapshot(t, q.QueueDir)); d != nil {
		t.Fatalf("the second repair changed the queue: %v", d)
	}
	want := pendingPairs(t, q.QueueDir)
	owed := 0
	for _, m := range listByID(t, q.QueueDir) {
		// qmail-send.c:injectbounce(): a bounce for every message with a
		// bounce/ file once it is done; none for a double bounce's.
		if m["bouncing"] == true && envSender(m) != "#@[]" {
			owed++
		}
	}
	if len(want) < 1000 || owed < 10 {
		t.Fatalf("repaired queue: %d pending deliveries, %d bounces owed", len(want), owed)
	}
	q.Start()
	res := q.WaitIdle(8 * time.Minute)
	logClean(t, res.Log)
	got := deliveredPairs(res)
	// Every pending recipient exactly once; what else arrived are the
	// bounces qmail-send made (sender <> or #@[]), one per owed bounce.
	extra := 0
	for p, n := range got {
		switch w := want[p]; {
		case n == w:
		case n > w && (p.sender == "" || p.sender == "#@[]"):
			extra += n - w
		default:
			t.Errorf("%v: delivered %d times, want %d", p, n, w)
		}
	}
	for p, w := range want {
		if got[p] < w {
			t.Errorf("%v: delivered %d times, want %d", p, got[p], w)
		}
	}
	if bounces := strings.Count(res.Log, "\nbounce msg "); extra != owed || bounces != owed {
		t.Errorf("bounces: %d delivered, %d logged, %d owed", extra, bounces, owed)
	}
}

// hold makes a started qmail-send deliver nothing (it still holds
// lock/sendmutex and preprocesses todo/); release undoes it.
func hold(q *qmailtest.Instance, on bool) {
	v := ""
	if on {
		v = "0"
	}
	q.SetControl("concurrencylocal", v)
	q.SetControl("concurrencyremote", v)
}

// twoMessages injects alice's and bob's message with the real qmail-inject
// and lets qmail-send preprocess them (todo -> info/local/remote) without
// delivering.
func twoMessages(t *testing.T, q *qmailtest.Instance) (alice, bob map[pair]int) {
	t.Helper()
	q.Inject("alice@example.com", []string{"a1@remote.example", "dave@example.com"}, []byte("Subject: from alice\n\nalice\n"))
	q.Inject("bob@example.com", []string{"b1@remote.example"}, []byte("Subject: from bob\n\nbob\n"))
	hold(q, true)
	q.Start()
	if res := q.WaitIdle(time.Minute); len(res.Delivered) != 0 {
		t.Fatalf("delivered while held: %v", res.Delivered)
	}
	hold(q, false)
	if n := len(listByID(t, q.QueueDir, "--sender", "*@example.com")); n != 2 {
		t.Fatalf("%d messages queued, want 2", n)
	}
	return map[pair]int{{"alice@example.com", "a1@remote.example"}: 1, {"alice@example.com", "dave@example.com"}: 1},
		map[pair]int{{"bob@example.com", "b1@remote.example"}: 1}
}

// 4. quarantine, then restore: delivered once.
func TestQmailRealQuarantineRestore(t *testing.T) {
	q := newQmail(t)
	alice, bob := twoMessages(t, q)
	dir := filepath.Join(t.TempDir(), "held")
	if r := qs(t, "", "--queue", q.QueueDir, "quarantine", dir, "--sender", "alice@example.com", "--yes", "--journal", "none"); r.code != 0 {
		t.Fatalf("quarantine: exit %d: %s", r.code, r.stderr)
	}
	q.Start()
	res := q.WaitIdle(2 * time.Minute)
	for _, d := range diffPairs(deliveredPairs(res), bob) {
		t.Errorf("while alice's message is quarantined: %s", d)
	}
	if r := qs(t, "", "--queue", q.QueueDir, "restore", dir, "--all", "--yes", "--journal", "none"); r.code != 0 {
		t.Fatalf("restore: exit %d: %s", r.code, r.stderr)
	}
	if r := qs(t, "", "--queue", q.QueueDir, "check"); r.code != 0 {
		t.Errorf("check after restore: exit %d\n%s", r.code, r.stdout)
	}
	q.Start()
	res = q.WaitIdle(2 * time.Minute)
	want := map[pair]int{}
	for p, n := range alice {
		want[p] = n
	}
	for p, n := range bob {
		want[p] = n
	}
	for _, d := range diffPairs(deliveredPairs(res), want) {
		t.Errorf("after restore: %s", d)
	}
	logClean(t, res.Log)
}

// 5. delete is refused while qmail-send runs (exit 5); after it stops,
// delete: nothing of the selection is delivered, everything else is.
func TestQmailRealDeleteRefusedWhileRunning(t *testing.T) {
	q := newQmail(t)
	_, bob := twoMessages(t, q)
	hold(q, true)
	q.Start()
	r := qs(t, "", "--queue", q.QueueDir, "delete", "--sender", "alice@example.com", "--yes", "--journal", "none")
	if r.code != exitLocked || !strings.Contains(r.stderr, "qmail-send") {
		t.Errorf("delete while qmail-send runs: exit %d, want %d: %s", r.code, exitLocked, r.stderr)
	}
	q.Stop()
	hold(q, false)
	if n := len(listByID(t, q.QueueDir, "--sender", "alice@example.com")); n != 1 {
		t.Fatalf("the refused delete changed the queue: %d of alice's messages left", n)
	}
	if r := qs(t, "", "--queue", q.QueueDir, "delete", "--sender", "alice@example.com", "--yes", "--journal", "none"); r.code != 0 {
		t.Fatalf("delete: exit %d: %s", r.code, r.stderr)
	}
	q.Start()
	res := q.WaitIdle(2 * time.Minute)
	for _, d := range diffPairs(deliveredPairs(res), bob) {
		t.Error(d)
	}
	logClean(t, res.Log)
}

// 6. check reports every defect of the broken twin with its own kind and a
// severity; its exit code says that mail is at risk.
func TestQmailCheckBrokenTwinKinds(t *testing.T) {
	base := extract(t, filepath.Join(qmailFixture, "broken.tar.gz"))
	root := filepath.Join(base, "queue")
	acct := []string{"--user", "qmailq=992", "--user", "qmails=990", "--user", "qmailr=991", "--group", "qmail=995"}
	r := qs(t, "", append([]string{"--queue", root, "--format", "json", "check"}, acct...)...)
	if r.code != exitAtRisk {
		t.Fatalf("check: exit %d, want %d (mail at risk): %s", r.code, exitAtRisk, r.stderr)
	}
	probs := jsonLines(t, r.stdout)
	d := testkit.BrokenDefects(t)
	// The kind each defect must be reported as (besides id-not-inode,
	// which every message of a copied queue has).
	wantKind := map[string][]string{
		"A01": {"mess-without-envelope"}, "A02": {"zero-length-mess"}, "A03": {"stale-pid"},
		"A04": {"wrong-subdir"}, "A05": {"wrong-subdir", "extra-split-dir"}, "A06": {"info-without-mess"},
		"A07": {"mess-without-envelope"}, "A08": {"todo-without-intd"}, "A09": {"zero-length-mess"},
		"A10": {"wrong-owner", "wrong-mode"}, "A11": {"missing"},
	}
	for _, p := range probs {
		switch str(p["severity"]) {
		case "at-risk", "fault", "note":
		default:
			t.Errorf("problem without a severity: %v", p)
		}
	}
	for _, def := range d.Defects {
		kinds, ok := wantKind[def.Defect]
		if !ok {
			t.Errorf("%s %s: a defect this test does not know", def.Defect, def.Kind)
			continue
		}
		reported := func(kind, id, path string) bool {
			for _, p := range probs {
				if str(p["kind"]) == kind && (id != "" && (str(p["id"]) == id || strings.Contains(str(p["path"]), id)) || path != "" && str(p["path"]) == path) {
					return true
				}
			}
			return false
		}
		if len(def.MessageIDs) > 0 {
			// Every id under each of the defect's kinds (A05: one of its
			// two messages lies in an existing wrong subdirectory, the
			// other beyond conf-split: both are wrong-subdir).
			for _, id := range def.MessageIDs {
				if !reported(kinds[0], fmt.Sprint(id), "") {
					t.Errorf("%s %s: message %d not reported as %s", def.Defect, def.Kind, id, kinds[0])
				}
			}
			continue
		}
		// Queue-level defects: every path they touched, under one of the
		// defect's kinds.
		for _, det := range def.Details {
			path, _ := det["path"].(string)
			if path == "" {
				path, _ = det["removed"].(string)
			}
			path = strings.TrimPrefix(path, "queue/")
			hit := false
			for _, kind := range kinds {
				hit = hit || reported(kind, "", path)
			}
			if !hit {
				t.Errorf("%s %s: %s not reported as %v", def.Defect, def.Kind, path, kinds)
			}
		}
	}
}

// --smtpd-uid: qmail-smtpd run as vpopmail (uid 89 here) makes the real
// qmail-queue write "invoked by uid 89"; the SMTP-AUTH header after it is
// not trusted until --smtpd-uid 89 says so, and a selection by AUTH user
// that finds nothing says which flag to add. A local user's forged header
// (uid 1000) stays untrusted.
func TestQmailSMTPDUID(t *testing.T) {
	q := newQmail(t)
	auth := func(user string) []byte {
		return []byte("Received: from unknown (HELO pc) (" + user + "@192.0.2.7)\n  by mailserver.example.com with ESMTPA; 7 Dec 2026 10:00:00 -0000\n" +
			"From: " + user + "\nSubject: submitted\n\nbody\n")
	}
	q.QueueAs(89, "carol@example.com", []string{"x@remote.example"}, auth("carol@example.com"))
	q.QueueAs(1000, "mallory@example.com", []string{"y@remote.example"}, auth("dave@example.com"))

	r := qs(t, "", "--queue", q.QueueDir, "--format", "ids", "list", "--sasl-user", "carol@example.com")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("untrusted uid 89 selected: exit %d %q", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "--smtpd-uid 89") || !strings.Contains(r.stderr, "invoked by uid 89") {
		t.Errorf("no hint naming --smtpd-uid 89: %s", r.stderr)
	}
	r = qs(t, "", "--queue", q.QueueDir, "--smtpd-uid", "89", "--format", "json", "list", "--sasl-user", "carol@example.com")
	got := jsonLines(t, r.stdout)
	if r.code != 0 || len(got) != 1 || str(got[0]["sasl_username"]) != "carol@example.com" || str(got[0]["client_address"]) != "192.0.2.7" {
		t.Fatalf("--smtpd-uid 89: exit %d %v %s", r.code, got, r.stderr)
	}
	r = qs(t, "", "--queue", q.QueueDir, "--smtpd-uid", "89", "--format", "ids", "list", "--sasl-user", "dave@example.com")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Errorf("the header a local user (uid 1000) wrote was trusted: %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "--smtpd-uid 1000") {
		t.Errorf("no hint for uid 1000: %s", r.stderr)
	}
}

// check and repair --send-log: an emptied info is recreated with the sender
// of qmail-send's "info msg" line, and repair says so.
func TestQmailRepairSendLog(t *testing.T) {
	base := extract(t, filepath.Join(qmailFixture, "queue.tar.gz"))
	root := filepath.Join(base, "queue")
	acct := []string{"--user", "qmailq=992", "--user", "qmails=990", "--user", "qmailr=991", "--group", "qmail=995"}
	msgs := listByID(t, root, "--sender", "dave@example.com")
	var id string
	for k, m := range msgs {
		if str(m["queue_name"]) == "queue" && (id == "" || k < id) {
			id = k
		}
	}
	if id == "" {
		t.Fatal("fixture: no queued message of dave@example.com")
	}
	info := filepath.Join(root, str(msgs[id]["path"]))
	info = strings.Replace(info, "/mess/", "/info/", 1)
	if err := os.Truncate(info, 0); err != nil {
		t.Fatal(err)
	}
	logf := filepath.Join(qmailFixture, "qmail-send.log")
	r := qs(t, "", append([]string{"--queue", root, "--format", "json", "check", "--send-log", logf}, acct...)...)
	if r.code != exitAtRisk {
		t.Fatalf("check: exit %d, want %d: %s", r.code, exitAtRisk, r.stderr)
	}
	found := false
	for _, p := range jsonLines(t, r.stdout) {
		if str(p["kind"]) == "empty-info" && str(p["id"]) == id {
			found = strings.Contains(str(p["fix"]), "<dave@example.com> from qmail-send's log") && str(p["severity"]) == "at-risk"
		}
	}
	if !found {
		t.Fatalf("no empty-info problem for %s with the sender from the log:\n%s", id, r.stdout)
	}
	if r := qs(t, "", append([]string{"--queue", root, "repair", "--yes", "--send-log", logf}, acct...)...); r.code != 0 {
		t.Fatalf("repair: exit %d: %s", r.code, r.stderr)
	}
	if r := qs(t, "", append([]string{"--queue", root, "check"}, acct...)...); r.code != 0 {
		t.Fatalf("check after repair: exit %d\n%s", r.code, r.stdout)
	}
	n := 0
	for _, m := range listByID(t, root, "--sender", "dave@example.com") {
		if str(m["queue_name"]) == "queue" {
			n++
		}
	}
	if n != len(msgs)-countTodo(msgs) {
		t.Errorf("dave's queued messages after repair: %d, want %d", n, len(msgs)-countTodo(msgs))
	}
}

func countTodo(msgs map[string]map[string]any) (n int) {
	for _, m := range msgs {
		if str(m["queue_name"]) != "queue" {
			n++
		}
	}
	return n
}

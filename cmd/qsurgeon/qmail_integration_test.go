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

package logjoin_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/logjoin"
	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// messages reads every message of a queue.
func messages(t *testing.T, src queue.Source) []*queue.Message {
	t.Helper()
	var out []*queue.Message
	err := src.Walk(context.Background(), func(r queue.Ref) error {
		m, err := src.Read(r)
		if err != nil {
			return fmt.Errorf("%v: %w", r, err)
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func analyze(t *testing.T, files ...string) *maillog.Analyzer {
	t.Helper()
	a := maillog.NewAnalyzer()
	st := maillog.ReadAll(files, maillog.Options{}, a)
	if len(st.Problems) > 0 || st.Lines == 0 {
		t.Fatalf("reading %v: %+v", files, st)
	}
	return a
}

// text is a log file's text, gunzipped when it is a .gz.
func text(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(file, ".gz") {
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lineOf returns line n (1-based) of a log file.
func lineOf(t *testing.T, file string, n int64) string {
	t.Helper()
	lines := strings.Split(text(t, file), "\n")
	if n < 1 || int(n) > len(lines) {
		t.Fatalf("%s has no line %d", file, n)
	}
	return lines[n-1]
}

var qidLine = regexp.MustCompile(`: ([0-9A-Za-z]{5,}): (client=|uid=|message-id=|from=|removed$)`)
var nonDelivery = regexp.MustCompile(`: sender non-delivery notification: ([0-9A-Za-z]+)$`)

// openInLog is, read from the log text alone, the queue IDs the log
// leaves open: seen entering (smtpd, pickup, cleanup, qmgr, a bounce's
// notification) and never "removed".
func openInLog(t *testing.T, files ...string) map[string]bool {
	open := map[string]bool{}
	for _, f := range files {
		for _, l := range strings.Split(text(t, f), "\n") {
			if m := qidLine.FindStringSubmatch(l); m != nil {
				open[m[1]] = m[2] != "removed"
			}
			if m := nonDelivery.FindStringSubmatch(l); m != nil {
				if _, seen := open[m[1]]; !seen {
					open[m[1]] = true
				}
			}
		}
	}
	for id, o := range open {
		if !o {
			delete(open, id)
		}
	}
	return open
}

// checkPostfix joins a Postfix queue with its logs and checks every tie
// against the queue file's own SASL record and the log line it names, and
// the disagreement counts against the log text.
func checkPostfix(t *testing.T, msgs []*queue.Message, logs []string) (tied map[string]string) {
	t.Helper()
	j := logjoin.New(analyze(t, logs...))
	open := openInLog(t, logs...)
	tied = map[string]string{}
	noteAll(t, j, msgs, open, func(m *queue.Message) {
		tie, ok, why := j.Lookup(m)
		if !ok {
			if m.SASLUser != "" && open[m.ID] {
				t.Errorf("%s (sasl_username %s in the queue file) not tied: %s", m.ID, m.SASLUser, why)
			}
			if why == "" {
				t.Errorf("%s: not tied and no reason", m.ID)
			}
			if got := j.User(m); got != strings.ToLower(m.SASLUser) {
				t.Errorf("%s: User %q without a tie, the queue file says %q", m.ID, got, m.SASLUser)
			}
			return
		}
		if !strings.EqualFold(tie.User, m.SASLUser) {
			t.Errorf("%s: the log ties it to %q, the queue file says %q", m.ID, tie.User, m.SASLUser)
		}
		l := lineOf(t, tie.Via.File, tie.Via.Line)
		if !strings.Contains(l, ": "+m.ID+": client=") || !strings.Contains(l, "sasl_username="+tie.User) {
			t.Errorf("%s: tied through %v, which is %q", m.ID, tie.Via, l)
		}
		if j.User(m) != strings.ToLower(tie.User) {
			t.Errorf("%s: User %q, tie %q", m.ID, j.User(m), tie.User)
		}
		tied[m.ID] = tie.User
	})
	return tied
}

// noteAll notes every queue message in j and calls each with it, then
// checks the join's counts against open (the IDs the log text leaves
// open): Seen, NoLog (queued, no log line) and LogOnly (open in the log,
// not queued). It returns NoLog.
func noteAll(t *testing.T, j *logjoin.Join, msgs []*queue.Message, open map[string]bool, each func(*queue.Message)) int {
	t.Helper()
	noLog, inQueue := 0, map[string]bool{}
	for _, m := range msgs {
		inQueue[m.ID] = true
		j.Note(m)
		if !open[m.ID] {
			noLog++
		}
		each(m)
	}
	logOnly := 0
	for id := range open {
		if !inQueue[id] {
			logOnly++
		}
	}
	if j.Seen != len(msgs) || j.NoLog != noLog || j.LogOnly() != logOnly {
		t.Errorf("seen %d no-log %d log-only %d, want %d %d %d", j.Seen, j.NoLog, j.LogOnly(), len(msgs), noLog, logOnly)
	}
	return noLog
}

// The bundled Postfix fixture: its queue and the real maillog the same
// Postfix wrote while making it.
func TestPostfixFixture(t *testing.T) {
	root := filepath.Join(testkit.Extract(t, testkit.Fixture(t, "postfix-incident", "queue.tar.gz")), "postfix-incident-a")
	sp, err := postfixq.Open(root, postfixq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	msgs := messages(t, sp)
	tied := checkPostfix(t, msgs, []string{testkit.Fixture(t, "postfix-incident", "maillog.txt")})
	per := map[string]int{}
	for _, u := range tied {
		per[u]++
	}
	// the fixture's README: 226 of hello@'s messages are still queued
	if per["hello@example.com"] != 226 || len(per) < 2 {
		t.Errorf("tied per user: %v", per)
	}
}

// The bundled qmail fixture: its queue and the real qmail-send log of the
// run that made it. qmail-send logs no user: without vchkpw logins no
// message may be tied, and each says why; the messages injected after
// qmail-send stopped have no log line.
func TestQmailFixture(t *testing.T) {
	root := filepath.Join(testkit.Extract(t, testkit.Fixture(t, "qmail-incident", "queue.tar.gz")), "queue")
	q, err := qmailq.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	msgs := messages(t, q)
	logf := testkit.Fixture(t, "qmail-incident", "qmail-send.log")
	j := logjoin.New(analyze(t, logf))
	b, _ := os.ReadFile(logf)
	open := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		switch f := strings.Fields(l); {
		case len(f) == 3 && f[0] == "new" && f[1] == "msg":
			open[f[2]] = true
		case len(f) == 3 && f[0] == "end" && f[1] == "msg":
			delete(open, f[2])
		}
	}
	noLog := noteAll(t, j, msgs, open, func(m *queue.Message) {
		if tie, ok, why := j.Lookup(m); ok || why == "" {
			t.Errorf("%s tied to %q with no login in the logs (%q)", m.ID, tie.User, why)
		}
	})
	if noLog < 6 || noLog == len(msgs) {
		t.Errorf("%d of %d messages without a log line; the 6 todo/ ones at least, not all", noLog, len(msgs))
	}
}

// A real Postfix of the test's own, with real SASL: messages that defer
// stay in its queue; the join ties each to the account that sent it, reads
// the log Postfix itself rotated and gzipped, and finds no disagreement.
func TestRealPostfix(t *testing.T) {
	postfixtest.Require(t)
	users := map[string]string{"alice@example.com": "pw-a", "hello@example.com": "pw-h"}
	pf := postfixtest.New(t, postfixtest.Options{SASLUsers: users, LocalUsers: []string{"bob"}})
	pf.Start()
	sent := map[string]string{}
	send := func(i int, user string) {
		m := postfixtest.Mail{From: user, To: []string{fmt.Sprintf("r%d@remote%d.example", i, i%3)}, AuthUser: user, AuthPass: users[user],
			XClientAddr: fmt.Sprintf("203.0.113.%d", 10+i)}
		if i%4 == 0 {
			m.To = append(m.To, "bob@example.com") // one local delivery beside the deferral
		}
		id, err := pf.TrySendSMTP(m)
		if err != nil {
			t.Fatalf("send %d as %s: %v\n%s", i, user, err, pf.MaillogTail(20))
		}
		sent[id] = user
	}
	for i := 0; i < 6; i++ {
		send(i, "alice@example.com")
	}
	pf.WaitQueue(30*time.Second, "first deferrals", func([]postfixtest.QueueEntry) bool {
		return strings.Count(pf.Maillog(), "status=deferred") >= 6
	})
	// Postfix rotates and gzips its own maillog_file (postfix(1) logrotate)
	if out, err := exec.Command("postfix", "-c", pf.ConfigDir, "logrotate").CombinedOutput(); err != nil {
		t.Fatalf("postfix logrotate: %v\n%s", err, out)
	}
	for i := 6; i < 16; i++ {
		send(i, "hello@example.com")
	}
	// one message without AUTH: in the queue, tied to no one
	plain, err := pf.TrySendSMTP(postfixtest.Mail{From: "x@example.net", To: []string{"z@remote.example"}})
	if err != nil {
		t.Fatal(err)
	}
	pf.WaitQueue(30*time.Second, "all deferrals", func([]postfixtest.QueueEntry) bool {
		return strings.Count(pf.Maillog(), "status=deferred") >= 10+1 // the log since the rotation
	})
	pf.Stop()
	rot, _ := filepath.Glob(pf.LogFile + ".*")
	if len(rot) != 1 || !strings.HasSuffix(rot[0], ".gz") {
		t.Fatalf("postfix logrotate left %v", rot)
	}
	sp, err := postfixq.Open(pf.QueueDir, postfixq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	msgs := messages(t, sp)
	if len(msgs) != len(sent)+1 {
		t.Fatalf("%d messages queued, %d sent", len(msgs), len(sent)+1)
	}
	// the rotated set given newest first, as a user types it
	for _, logs := range [][]string{{pf.LogFile, rot[0]}} {
		tied := checkPostfix(t, msgs, logs)
		if len(tied) != len(sent) || tied[plain] != "" {
			t.Errorf("%v: tied %d of %d (the unauthenticated %s: %q)", logs, len(tied), len(sent), plain, tied[plain])
		}
		for id, u := range sent {
			if tied[id] != u {
				t.Errorf("%s: tied to %q, sent by %s", id, tied[id], u)
			}
		}
	}
}

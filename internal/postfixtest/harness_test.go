package postfixtest_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
)

// TestHarness drives a real Postfix through everything the harness offers:
// SMTP (plain, XCLIENT, SASL PLAIN and LOGIN), sendmail, local delivery,
// postsuper -h/-H, postqueue -j, postcat, relay to smtp-sink, stop, and a
// maildrop file written while stopped.
func TestHarness(t *testing.T) {
	postfixtest.Require(t)
	start := time.Now()
	pf := postfixtest.New(t, postfixtest.Options{
		SASLUsers:  map[string]string{"alice@example.com": "pw-alice", "bob": "pw-bob"},
		LocalUsers: []string{"alice"},
	})
	if v := pf.PostconfValue("queue_directory"); v != pf.QueueDir {
		t.Fatalf("queue_directory = %q, want %q", v, pf.QueueDir)
	}
	pf.Start()

	// A wrong password is refused by smtpd (535) through the auth server.
	_, err := pf.TrySendSMTP(postfixtest.Mail{From: "x@example.com", To: []string{"y@remote.example"},
		AuthUser: "alice@example.com", AuthPass: "wrong"})
	var se *postfixtest.SMTPError
	if !errors.As(err, &se) || se.Stage != "AUTH" || se.Code != 535 {
		t.Fatalf("bad password: got %v, want SMTP AUTH 535", err)
	}

	plain := pf.SendSMTP(postfixtest.Mail{From: "plain@example.com", To: []string{"r1@remote.example"}})
	xclient := pf.SendSMTP(postfixtest.Mail{From: "bot@example.com", To: []string{"r2@remote.example", "r3@other.example"},
		XClientAddr: "203.0.113.7", XClientName: "bot.example.net", HELO: "WIN-BOT"})
	authed := pf.SendSMTP(postfixtest.Mail{From: "alice@example.com", To: []string{"r4@remote.example", "alice@example.com"},
		AuthUser: "alice@example.com", AuthPass: "pw-alice",
		Data: postfixtest.NewMessage("alice@example.com", []string{"r4@remote.example", "alice@example.com"}, "from alice", "hi\n.dot line\n")})
	login := pf.SendSMTP(postfixtest.Mail{From: "bob@example.com", To: []string{"r5@remote.example"},
		AuthUser: "bob", AuthPass: "pw-bob", AuthMech: "LOGIN", XClientAddr: "2001:db8::7"})
	pf.Sendmail("cron@example.com", []string{"ops@remote.example"}, nil)

	if got := pf.SASLLog(); !slices.Equal(got, []string{"FAIL alice@example.com", "OK alice@example.com", "OK bob"}) {
		t.Errorf("SASL log = %q", got)
	}

	q := pf.WaitQueued(5, 30*time.Second)
	ids := map[string]postfixtest.QueueEntry{}
	var sendmailID string
	for _, e := range q {
		ids[e.QueueID] = e
		if e.Sender == "cron@example.com" {
			sendmailID = e.QueueID
		}
	}
	for _, id := range []string{plain, xclient, authed, login, sendmailID} {
		if e, ok := ids[id]; !ok || e.QueueName != "deferred" {
			t.Fatalf("queue id %q: %+v not deferred; queue %+v", id, e, q)
		}
	}
	// The local recipient was delivered by local(8), the remote one defers.
	if rc := ids[authed].Recipients; len(rc) != 1 || rc[0].Address != "r4@remote.example" ||
		!strings.Contains(rc[0].DelayReason, "Connection refused") {
		t.Errorf("authed message recipients = %+v", rc)
	}
	mbox, err := os.ReadFile(filepath.Join(pf.MailDir, "alice"))
	if err != nil || !strings.Contains(string(mbox), "Subject: from alice") || !strings.Contains(string(mbox), "\n.dot line\n") {
		t.Errorf("alice's mailbox: %v\n%s", err, mbox)
	}

	if out, err := pf.Postsuper("-h", plain); err != nil || !strings.Contains(out, "1 message") {
		t.Fatalf("postsuper -h: %v: %s", err, out)
	}
	q = pf.Postqueue()
	count := map[string]int{}
	for _, e := range q {
		count[e.QueueName]++
	}
	if len(q) != 5 || count["hold"] != 1 || count["deferred"] != 4 {
		t.Fatalf("after hold: %v", count)
	}
	if raw := pf.PostqueueJSON(); len(raw) != 5 || raw[0]["queue_id"] == nil {
		t.Fatalf("PostqueueJSON = %v", raw)
	}
	files := pf.QueueFiles()
	if p := files[plain]; !strings.HasPrefix(p, "hold/") {
		t.Errorf("held file at %q", p)
	}
	if p := files[authed]; !strings.HasPrefix(p, "deferred/") {
		t.Errorf("deferred file at %q", p)
	}

	// The queue files carry what smtpd saw (postcat -o shows offsets).
	pc := pf.Postcat("-o", pf.QueueFile(authed))
	for _, want := range []string{"sasl_method=PLAIN", "sasl_username=alice@example.com", "sender: alice@example.com", "done_recipient: alice@example.com"} {
		if !strings.Contains(pc, want) {
			t.Errorf("postcat of %s lacks %q:\n%s", authed, want, pc)
		}
	}
	pc = pf.Postcat("-q", xclient)
	for _, want := range []string{"client_address=203.0.113.7", "client_name=bot.example.net", "helo_name=WIN-BOT"} {
		if !strings.Contains(pc, want) {
			t.Errorf("postcat -q %s lacks %q:\n%s", xclient, want, pc)
		}
	}
	pc = pf.Postcat("-q", login)
	for _, want := range []string{"sasl_method=LOGIN", "sasl_username=bob", "client_address=2001:db8::7"} {
		if !strings.Contains(pc, want) {
			t.Errorf("postcat -q %s lacks %q:\n%s", login, want, pc)
		}
	}
	if pc := pf.Postcat("-q", plain); strings.Contains(pc, "sasl_username") {
		t.Errorf("unauthenticated message has a sasl_username:\n%s", pc)
	}

	// Point the relay at smtp-sink: the four deferred messages arrive, the
	// held one stays.
	sink := postfixtest.StartSink(t)
	pf.SetRelay(sink.Addr)
	pf.Flush()
	msgs := sink.WaitMessages(4, 30*time.Second)
	pf.WaitQueue(30*time.Second, "only the held message left", func(q []postfixtest.QueueEntry) bool {
		return len(q) == 1 && q[0].QueueID == plain && q[0].QueueName == "hold"
	})
	var froms []string
	for _, m := range msgs {
		froms = append(froms, m.MailFrom)
	}
	if want := []string{"alice@example.com", "bob@example.com", "bot@example.com", "cron@example.com"}; !slices.Equal(froms, want) {
		t.Fatalf("sink got senders %q, want %q", froms, want)
	}
	if m := msgs[2]; !slices.Equal(m.Rcpts, []string{"r2@remote.example", "r3@other.example"}) &&
		!slices.Equal(m.Rcpts, []string{"r3@other.example", "r2@remote.example"}) {
		t.Errorf("bot message recipients at sink = %q", m.Rcpts)
	}
	if h := msgs[0].Header(); h == nil || h.Get("Subject") != "from alice" {
		t.Errorf("alice's message header at sink = %v", h)
	}

	// Release the held message; it arrives too.
	if out, err := pf.Postsuper("-H", plain); err != nil {
		t.Fatalf("postsuper -H: %v: %s", err, out)
	}
	pf.Flush()
	msgs = sink.WaitMessages(5, 30*time.Second)
	if !slices.ContainsFunc(msgs, func(m postfixtest.SinkMessage) bool { return m.MailFrom == "plain@example.com" }) {
		t.Errorf("released message did not arrive: %+v", msgs)
	}
	pf.WaitQueue(30*time.Second, "an empty queue", func(q []postfixtest.QueueEntry) bool { return len(q) == 0 })

	// Stopped: sendmail leaves a postdrop file in maildrop.
	pf.Stop()
	pf.Sendmail("late@example.com", []string{"x@remote.example"}, []byte("Subject: late\n\nwhile down\n"))
	files = pf.QueueFiles()
	if len(files) != 1 {
		t.Fatalf("queue files while stopped = %v", files)
	}
	for id, p := range files {
		if !strings.HasPrefix(p, "maildrop/") {
			t.Fatalf("stopped sendmail wrote %s", p)
		}
		if pc := pf.Postcat(filepath.Join(pf.QueueDir, p)); !strings.Contains(pc, "sender: late@example.com") {
			t.Errorf("maildrop file %s: %s", id, pc)
		}
	}
	t.Logf("harness test took %v", time.Since(start))
}

// TestTwoInstances runs two instances at once in one process: separate
// ports, directories and queues.
func TestTwoInstances(t *testing.T) {
	postfixtest.Require(t)
	a := postfixtest.New(t, postfixtest.Options{})
	b := postfixtest.New(t, postfixtest.Options{MyHostname: "mx.example.org", MyDomain: "example.org", LongQueueIDs: true})
	if a.SMTPAddr == b.SMTPAddr || a.QueueDir == b.QueueDir {
		t.Fatalf("instances share %s / %s", a.SMTPAddr, a.QueueDir)
	}
	a.Start()
	b.Start()
	ida := a.SendSMTP(postfixtest.Mail{From: "a@example.com", To: []string{"x@remote.example"}})
	idb := b.SendSMTP(postfixtest.Mail{From: "b@example.org", To: []string{"y@remote.example"}})
	qa := a.WaitQueued(1, 30*time.Second)
	qb := b.WaitQueued(1, 30*time.Second)
	if qa[0].QueueID != ida || qb[0].QueueID != idb {
		t.Fatalf("queues: %+v / %+v", qa, qb)
	}
	// enable_long_queue_ids = yes gives ids like 4Xy1Z2abcdz1Hn (no hex-only short id).
	if len(idb) <= 12 || len(ida) > 12 {
		t.Errorf("queue id lengths: short %q long %q", ida, idb)
	}
	a.Stop()
	// b is still running and still has its message.
	if q := b.Postqueue(); len(q) != 1 {
		t.Fatalf("b after a stopped: %+v", q)
	}
}

// TestSinkReject: a relay that refuses every recipient (smtp-sink -f RCPT)
// makes the instance bounce; the non-delivery report goes to the local
// sender's mailbox through local(8).
func TestSinkReject(t *testing.T) {
	postfixtest.Require(t)
	sink := postfixtest.StartSink(t, "-f", "RCPT")
	pf := postfixtest.New(t, postfixtest.Options{LocalUsers: []string{"carol"}, RelayHost: "[" + strings.Replace(sink.Addr, ":", "]:", 1)})
	pf.Start()
	id := pf.SendSMTP(postfixtest.Mail{From: "carol@example.com", To: []string{"nobody@remote.example"}})
	pf.WaitQueue(30*time.Second, "an empty queue after the bounce", func(q []postfixtest.QueueEntry) bool { return len(q) == 0 })
	deadline := time.Now().Add(20 * time.Second)
	for {
		mbox, _ := os.ReadFile(filepath.Join(pf.MailDir, "carol"))
		if strings.Contains(string(mbox), "Undelivered Mail Returned to Sender") && strings.Contains(string(mbox), id) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bounce for %s in carol's mailbox:\n%s\nmaillog:\n%s", id, mbox, pf.MaillogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := sink.Messages(); len(m) != 0 {
		t.Errorf("sink accepted %d messages despite -f RCPT", len(m))
	}
	if !strings.Contains(pf.Maillog(), "status=bounced") {
		t.Errorf("maillog has no status=bounced:\n%s", pf.MaillogTail(20))
	}
}

// TestPortTaken: when another process grabbed the smtpd port between
// FreePort and master's bind, Start moves smtpd to a new port.
func TestPortTaken(t *testing.T) {
	postfixtest.Require(t)
	pf := postfixtest.New(t, postfixtest.Options{})
	ln, err := net.Listen("tcp4", pf.SMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	old := pf.SMTPAddr
	pf.Start()
	if pf.SMTPAddr == old {
		t.Fatalf("smtpd still on the taken %s", old)
	}
	pf.SendSMTP(postfixtest.Mail{From: "a@example.com", To: []string{"x@remote.example"}})
	pf.WaitQueued(1, 30*time.Second)
}

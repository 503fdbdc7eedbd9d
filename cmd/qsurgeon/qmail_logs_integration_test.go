package main

// Issue 13 against a real qmail: mail queued by the real qmail-queue (as
// qmail-smtpd runs it, uid qmaild), delivered, deferred and logged by the
// test's own real qmail-send (internal/qmailtest); the qsurgeon binary then
// reads that log, the vchkpw logins and that queue.

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/qmailtest"
)

func TestQmailSendLogsAccounts(t *testing.T) {
	// the sink defers every recipient at slow.example: those messages stay
	// queued; local recipients are delivered and leave the queue
	q := qmailtest.New(t, qmailtest.Options{RcptReply: func(addr string) (int, string) {
		if strings.HasSuffix(addr, "@slow.example") {
			return 451, "try later"
		}
		return 250, "ok"
	}})
	// qmail-smtpd runs qmail-queue as qmaild: "invoked from network"
	qmaild, err := user.Lookup("qmaild")
	if err != nil {
		t.Fatalf("the qmail users are made with the prefix: %v", err)
	}
	uid, _ := strconv.Atoi(qmaild.Uid)
	// vpopmail is not installed here: its vchkpw login lines are written
	// by the test in the format of the real lines quoted in
	// ../shared/seeds/001 (maillog/testdata/vpopmail-seed001.log), each a
	// moment before the message its session queues.
	var vlog strings.Builder
	type sent struct {
		user, addr string
		rcpts      []string
	}
	var all []sent
	submit := func(i int, user, addr string, rcpts ...string) {
		fmt.Fprintf(&vlog, "%s mailserver vpopmail[%d]: vchkpw-smtp: (PLAIN) login success %s:%s\n",
			time.Now().Add(-2*time.Second).Format(time.Stamp), 4000+i, user, addr)
		// qmail-smtpd's received.c line; qmail-queue adds its own above it
		msg := fmt.Sprintf("Received: from unknown (HELO pc%d) (%s)\n  by mail.example.com with SMTP; %s\n"+
			"From: %s\nTo: %s\nSubject: message %d\nMessage-ID: <m%d@pc>\n\nbody %d\n",
			i, addr, time.Now().Format(time.RFC1123Z), user, rcpts[0], i, i, i)
		q.QueueAs(uid, user, rcpts, []byte(msg))
		all = append(all, sent{user, addr, rcpts})
	}
	n := 0
	for i := 0; i < 3; i++ { // alice: her two addresses, local mail only
		submit(n, "alice@example.com", fmt.Sprintf("192.0.2.%d", 10+i%2), "bob@example.com")
		n++
	}
	for i := 0; i < 6; i++ { // the stolen account: a new network each time
		submit(n, "hello@example.com", fmt.Sprintf("203.0.%d.%d", 113+i, 7+i), "bob@example.com", fmt.Sprintf("v%d@slow.example", i))
		n++
	}
	q.Start()
	res := q.WaitIdle(60 * time.Second)
	if strings.Count(res.Log, "new msg ") != len(all) || strings.Count(res.Log, "end msg ") != 3 {
		t.Fatalf("qmail-send: %d new, %d ended, want %d and 3:\n%s", strings.Count(res.Log, "new msg "), strings.Count(res.Log, "end msg "), len(all), res.Log)
	}
	vfile := filepath.Join(t.TempDir(), "maillog")
	if err := os.WriteFile(vfile, []byte(vlog.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := []string{"--log", q.LogFile, "--log", vfile}

	// what the test did, per account
	type want struct{ logins, addrs, queued int }
	exp := map[string]*want{}
	addrs := map[string]map[string]bool{}
	for _, s := range all {
		if exp[s.user] == nil {
			exp[s.user], addrs[s.user] = &want{}, map[string]bool{}
		}
		exp[s.user].logins++
		addrs[s.user][s.addr] = true
		exp[s.user].addrs = len(addrs[s.user])
		for _, r := range s.rcpts {
			if strings.HasSuffix(r, "@slow.example") {
				exp[s.user].queued++
				break
			}
		}
	}
	// the queue as qsurgeon lists it: hello's six messages, each still
	// owing its slow.example recipient
	queued := map[string]map[string]any{}
	for id, m := range listByID(t, q.QueueDir) {
		queued[id] = m
	}
	if len(queued) != exp["hello@example.com"].queued {
		t.Fatalf("%d messages queued, want %d", len(queued), exp["hello@example.com"].queued)
	}

	acc := qs(t, "", append([]string{"--format", "json", "accounts", "--mta", "qmail", "--queue", q.QueueDir}, logs...)...)
	if acc.code != 0 {
		t.Fatalf("accounts: exit %d: %s", acc.code, acc.stderr)
	}
	rows := jsonLines(t, acc.stdout)
	if len(rows) != len(exp) {
		t.Fatalf("accounts: %d rows, want %d: %s", len(rows), len(exp), acc.stdout)
	}
	if str(rows[0]["sasl_username"]) != "hello@example.com" {
		t.Errorf("the stolen account does not rank first: %s", acc.stdout)
	}
	for _, r := range rows {
		w := exp[str(r["sasl_username"])]
		if w == nil {
			t.Errorf("account %v was never used", r["sasl_username"])
			continue
		}
		got := fmt.Sprint(r["logins_ok"], r["client_addresses"], r["queued"])
		if got != fmt.Sprint(w.logins, w.addrs, w.queued) {
			t.Errorf("%s: logins, addresses, queued %s, want %d %d %d", r["sasl_username"], got, w.logins, w.addrs, w.queued)
		}
	}

	// --logged-sasl-user: the queue IDs the logins tie, through the binary
	for u, w := range exp {
		ids := idSet(t, qs(t, "", append([]string{"--format", "ids", "list", "--mta", "qmail", "--queue", q.QueueDir, "--logged-sasl-user", u}, logs...)...))
		if len(ids) != w.queued {
			t.Errorf("--logged-sasl-user %s: %d messages, want %d", u, len(ids), w.queued)
		}
		for id := range ids {
			if !addrs[u][str(queued[id]["client_address"])] {
				t.Errorf("%s: message %s from %v tied to it", u, id, queued[id]["client_address"])
			}
		}
	}
	ex := qs(t, "", append([]string{"--format", "json", "list", "--mta", "qmail", "--queue", q.QueueDir, "--logged-sasl-user", "hello@*", "--explain"}, logs...)...)
	for _, m := range jsonLines(t, ex.stdout) {
		why := fmt.Sprint(m["matched"])
		if !regexp.MustCompile(`maillog:\d+ "[^"]*vchkpw-smtp: \(PLAIN\) login success hello@example\.com:` + regexp.QuoteMeta(str(m["client_address"])) + `"`).MatchString(why) {
			t.Errorf("%s: --explain does not quote its login: %s", m["queue_id"], why)
		}
	}

	// impact from qmail-send's own log: the local deliveries sent, the
	// slow.example ones deferred
	imp := qs(t, "", "--format", "json", "impact", "--log", q.LogFile)
	got := map[string]int{}
	for _, r := range jsonLines(t, imp.stdout) {
		got[str(r["recipient_domain"])+" "+str(r["status"])] += int(r["deliveries"].(float64))
	}
	if got["example.com sent"] != len(all) || got["slow.example deferred"] != exp["hello@example.com"].queued {
		t.Errorf("impact: %v, want %d local deliveries sent and %d deferred", got, len(all), exp["hello@example.com"].queued)
	}
}

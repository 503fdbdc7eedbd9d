package maillog_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/maillog"
)

// realLog drives a real Postfix with real SASL (the Dovecot auth protocol,
// postfixtest's in-process server) over loopback: two legitimate users from
// their one or two addresses, a stolen account from many addresses with
// forged senders, failed logins, and a rotation by Postfix itself
// (`postfix logrotate`, which gzips the old file) half-way. It returns the
// log files in a shuffled order and what was done.
type realRun struct {
	files      []string
	stolenOK   map[string]bool // addresses the stolen account logged in from
	stolenFail map[string]bool
	msgs       map[string]int // messages per user
	failed     map[string]int
	ids        map[string]string // queue ID -> user
}

func realLog(t *testing.T) (*postfixtest.Instance, realRun) {
	t.Helper()
	postfixtest.Require(t)
	users := map[string]string{"hello@example.com": "pw-hello", "alice@example.com": "pw-alice", "bob@example.com": "pw-bob"}
	pf := postfixtest.New(t, postfixtest.Options{SASLUsers: users, LocalUsers: []string{"alice", "bob"}})
	pf.Start()
	run := realRun{stolenOK: map[string]bool{}, stolenFail: map[string]bool{}, msgs: map[string]int{}, failed: map[string]int{}, ids: map[string]string{}}
	send := func(user, pass, addr, from string, to ...string) {
		m := postfixtest.Mail{From: from, To: to, AuthUser: user, AuthPass: pass, XClientAddr: addr, AuthMech: "LOGIN"}
		if len(run.ids)%2 == 0 {
			m.AuthMech = "PLAIN"
		}
		id, err := pf.TrySendSMTP(m)
		if pass != users[user] {
			if err == nil {
				t.Fatalf("login of %s with a wrong password succeeded", user)
			}
			run.failed[user]++
			if user == "hello@example.com" {
				run.stolenFail[addr] = true
			}
			return
		}
		if err != nil {
			t.Fatalf("send as %s from %s: %v\n%s", user, addr, err, pf.MaillogTail(20))
		}
		run.msgs[user]++
		run.ids[id] = user
		if user == "hello@example.com" {
			run.stolenOK[addr] = true
		}
	}
	phase := func(n0, n int) {
		for i := n0; i < n; i++ {
			send("alice@example.com", "pw-alice", "192.0.2.10", "alice@example.com", "partner@fabrikam.example", "bob@example.com")
			if i%2 == 0 {
				send("bob@example.com", "pw-bob", fmt.Sprintf("198.51.100.%d", 77+i%2), "bob@example.com", "lkhan@northwind.example")
			}
			// the botnet: one address per message, in many networks,
			// random senders in the local domain
			for j := 0; j < 6; j++ {
				k := i*6 + j
				addr := fmt.Sprintf("203.0.%d.%d", 113+k%7, 10+k)
				if k%9 == 4 {
					addr = fmt.Sprintf("2001:db8:%x::%x", k, k+1)
				}
				send("hello@example.com", "pw-hello", addr, fmt.Sprintf("x%03d@example.com", k),
					fmt.Sprintf("v%d@target%d.example", k, k%5), fmt.Sprintf("w%d@target%d.example", k, (k+1)%5))
				if k%4 == 0 {
					send("hello@example.com", "guess", fmt.Sprintf("198.18.%d.%d", k%3, k), "x@example.com", "y@target1.example")
				}
			}
		}
		send("alice@example.com", "typo", "192.0.2.10", "alice@example.com", "x@fabrikam.example")
	}
	phase(0, 4)
	pf.WaitQueue(30*time.Second, "deliveries of the first half logged", func([]postfixtest.QueueEntry) bool {
		return strings.Count(pf.Maillog(), "status=") >= 4*(2+6*2)
	})
	// Postfix rotates its own maillog_file (postfix(1) logrotate: rename
	// with maillog_file_rotate_suffix, then maillog_file_compressor).
	if out, err := exec.Command("postfix", "-c", pf.ConfigDir, "logrotate").CombinedOutput(); err != nil {
		t.Fatalf("postfix logrotate: %v\n%s", err, out)
	}
	time.Sleep(1100 * time.Millisecond) // the next rotation gets another suffix second
	phase(4, 8)
	pf.WaitQueue(30*time.Second, "deliveries of the second half logged", func([]postfixtest.QueueEntry) bool {
		return strings.Count(pf.Maillog(), "status=") >= 4*(2+6*2)
	})
	if out, err := exec.Command("postfix", "-c", pf.ConfigDir, "logrotate").CombinedOutput(); err != nil {
		t.Fatalf("postfix logrotate: %v\n%s", err, out)
	}
	phase(8, 10)
	pf.WaitQueue(30*time.Second, "deliveries of the last part logged", func([]postfixtest.QueueEntry) bool {
		return strings.Count(pf.Maillog(), "status=") >= 2*(2+6*2)
	})
	pf.Stop()
	rot, _ := filepath.Glob(pf.LogFile + ".*")
	var gz int
	for _, f := range rot {
		if strings.HasSuffix(f, ".gz") {
			gz++
		}
	}
	if len(rot) != 2 || gz != 2 {
		t.Fatalf("postfix logrotate left %v, want two .gz files", rot)
	}
	// newest first, as a user types them: Order must sort them
	run.files = append([]string{pf.LogFile}, rot[1], rot[0])
	return pf, run
}

// catAll is `zcat -f FILES` in time order (the admins' pipelines read it).
func catAll(t *testing.T, files []string) []byte {
	var all []byte
	for _, f := range files {
		out, err := exec.Command("zcat", "-f", f).Output()
		if err != nil {
			t.Fatalf("zcat %s: %v", f, err)
		}
		all = append(all, out...)
	}
	return all
}

// pipeline runs a shell pipeline over input, as an admin would.
func pipeline(t *testing.T, input []byte, script string) string {
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdin = bytes.NewReader(input)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return string(out)
}

func TestRealPostfixSASL(t *testing.T) {
	pf, run := realLog(t)
	a := maillog.NewAnalyzer()
	st := maillog.ReadAll(run.files, maillog.Options{}, a)
	if len(st.Problems) > 0 || st.Files != 3 {
		t.Fatalf("reader: %+v", st)
	}
	if st.Forms[maillog.FormRFC3164] != st.Lines {
		t.Errorf("forms %v, want every line RFC 3164 (maillog_file)", st.Forms)
	}
	accts := a.Accounts(nil)
	if len(accts) != 3 || accts[0].User != "hello@example.com" {
		t.Fatalf("ranking: %+v", accts)
	}
	h := accts[0]
	if h.ClientAddresses != len(run.stolenOK) || h.FailedAddresses != len(run.stolenFail) {
		t.Errorf("hello: %d addresses, %d failed addresses; sent from %d, failed from %d", h.ClientAddresses, h.FailedAddresses, len(run.stolenOK), len(run.stolenFail))
	}
	for _, ac := range accts {
		if ac.Messages != run.msgs[ac.User] || ac.LoginsFailed != run.failed[ac.User] {
			t.Errorf("%s: %d messages, %d failed logins; the test sent %d and failed %d", ac.User, ac.Messages, ac.LoginsFailed, run.msgs[ac.User], run.failed[ac.User])
		}
		if ac.FirstSeen == nil || ac.LastSeen.Before(*ac.FirstSeen) {
			t.Errorf("%s: first/last seen %v %v", ac.User, ac.FirstSeen, ac.LastSeen)
		}
	}
	if len(h.Why) == 0 || !strings.Contains(strings.Join(h.Why, ";"), "envelope senders") {
		t.Errorf("hello's why: %q", h.Why)
	}
	// The queue IDs the logs leave open are the messages in the queue.
	open := a.Open()
	for id, user := range run.ids {
		m := open[id]
		if m == nil {
			continue // delivered locally and removed
		}
		if m.User != user || m.Via.File == "" {
			t.Errorf("%s: logs say user %q via %v, the test sent it as %s", id, m.User, m.Via, user)
		}
	}
	for _, e := range pf.Postqueue() {
		if m := open[e.QueueID]; m == nil || m.User != run.ids[e.QueueID] {
			t.Errorf("queued %s: the logs do not tie it to %s", e.QueueID, run.ids[e.QueueID])
		}
	}

	// The same log in RFC 3339 form (rsyslog's RFC3339 template, with a
	// zone): each real line with its stamp rewritten, read from one file.
	var ordered []string
	for _, in := range maillog.Order(run.files, maillog.Options{}) {
		ordered = append(ordered, in.Name)
	}
	all := catAll(t, ordered)
	var iso bytes.Buffer
	ref := time.Now()
	for _, line := range strings.SplitAfter(string(all), "\n") {
		if len(line) < 16 {
			continue
		}
		ts, err := time.ParseInLocation(time.Stamp, line[:15], time.Local)
		if err != nil {
			t.Fatalf("not a syslog line: %q", line)
		}
		ts = ts.AddDate(ref.Year(), 0, 0)
		if ts.After(ref.Add(24 * time.Hour)) {
			ts = ts.AddDate(-1, 0, 0)
		}
		iso.WriteString(ts.In(time.FixedZone("", 9*3600)).Format("2006-01-02T15:04:05.000000-07:00") + line[15:])
	}
	isoFile := filepath.Join(t.TempDir(), "maillog-rfc3339")
	os.WriteFile(isoFile, iso.Bytes(), 0o644)
	b := maillog.NewAnalyzer()
	ist := maillog.ReadAll([]string{isoFile}, maillog.Options{}, b)
	if ist.Forms[maillog.FormRFC3339] != st.Lines || fmt.Sprint(utc(b.Accounts(nil))) != fmt.Sprint(utc(accts)) {
		t.Errorf("the RFC 3339 form reads differently: %v\n%v\n%v", ist.Forms, b.Accounts(nil), accts)
	}

	// Side by side with the admins' pipelines over the same files.
	// (A bare `grep sasl_username` also counts the failures: Postfix 3.x
	// appends sasl_username= to "authentication failed" warnings.)
	perUser := pipeline(t, all, `grep ': client=.*sasl_username=' | awk '{print $NF}' | sort | uniq -c`)
	failUser := pipeline(t, all, `grep 'SASL .* authentication failed' | awk '{print $NF}' | sort | uniq -c`)
	for _, ac := range accts {
		want := fmt.Sprintf("%d sasl_username=%s", ac.Messages, ac.User)
		if !strings.Contains(strings.Join(strings.Fields(perUser), " "), want) {
			t.Errorf("grep|awk|sort|uniq -c says\n%s\nqsurgeon: %s", perUser, want)
		}
		if want := fmt.Sprintf("%d sasl_username=%s", ac.LoginsFailed, ac.User); ac.LoginsFailed > 0 && !strings.Contains(strings.Join(strings.Fields(failUser), " "), want) {
			t.Errorf("failures: grep|awk|sort|uniq -c says\n%s\nqsurgeon: %s", failUser, want)
		}
	}
	addrs := pipeline(t, all, `grep ': client=.*sasl_username=hello@example.com' | sed 's/.*client=[^[]*\[\([^]]*\)\].*/\1/' | sort -u | wc -l`)
	if n, _ := strconv.Atoi(strings.TrimSpace(addrs)); n != h.ClientAddresses {
		t.Errorf("pipeline counts %d addresses, qsurgeon %d", n, h.ClientAddresses)
	}

	// pflogsumm (Debian's): the same message totals.
	if _, err := exec.LookPath("pflogsumm"); err != nil {
		t.Fatalf("pflogsumm not installed (apt-get install pflogsumm; .ci/run installs it)")
	}
	cmd := exec.Command("pflogsumm", "--syslog-name="+pf.PostconfValue("syslog_name"))
	cmd.Stdin = bytes.NewReader(all)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pflogsumm: %v", err)
	}
	got := pflogTotals(t, out)
	want := map[string]int{"received": a.Totals.Received, "delivered+forwarded": a.Totals.Sent,
		"deferrals": a.Totals.Deferrals, "bounced": a.Totals.Bounced}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("pflogsumm %s = %d, qsurgeon %d\n%s", k, got[k], v, out[:min(len(out), 600)])
		}
	}
	if a.Totals.Received != len(run.ids) {
		t.Errorf("received %d, the test sent %d", a.Totals.Received, len(run.ids))
	}
}

var pflogRE = regexp.MustCompile(`(?m)^\s+(\d+)\s+(received|delivered|forwarded|deferred|bounced)(?:\s+\((\d+)\s+deferrals\))?`)

func pflogTotals(t *testing.T, out []byte) map[string]int {
	got := map[string]int{}
	end := bytes.Index(out, []byte("Per-"))
	if end < 0 {
		end = len(out)
	}
	for _, m := range pflogRE.FindAllSubmatch(out[:end], -1) {
		n, _ := strconv.Atoi(string(m[1]))
		got[string(m[2])] = n
		if len(m[3]) > 0 {
			d, _ := strconv.Atoi(string(m[3]))
			got["deferrals"] = d
		}
	}
	got["delivered+forwarded"] = got["delivered"] + got["forwarded"]
	if got["deferrals"] == 0 {
		got["deferrals"] = got["deferred"]
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) < 5 {
		t.Fatalf("pflogsumm output not understood:\n%s", out)
	}
	return got
}

// utc puts the first/last seen times of rows in UTC, so that the same
// instants print the same whatever zone the log wrote.
func utc(rows []maillog.Account) []maillog.Account {
	out := append([]maillog.Account(nil), rows...)
	for i := range out {
		if out[i].FirstSeen != nil {
			f, l := out[i].FirstSeen.UTC(), out[i].LastSeen.UTC()
			out[i].FirstSeen, out[i].LastSeen = &f, &l
		}
	}
	return out
}

// A real Postfix asking a real dovecot (Debian's dovecot-core, auth
// service only, in the test's own directory): both log each failed login,
// qsurgeon counts it once; dovecot's own log format is understood.
func TestRealDovecotSASL(t *testing.T) {
	postfixtest.Require(t)
	users := map[string]string{"hello@example.com": "pw-hello", "alice@example.com": "pw-alice"}
	dv := postfixtest.StartDovecot(t, users)
	pf := postfixtest.New(t, postfixtest.Options{MainCF: dv.DovecotSASL()})
	pf.Start()
	sent, failed := map[string]int{}, map[string]int{}
	try := func(user, pass, addr string) {
		_, err := pf.TrySendSMTP(postfixtest.Mail{From: user, To: []string{"x@target.example"}, AuthUser: user, AuthPass: pass, XClientAddr: addr})
		switch {
		case pass == users[user] && err != nil:
			t.Fatalf("%s from %s: %v\n%s", user, addr, err, pf.MaillogTail(10))
		case pass == users[user]:
			sent[user]++
		case err == nil:
			t.Fatalf("%s logged in with a wrong password", user)
		default:
			failed[user]++
		}
	}
	for i := 0; i < 4; i++ {
		try("hello@example.com", "pw-hello", fmt.Sprintf("203.0.113.%d", 10+i))
	}
	try("hello@example.com", "wrong", "198.18.0.7")
	try("hello@example.com", "wrong", "198.18.0.8")
	try("alice@example.com", "pw-alice", "192.0.2.10")
	try("alice@example.com", "typo", "192.0.2.10")
	pf.WaitQueued(sent["hello@example.com"]+sent["alice@example.com"], 20*time.Second)
	pf.Stop()
	dlog, _ := os.ReadFile(dv.LogFile)
	if n := strings.Count(string(dlog), "Password mismatch"); n != 3 {
		t.Fatalf("dovecot logged %d mismatches, want 3:\n%s", n, dlog)
	}
	a := maillog.NewAnalyzer()
	st := maillog.ReadAll([]string{pf.LogFile, dv.LogFile}, maillog.Options{}, a)
	got := map[string][2]int{}
	for _, r := range a.Accounts(nil) {
		got[r.User] = [2]int{r.Messages, r.LoginsFailed}
	}
	want := map[string][2]int{"hello@example.com": {sent["hello@example.com"], failed["hello@example.com"]},
		"alice@example.com": {sent["alice@example.com"], failed["alice@example.com"]}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("accounts %v, want %v (%+v)\n%s", got, want, st, dlog)
	}
	// dovecot alone: its failures, attributed by its own lines
	b := maillog.NewAnalyzer()
	maillog.ReadAll([]string{dv.LogFile}, maillog.Options{}, b)
	if len(b.Accounts(nil)) != 2 {
		t.Errorf("dovecot's log alone: %+v\n%s", b.Accounts(nil), dlog)
	}
	for _, r := range b.Accounts(nil) {
		if r.LoginsFailed != failed[r.User] {
			t.Errorf("dovecot's log alone: %s %d failures, want %d", r.User, r.LoginsFailed, failed[r.User])
		}
	}
}

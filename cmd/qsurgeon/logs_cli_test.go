package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const fixtureMaillog = postfixFixture + "/maillog.txt"

// pinnedLog copies a real log into the test's directory with a fixed
// modification time, so RFC 3164's missing year is the same on every run
// (the checkout's mtime would move with the date the test runs).
func pinnedLog(t *testing.T, src string, mtime time.Time) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

// accounts over the real log of the Postfix fixture and its real queue:
// the stolen account ranks first, and every count agrees with truth.json
// and with a grep of the log made here, independently of maillog.
func TestAccountsCLI(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	r := qs(t, "", "--format", "json", "accounts", "--log", fixtureMaillog, "--queue", root)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	rows := jsonLines(t, r.stdout)
	if len(rows) != 6 || str(rows[0]["sasl_username"]) != "hello@example.com" {
		t.Fatalf("ranking: %s", r.stdout)
	}
	for _, k := range []string{"sasl_username", "logins_ok", "logins_failed", "client_addresses", "networks", "first_seen", "last_seen",
		"messages", "recipients", "recipient_domains", "queued", "sent", "deferred", "bounced", "score", "why"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("JSON member %q missing", k)
		}
	}
	// queued: what truth.json says is in the queue per SASL user
	truth := loadPostfixTruth(t)
	want := map[string]int{}
	for _, m := range truth.Messages {
		if m.SASLUsername != nil && *m.SASLUsername != "" {
			want[*m.SASLUsername]++
		}
	}
	// messages and addresses: a grep of the log
	logText, _ := os.ReadFile(fixtureMaillog)
	re := regexp.MustCompile(`: client=[^\[]*\[([^\]]*)\], sasl_method=\S+, sasl_username=(\S+)`)
	msgs, addrs := map[string]int{}, map[string]map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(logText), -1) {
		msgs[m[2]]++
		if addrs[m[2]] == nil {
			addrs[m[2]] = map[string]bool{}
		}
		addrs[m[2]][m[1]] = true
	}
	for _, row := range rows {
		u := str(row["sasl_username"])
		if int(row["queued"].(float64)) != want[u] || int(row["messages"].(float64)) != msgs[u] ||
			int(row["client_addresses"].(float64)) != len(addrs[u]) {
			t.Errorf("%s: queued %v messages %v addresses %v; truth.json %d, grep %d messages from %d addresses",
				u, row["queued"], row["messages"], row["client_addresses"], want[u], msgs[u], len(addrs[u]))
		}
	}
	if !strings.Contains(r.stderr, "2 queued message(s) have no log line") {
		t.Errorf("the two maildrop files (never picked up, so never logged) must be reported: %s", r.stderr)
	}
	why := rows[0]["why"].([]any)
	if len(why) < 2 {
		t.Errorf("why: %v", why)
	}

	// the table says the same, with the reasons
	tab := qs(t, "", "accounts", "--log", fixtureMaillog, "--queue", root)
	if tab.code != 0 || !strings.Contains(tab.stdout, "1  hello@example.com") || !strings.Contains(tab.stdout, "envelope senders that are not the account") {
		t.Errorf("table: %s %s", tab.stdout, tab.stderr)
	}
	// no queue given and none at the default place: the log view alone
	nq := qs(t, "", "accounts", "--log", fixtureMaillog, "--queue", "")
	if nq.code != 0 && nq.code != 4 {
		t.Errorf("without a queue: exit %d %s", nq.code, nq.stderr)
	}
	// no log: a usage error naming --log
	if u := qs(t, "", "accounts"); u.code != 2 || !strings.Contains(u.stderr, "--log") {
		t.Errorf("no log: %d %s", u.code, u.stderr)
	}
}

// The same log as journalctl -o json would print it, on standard input,
// and cut by --since/--until: the events are the same as from the file.
func TestAccountsJournalStdinAndWindow(t *testing.T) {
	log := pinnedLog(t, fixtureMaillog, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	b, _ := os.ReadFile(log)
	var js strings.Builder
	re := regexp.MustCompile(`^(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) ([^\[:]+)\[(\d+)\]: (.*)$`)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("fixture line not in syslog form: %q", line)
		}
		ts, err := time.ParseInLocation(time.Stamp, m[1], time.Local)
		if err != nil {
			t.Fatal(err)
		}
		ts = ts.AddDate(2026, 0, 0)
		obj, _ := json.Marshal(map[string]string{"__REALTIME_TIMESTAMP": fmt.Sprint(ts.UnixMicro()), "_HOSTNAME": m[2],
			"SYSLOG_IDENTIFIER": m[3], "_PID": m[4], "MESSAGE": m[5]})
		js.Write(obj)
		js.WriteByte('\n')
	}
	file := qs(t, "", "--format", "json", "accounts", "--log", log, "--queue", "/nonexistent-queue-dir-for-test")
	if file.code != 4 {
		// a --queue that does not exist is an error, not a silent skip
		t.Errorf("missing --queue: exit %d", file.code)
	}
	file = qs(t, "", "--format", "json", "accounts", "--log", log, "--mta", "postfix", "--queue", noMailPostfixQueue(t))
	stdin := qs(t, js.String(), "--format", "json", "accounts", "--log", "-", "--mta", "postfix", "--queue", noMailPostfixQueue(t))
	if file.code != 0 || stdin.code != 0 {
		t.Fatalf("file %d %s; stdin %d %s", file.code, file.stderr, stdin.code, stdin.stderr)
	}
	strip := func(s string) string {
		return regexp.MustCompile(`"(first|last)_seen":"[^"]*"`).ReplaceAllString(s, "")
	}
	if strip(file.stdout) != strip(stdin.stdout) || len(jsonLines(t, file.stdout)) != 6 {
		t.Errorf("journal JSON on stdin reads differently:\n%s\n%s", file.stdout, stdin.stdout)
	}
	// hello@ spams from 15:58:58 on; before that only the staff logged in
	early := qs(t, "", "--format", "json", "accounts", "--log", log, "--until", "2026-11-22T15:58:58", "--mta", "postfix", "--queue", noMailPostfixQueue(t))
	earlyRows := jsonLines(t, early.stdout)
	if len(earlyRows) == 0 {
		t.Errorf("--until: no account: %s", early.stderr)
	}
	for _, row := range earlyRows {
		if str(row["sasl_username"]) == "hello@example.com" {
			t.Errorf("--until: hello@ before its first login: %v", row)
		}
	}
	late := qs(t, "", "--format", "json", "accounts", "--log", log, "--since", "2026-11-22T15:58:58", "--mta", "postfix", "--queue", noMailPostfixQueue(t))
	if rows := jsonLines(t, late.stdout); len(rows) == 0 || str(rows[0]["sasl_username"]) != "hello@example.com" || rows[0]["messages"].(float64) != 226 {
		t.Errorf("--since: %s", late.stdout)
	}
}

// impact over the real log: hello@'s rows hold exactly the deliveries of
// the queue IDs its client= lines name (counted here with a regexp), and
// --null-sender selects the bounces.
func TestImpactCLI(t *testing.T) {
	r := qs(t, "", "--format", "json", "impact", "--log", fixtureMaillog, "--sasl-user", "hello@example.com")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	logText, _ := os.ReadFile(fixtureMaillog)
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`(\w+): client=.*sasl_username=hello@example\.com`).FindAllStringSubmatch(string(logText), -1) {
		ids[m[1]] = true
	}
	want := 0
	for _, m := range regexp.MustCompile(`(\w+): to=<`).FindAllStringSubmatch(string(logText), -1) {
		if ids[m[1]] {
			want++
		}
	}
	got := 0
	for _, row := range jsonLines(t, r.stdout) {
		got += int(row["deliveries"].(float64))
	}
	if got != want || want == 0 {
		t.Errorf("impact --sasl-user: %d delivery lines, the log has %d for hello@'s queue IDs", got, want)
	}
	ns := qs(t, "", "--format", "json", "impact", "--log", fixtureMaillog, "--null-sender")
	n := 0
	for _, row := range jsonLines(t, ns.stdout) {
		n += int(row["messages"].(float64))
	}
	bounces := strings.Count(string(logText), "from=<>, size=")
	if n == 0 || n > bounces {
		t.Errorf("--null-sender: %d messages, the log has %d null-sender messages", n, bounces)
	}
	if u := qs(t, "", "impact", "--log", fixtureMaillog, "--subject", "x"); u.code != 2 {
		t.Errorf("impact with a content filter: exit %d", u.code)
	}
}

// vchkpw with ENABLE_LOGGING 3 writes the password of a failed login into
// the log; qsurgeon never prints it, and never prints a control character
// a log line carries.
func TestLogsNeverPrintPasswords(t *testing.T) {
	p := filepath.Join(t.TempDir(), "maillog")
	lines := "Jul 24 07:11:42 mailserver vpopmail[32749]: vchkpw-submission: password fail (pass: 'Hunter2-secret') hello@example.com:91.225.163.32\n" +
		"Jul 24 07:11:50 mailserver vpopmail[32750]: vchkpw-submission: (PLAIN) login success hello\x1b[31m@example.com:91.225.163.33\n"
	os.WriteFile(p, []byte(lines), 0o644)
	for _, f := range []string{"table", "json"} {
		r := qs(t, "", "--format", f, "accounts", "--log", p, "--mta", "qmail", "--queue", emptyQmailQueue(t))
		all := r.stdout + r.stderr
		if strings.Contains(all, "Hunter2") || strings.Contains(all, "\x1b") {
			t.Errorf("%s output carries the password or an escape: %q", f, all)
		}
		if !strings.Contains(r.stdout, "hello@example.com") {
			t.Errorf("%s: %q", f, r.stdout)
		}
	}
}

func idSet(t *testing.T, r result) map[string]bool {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	out := map[string]bool{}
	for _, l := range strings.Fields(r.stdout) {
		out[l] = true
	}
	return out
}

// --log --logged-sasl-user on Postfix: the queue IDs of smtpd's client=
// lines select exactly what the queue files' own sasl_username selects,
// and --explain names the log line.
func TestLoggedSASLUserPostfix(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	lr := qs(t, "", "--format", "ids", "list", "--queue", root, "--log", fixtureMaillog, "--logged-sasl-user", "hello@example.com")
	if !strings.Contains(lr.stderr, "2 message(s) in the queue have no line in the --log files") {
		t.Errorf("the two maildrop files the log never saw must be reported: %s", lr.stderr)
	}
	byLog := idSet(t, lr)
	byQueue := idSet(t, qs(t, "", "--format", "ids", "list", "--queue", root, "--sasl-user", "hello@example.com"))
	if len(byLog) != 226 || fmt.Sprint(byLog) != fmt.Sprint(byQueue) {
		t.Errorf("by the log %d messages, by the queue files %d", len(byLog), len(byQueue))
	}
	ex := qs(t, "", "--format", "json", "list", "--queue", root, "--log", fixtureMaillog, "--logged-sasl-user", "bob@*", "--explain")
	rows := jsonLines(t, ex.stdout)
	if len(rows) != 8 {
		t.Fatalf("bob: %d messages: %s", len(rows), ex.stderr)
	}
	logText, _ := os.ReadFile(fixtureMaillog)
	lines := strings.Split(string(logText), "\n")
	for _, row := range rows {
		why := fmt.Sprint(row["matched"])
		m := regexp.MustCompile(`maillog\.txt:(\d+)`).FindStringSubmatch(why)
		if m == nil {
			t.Fatalf("--explain names no log line: %s", why)
		}
		var n int
		fmt.Sscan(m[1], &n)
		if l := lines[n-1]; !strings.Contains(l, str(row["queue_id"])+": client=") || !strings.Contains(l, "sasl_username=bob@example.com") {
			t.Errorf("%s: explained by line %d %q", row["queue_id"], n, l)
		} else if !strings.Contains(why, `:`+m[1]+` "`+l+`"`) {
			t.Errorf("--explain does not quote line %d's text %q: %s", n, l, why)
		}
	}
	// the quoted text goes through termsafe: a control character a log
	// line carries is escaped, never printed raw (here an ESC sequence in
	// the client name of one of bob's client= lines)
	hostile := filepath.Join(t.TempDir(), "maillog")
	bad := strings.Replace(string(logText), "D23C1BE526: client=gw.office", "D23C1BE526: client=gw\x1b[2J.office", 1)
	if bad == string(logText) {
		t.Fatal("the fixture no longer has bob's D23C1BE526")
	}
	if err := os.WriteFile(hostile, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"table", "json"} {
		h := qs(t, "", "--format", format, "list", "--queue", root, "--log", hostile, "--logged-sasl-user", "bob@*", "--explain")
		if strings.ContainsRune(h.stdout, 0x1b) || !strings.Contains(h.stdout, "D23C1BE526: client=gw") || !strings.Contains(h.stdout, "[2J.office") {
			t.Errorf("--format %s: the ESC of the log line is not escaped in --explain: %q", format, h.stdout)
		}
	}
	// without the logs: a usage error, never "select everything"
	if r := qs(t, "", "list", "--queue", root, "--logged-sasl-user", "hello@example.com"); r.code != 2 {
		t.Errorf("--logged-sasl-user without --log: exit %d", r.code)
	}
	// a destructive command over it previews like any other filter
	d := qs(t, "n\n", "delete", "--dry-run", "--queue", root, "--log", fixtureMaillog, "--logged-sasl-user", "hello@example.com")
	if !strings.Contains(d.stdout+d.stderr, "226") {
		t.Errorf("delete --dry-run: %s %s", d.stdout, d.stderr)
	}
}

// qmail whose AUTH patch writes no user into the Received header: the
// vchkpw login from the message's client just before it arrived ties it.
// The log is GENERATED here in the real vchkpw format (seed 001) from the
// real qmail fixture's client addresses and arrival times; one address
// also gets another account's login, so those messages stay untied.
func TestLoggedSASLUserQmail(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue")
	all := qs(t, "", "--format", "json", "list", "--mta", "qmail", "--queue", root)
	type msg struct {
		id, user, addr string
		at             time.Time
	}
	var msgs []msg
	for _, r := range jsonLines(t, all.stdout) {
		if str(r["sasl_username"]) == "" || str(r["client_address"]) == "" {
			continue
		}
		msgs = append(msgs, msg{str(r["queue_id"]), str(r["sasl_username"]), str(r["client_address"]), time.Unix(int64(r["arrival_time"].(float64)), 0)})
	}
	if len(msgs) < 100 {
		t.Fatalf("fixture: %d authenticated messages", len(msgs))
	}
	var b strings.Builder
	var last time.Time
	contested := msgs[0].addr
	for i, m := range msgs {
		fmt.Fprintf(&b, "%s mailserver vpopmail[%d]: vchkpw-submission: (PLAIN) login success %s:%s\n",
			m.at.Add(-3*time.Second).Local().Format(time.Stamp), 1000+i, m.user, m.addr)
		if m.at.After(last) {
			last = m.at
		}
	}
	fmt.Fprintf(&b, "%s mailserver vpopmail[1]: vchkpw-submission: (PLAIN) login success carol@example.com:%s\n",
		msgs[0].at.Add(-2*time.Second).Local().Format(time.Stamp), contested)
	p := filepath.Join(t.TempDir(), "maillog")
	os.WriteFile(p, []byte(b.String()), 0o644)
	os.Chtimes(p, last.Add(time.Hour), last.Add(time.Hour))

	got := idSet(t, qs(t, "", "--format", "ids", "list", "--mta", "qmail", "--queue", root, "--log", p, "--logged-sasl-user", "hello@example.com"))
	// carol's login makes the messages from that address that arrived
	// after it (within the window) ambiguous; earlier ones stay hello's
	carolAt := msgs[0].at.Add(-2 * time.Second).Truncate(time.Second)
	want, ambiguous := map[string]bool{}, 0
	for _, m := range msgs {
		if m.addr == contested && !carolAt.After(m.at.Add(time.Second)) && m.at.Sub(carolAt) <= 10*time.Minute {
			ambiguous++
			continue
		}
		if m.user == "hello@example.com" {
			want[m.id] = true
		}
	}
	if ambiguous == 0 {
		t.Fatal("no message made ambiguous: the case proves nothing")
	}
	if len(want) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tied by vchkpw logins: %d, want %d", len(got), len(want))
	}
	// --explain quotes the login line that tied each message
	logLines := strings.Split(b.String(), "\n")
	ex := qs(t, "", "--format", "json", "list", "--mta", "qmail", "--queue", root, "--log", p, "--logged-sasl-user", "hello@example.com", "--explain")
	rows := jsonLines(t, ex.stdout)
	if len(rows) != len(want) {
		t.Fatalf("--explain: %d rows, want %d", len(rows), len(want))
	}
	for _, r := range rows {
		why := fmt.Sprint(r["matched"])
		m := regexp.MustCompile(`maillog:(\d+) "([^"]*)"`).FindStringSubmatch(why)
		if m == nil {
			t.Fatalf("--explain quotes no log line: %s", why)
		}
		var n int
		fmt.Sscan(m[1], &n)
		if m[2] != logLines[n-1] || !strings.Contains(m[2], "login success hello@example.com:"+str(r["client_address"])) {
			t.Errorf("%s: quoted %q, line %d is %q", r["queue_id"], m[2], n, logLines[n-1])
		}
	}
}

// summary --log puts the logs' accounts next to the queue's own numbers.
func TestSummaryLog(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	r := qs(t, "", "--format", "json", "summary", "--queue", root, "--log", fixtureMaillog, "--top", "3")
	rows := jsonLines(t, r.stdout)
	if r.code != 0 || len(rows) != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	la, _ := rows[0]["log_accounts"].([]any)
	if len(la) != 3 {
		t.Fatalf("log_accounts: %v", rows[0]["log_accounts"])
	}
	first := la[0].(map[string]any)
	if str(first["sasl_username"]) != "hello@example.com" || first["queued"].(float64) != 226 || first["client_addresses"].(float64) != 62 {
		t.Errorf("first account: %v", first)
	}
	// with a selection, queued counts only the selected messages
	r = qs(t, "", "--format", "json", "summary", "--queue", root, "--log", fixtureMaillog, "--queue-name", "hold")
	first = jsonLines(t, r.stdout)[0]["log_accounts"].([]any)[0].(map[string]any)
	if first["queued"].(float64) != 3 {
		t.Errorf("hello@ in hold: %v (the fixture holds 3 of its messages)", first["queued"])
	}
	tab := qs(t, "", "summary", "--queue", root, "--log", fixtureMaillog)
	if !strings.Contains(tab.stdout, "Top accounts in the logs") {
		t.Errorf("table: %s", tab.stdout)
	}
}

// A qmail-send log names no account: the accounts of the queue (AUTH users
// of its Received headers) still get their rows, saying so.
func TestAccountsQueueOnly(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue")
	r := qs(t, "", "--format", "json", "accounts", "--log", qmailFixture+"/qmail-send.log", "--queue", root)
	rows := jsonLines(t, r.stdout)
	if r.code != 0 || len(rows) != 4 || str(rows[0]["sasl_username"]) != "hello@example.com" || rows[0]["queued"].(float64) != 293 {
		t.Fatalf("exit %d %s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(fmt.Sprint(rows[0]["why"]), "in the queue only") || !strings.Contains(r.stderr, "6 queued message(s) have no log line") {
		t.Errorf("why %v; stderr %s", rows[0]["why"], r.stderr)
	}
}

// noMailPostfixQueue is the bundled real Postfix queue with every message
// and log removed: a queue holding no mail (a bare directory is not a queue,
// and --mta postfix refuses it).
func noMailPostfixQueue(t *testing.T) string {
	t.Helper()
	root := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	emptyPostfixQueue(t, root)
	return root
}

// emptyQmailQueue is a qmail queue holding no message, built by qsurgeon's
// own rebuild --new (qmail's hier.c).
func emptyQmailQueue(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "queue")
	if r := qs(t, "", "rebuild", "--new", dir, "--yes", "--journal", "none"); r.code != 0 {
		t.Fatalf("rebuild --new: exit %d: %s", r.code, r.stderr)
	}
	return dir
}

// TestAccountsJSONEscapesC1: a C1 control (U+009B, a one-character CSI) in
// an account name from a log leaves accounts' and impact's JSON escaped,
// as every other JSON qsurgeon prints.
func TestAccountsJSONEscapesC1(t *testing.T) {
	p := filepath.Join(t.TempDir(), "maillog")
	line := "Jul 24 07:11:50 mailserver vpopmail[32750]: vchkpw-submission: (PLAIN) login success evil\u009b31m@example.com:91.225.163.33\n"
	if err := os.WriteFile(p, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	r := qs(t, "", "--format", "json", "accounts", "--log", p, "--mta", "qmail", "--queue", emptyQmailQueue(t))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if strings.ContainsRune(r.stdout, '\u009b') || !strings.Contains(r.stdout, `\u009b`) {
		t.Errorf("accounts JSON carries the raw C1 control or lost the name: %q", r.stdout)
	}
}

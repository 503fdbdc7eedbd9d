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
	file = qs(t, "", "--format", "json", "accounts", "--log", log, "--mta", "postfix", "--queue", t.TempDir())
	stdin := qs(t, js.String(), "--format", "json", "accounts", "--log", "-", "--mta", "postfix", "--queue", t.TempDir())
	if file.code != 0 || stdin.code != 0 {
		t.Fatalf("file %d %s; stdin %d %s", file.code, file.stderr, stdin.code, stdin.stderr)
	}
	strip := func(s string) string { return regexp.MustCompile(`"(first|last)_seen":"[^"]*"`).ReplaceAllString(s, "") }
	if strip(file.stdout) != strip(stdin.stdout) || len(jsonLines(t, file.stdout)) != 6 {
		t.Errorf("journal JSON on stdin reads differently:\n%s\n%s", file.stdout, stdin.stdout)
	}
	// hello@ spams from 15:58:58 on; before that only the staff logged in
	early := qs(t, "", "--format", "json", "accounts", "--log", log, "--until", "2026-11-22T15:58:58", "--mta", "postfix", "--queue", t.TempDir())
	earlyRows := jsonLines(t, early.stdout)
	if len(earlyRows) == 0 {
		t.Errorf("--until: no account: %s", early.stderr)
	}
	for _, row := range earlyRows {
		if str(row["sasl_username"]) == "hello@example.com" {
			t.Errorf("--until: hello@ before its first login: %v", row)
		}
	}
	late := qs(t, "", "--format", "json", "accounts", "--log", log, "--since", "2026-11-22T15:58:58", "--mta", "postfix", "--queue", t.TempDir())
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
		r := qs(t, "", "--format", f, "accounts", "--log", p, "--mta", "qmail", "--queue", t.TempDir())
		all := r.stdout + r.stderr
		if strings.Contains(all, "Hunter2") || strings.Contains(all, "\x1b") {
			t.Errorf("%s output carries the password or an escape: %q", f, all)
		}
		if !strings.Contains(r.stdout, "hello@example.com") {
			t.Errorf("%s: %q", f, r.stdout)
		}
	}
}

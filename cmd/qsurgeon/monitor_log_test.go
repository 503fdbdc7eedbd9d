package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/qsurgeon/qsurgeon/internal/clock"
)

// recentLog copies the Postfix fixture's real maillog with every stamp
// moved by the same amount, so that its last line lies `ago` before now
// (clock.Now, which the clock-shifted run moves in the binary too), and
// the file's modification time at now (RFC 3164's year). The lines are
// the real ones; only the times move, so a window "the last N minutes"
// means the same on every date the test runs.
func recentLog(t *testing.T, ago time.Duration) string {
	t.Helper()
	b, err := os.ReadFile(fixtureMaillog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	stamp := func(l string) time.Time {
		ts, err := time.ParseInLocation(time.Stamp, l[:15], time.Local)
		if err != nil {
			t.Fatalf("fixture line not in syslog form: %q", l)
		}
		return ts.AddDate(2026, 0, 0) // the fixture's year (time.Duration spans 292 years only)
	}
	now := clock.Now()
	delta := now.Add(-ago).Sub(stamp(lines[len(lines)-1]))
	var out strings.Builder
	for _, l := range lines {
		out.WriteString(stamp(l).Add(delta).In(time.Local).Format(time.Stamp))
		out.WriteString(l[15:])
		out.WriteByte('\n')
	}
	p := filepath.Join(t.TempDir(), "mail.log")
	if err := os.WriteFile(p, []byte(out.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, now, now); err != nil {
		t.Fatal(err)
	}
	return p
}

// logTruth counts hello@example.com's submissions and distinct client
// addresses with a grep of the real log, independently of maillog.
func logTruth(t *testing.T) (messages, addrs int) {
	b, err := os.ReadFile(fixtureMaillog)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`smtpd\[\d+\]: [0-9A-F]+: client=[^\[]*\[([^\]]+)\], sasl_method=\w+, sasl_username=hello@example\.com$`)
	seen := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			messages++
			seen[m[1]] = true
		}
	}
	if messages < 50 || len(seen) < 21 {
		t.Fatalf("fixture: hello@ sent %d messages from %d addresses: not above log_fanout=20", messages, len(seen))
	}
	return messages, len(seen)
}

// TestMonitorLogFanout: with --log, the real log's stolen account crosses
// log_fanout; the plugin's exit code, status line and perfdata say so;
// the window counts back from now, so the same log 20 minutes old is OK
// with --window 15m; the text file carries the log series.
func TestMonitorLogFanout(t *testing.T) {
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	msgs, addrs := logTruth(t)
	log := recentLog(t, time.Minute)
	r := qs(t, "", "--queue", q, "monitor", "--nagios", "--log", log, "--window", "15m", "--warn", "log_fanout=10", "--crit", "log_fanout=20")
	line := strings.TrimSpace(r.stdout)
	if r.code != 2 || !strings.HasPrefix(line, "QSURGEON CRITICAL - ") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	want := "logs, last 15m: top account hello@example.com: from " + itoa(addrs) + " client address(es), " + itoa(msgs) + " messages"
	if !strings.Contains(line, want) || !strings.Contains(line, "log_fanout "+itoa(addrs)+" > 20 (critical)") {
		t.Errorf("status line %q lacks %q or the alert", line, want)
	}
	perf := perfdata(t, line)
	if perf["log_fanout"] != [3]string{itoa(addrs), "10", "20"} || perf["log_messages"][0] != itoa(msgs) || perf["log_failed"][0] != "0" {
		t.Errorf("perfdata: log_fanout %v, log_messages %v, log_failed %v", perf["log_fanout"], perf["log_messages"], perf["log_failed"])
	}
	// WARNING only when the crit limit is above the fan-out.
	if r := qs(t, "", "--queue", q, "monitor", "--nagios", "--log", log, "--warn", "log_fanout=10", "--crit", "log_fanout=1000"); r.code != 1 || !strings.HasPrefix(r.stdout, "QSURGEON WARNING") {
		t.Errorf("warn: exit %d %q", r.code, r.stdout)
	}
	// The same log ending 20 minutes ago: nothing in the last 15, all in the last 30.
	old := recentLog(t, 20*time.Minute)
	r = qs(t, "", "--queue", q, "monitor", "--nagios", "--log", old, "--window", "15m", "--crit", "log_fanout=20")
	if r.code != 0 || !strings.Contains(r.stdout, "logs, last 15m: no account") || perfdata(t, r.stdout)["log_fanout"][0] != "0" {
		t.Errorf("old log, --window 15m: exit %d %q", r.code, r.stdout)
	}
	if r := qs(t, "", "--queue", q, "monitor", "--nagios", "--log", old, "--window", "30m", "--crit", "log_fanout=20"); r.code != 2 {
		t.Errorf("old log, --window 30m: exit %d %q", r.code, r.stdout)
	}
	// A log metric without --log, or a log that cannot be read: UNKNOWN.
	if r := qs(t, "", "--queue", q, "monitor", "--nagios", "--crit", "log_fanout=20"); r.code != 3 || !strings.Contains(r.stdout, "--log") {
		t.Errorf("no --log: exit %d %q", r.code, r.stdout)
	}
	if r := qs(t, "", "--queue", q, "monitor", "--nagios", "--log", filepath.Join(t.TempDir(), "nope.log"), "--crit", "log_fanout=20"); r.code != 3 || !strings.HasPrefix(r.stdout, "QSURGEON UNKNOWN") {
		t.Errorf("missing log: exit %d %q", r.code, r.stdout)
	}

	// Text file and JSON in one run.
	dir := t.TempDir()
	r = qs(t, "", "--queue", q, "-o", "json", "monitor", "--log", log, "--textfile", dir, "--top", "2", "--crit", "log_fanout=20")
	if r.code != 0 {
		t.Fatalf("textfile: exit %d %s", r.code, r.stderr)
	}
	js := jsonLines(t, r.stdout)[0]
	lv, _ := js["log"].(map[string]any)
	top, _ := lv["top_accounts"].([]any)
	if len(top) == 0 || str(top[0].(map[string]any)["name"]) != "hello@example.com" || int(top[0].(map[string]any)["client_addresses"].(float64)) != addrs ||
		js["status"] != "CRITICAL" || str(js["check"].(map[string]any)["offending_log_account"].(map[string]any)["name"]) != "hello@example.com" {
		t.Errorf("JSON log view: %v / %v", lv, js["check"])
	}
	path := filepath.Join(dir, "qsurgeon.prom")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("client_golang's text parser: %v", err)
	}
	fan := fams["qsurgeon_log_account_client_addresses"].GetMetric()
	if len(fan) != 2 {
		t.Errorf("--top 2: %d log account series", len(fan))
	}
	for _, m := range fan {
		if m.GetLabel()[0].GetValue() == "hello@example.com" && int(m.GetGauge().GetValue()) != addrs {
			t.Errorf("qsurgeon_log_account_client_addresses{hello} = %v, grep %d", m.GetGauge().GetValue(), addrs)
		}
	}
	if fams["qsurgeon_log_window_seconds"].GetMetric()[0].GetGauge().GetValue() != 900 || fams["qsurgeon_log_account_messages"] == nil || fams["qsurgeon_log_account_failed_logins"] == nil {
		t.Errorf("log series: %v", keys(fams))
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		in, _ := os.Open(path)
		defer in.Close()
		cmd.Stdin = in
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Error("promtool (Debian package prometheus) is not installed")
	}
}

// TestWatchLogHold: a --crit log_fanout threshold alone names the account
// --hold-new-from-account holds, through the same path as the queue
// thresholds (the dry run's plan, then the hold with its journal).
func TestWatchLogHold(t *testing.T) {
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	log := recentLog(t, time.Minute)
	want := 0
	for _, m := range loadPostfixTruth(t).Messages {
		if deref(m.SASLUsername) == "hello@example.com" && (m.Queue == "incoming" || m.Queue == "active" || m.Queue == "deferred") {
			want++
		}
	}
	r := qs(t, "", "--queue", q, "watch", "--count", "1", "--log", log, "--crit", "log_fanout=20", "--hold-new-from-account", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "CRITICAL") || !strings.Contains(r.stdout, "dry run: hold of "+itoa(want)+" message(s)") {
		t.Fatalf("dry run: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	// The log 20 minutes old, --window 15m: nothing to hold.
	if r := qs(t, "", "--queue", q, "watch", "--count", "1", "--log", recentLog(t, 20*time.Minute), "--crit", "log_fanout=20", "--hold-new-from-account", "--dry-run"); r.code != 0 || strings.Contains(r.stdout, "dry run: hold") {
		t.Errorf("old log: exit %d, stdout %q", r.code, r.stdout)
	}
	// Standard input lasts one check: a watch loop on it is refused.
	if r := qs(t, "", "--queue", q, "watch", "--log", "-", "--crit", "log_fanout=20"); r.code != exitUsage || !strings.Contains(r.stderr, "--count 1") {
		t.Errorf("watch --log -: exit %d %s", r.code, r.stderr)
	}
	journal := filepath.Join(t.TempDir(), "journal.jsonl")
	r = qs(t, "", "--queue", q, "watch", "--count", "1", "--log", log, "--crit", "log_fanout=20", "--hold-new-from-account", "--journal", journal)
	if r.code != 0 || !strings.Contains(r.stderr, "hold: "+itoa(want)+" done, 0 skipped, 0 failed") {
		t.Fatalf("hold: exit %d, stderr %s", r.code, r.stderr)
	}
	for _, m := range jsonLines(t, qs(t, "", "--queue", q, "-o", "json", "list").stdout) {
		if str(m["sasl_username"]) == "hello@example.com" && m["queue_name"] != "hold" && m["queue_name"] != "maildrop" {
			t.Errorf("%s of hello@example.com still in %s", m["queue_id"], m["queue_name"])
		}
	}
}

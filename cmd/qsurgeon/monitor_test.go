package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/qsurgeon/qsurgeon/internal/clock"
)

// truthAccounts counts the fixture's messages per queue and per account
// (SASL user, else a non-null envelope sender) from truth.json, with the
// distinct client addresses of each account.
func truthAccounts(t *testing.T) (queues map[string]int, acct map[string]int, fanout map[string]map[string]bool) {
	pt := loadPostfixTruth(t)
	queues, acct, fanout = map[string]int{}, map[string]int{}, map[string]map[string]bool{}
	for _, m := range pt.Messages {
		queues[m.Queue]++
		name := deref(m.SASLUsername)
		if name == "" {
			name = m.Sender
		}
		if name == "" {
			continue
		}
		acct[name]++
		if fanout[name] == nil {
			fanout[name] = map[string]bool{}
		}
		if c := deref(m.ClientAddr); c != "" {
			fanout[name][c] = true
		}
	}
	return queues, acct, fanout
}

// TestMonitorJSONMatchesTruth: the snapshot of the Postfix incident queue
// carries the host, the time, the per-queue counts and the top account
// with its fan-out, as the fixture's ground truth has them.
func TestMonitorJSONMatchesTruth(t *testing.T) {
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	r := qs(t, "", "--queue", q, "-o", "json", "monitor", "--host", "mx1.example", "--top", "3")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := jsonLines(t, r.stdout)[0]
	if got["host"] != "mx1.example" || str(got["time"]) == "" || got["status"] != "OK" {
		t.Errorf("host %v, time %v, status %v", got["host"], got["time"], got["status"])
	}
	queues, acct, fanout := truthAccounts(t)
	total := 0
	for name, n := range queues {
		total += n
		gq := got["queues"].(map[string]any)[name].(map[string]any)
		if int(gq["messages"].(float64)) != n {
			t.Errorf("queue %s: %v messages, truth %d", name, gq["messages"], n)
		}
	}
	if int(got["messages"].(float64)) != total {
		t.Errorf("messages %v, truth %d", got["messages"], total)
	}
	top := got["top_accounts"].([]any)
	if len(top) != 3 {
		t.Fatalf("--top 3 gave %d accounts", len(top))
	}
	a := top[0].(map[string]any)
	name := str(a["name"])
	for other, n := range acct {
		if n > acct[name] {
			t.Errorf("top account %s has %d messages, but %s has %d", name, acct[name], other, n)
		}
	}
	if int(a["messages"].(float64)) != acct[name] || int(a["client_addresses"].(float64)) != len(fanout[name]) {
		t.Errorf("top account %s: %v messages from %v addresses; truth %d from %d", name, a["messages"], a["client_addresses"], acct[name], len(fanout[name]))
	}
	if int(got["distinct_accounts"].(float64)) != len(acct) {
		t.Errorf("distinct accounts %v, truth %d", got["distinct_accounts"], len(acct))
	}
}

var perfRE = regexp.MustCompile(`'([a-z_]+)'=([0-9.]+)(B|s|%)?;([0-9.]*);([0-9.]*);`)

// perfdata parses a plugin line's performance data.
func perfdata(t *testing.T, line string) map[string][3]string {
	t.Helper()
	_, perf, ok := strings.Cut(line, " | ")
	if !ok {
		t.Fatalf("no perfdata in %q", line)
	}
	out := map[string][3]string{}
	for _, f := range strings.Fields(perf) {
		m := perfRE.FindStringSubmatch(f + ";")
		if m == nil {
			t.Fatalf("perfdata %q is not 'label'=value[UOM];warn;crit;min[;max]", f)
		}
		out[m[1]] = [3]string{m[2], m[4], m[5]}
	}
	return out
}

// TestMonitorNagios: the plugin's exit code and status word follow the
// thresholds, one line with perfdata; errors are UNKNOWN (3), never
// qsurgeon's own codes.
func TestMonitorNagios(t *testing.T) {
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	queues, acct, fanout := truthAccounts(t)
	deferred := queues["deferred"]
	top := "hello@example.com"
	if acct[top] < acct["bob@example.com"] {
		t.Fatalf("fixture: %s is not the top account", top)
	}
	cases := []struct {
		name string
		args []string
		code int
		word string
	}{
		{"no thresholds", nil, 0, "OK"},
		{"deferred at its limit", []string{"--warn", fmt.Sprintf("deferred=%d", deferred)}, 0, "OK"},
		{"deferred above warn", []string{"--warn", fmt.Sprintf("deferred=%d", deferred-1), "--crit", fmt.Sprintf("deferred=%d", deferred*2)}, 1, "WARNING"},
		{"fanout above crit", []string{"--warn", "deferred=100000", "--crit", fmt.Sprintf("fanout=%d", len(fanout[top])-1)}, 2, "CRITICAL"},
		{"share above crit", []string{"--crit", "share=50%"}, 2, "CRITICAL"},
		{"age above warn", []string{"--warn", "age=1h", "--crit", "age=1000d"}, 1, "WARNING"},
		{"unknown metric", []string{"--warn", "weight=3"}, 3, "UNKNOWN"},
		{"bad threshold", []string{"--crit", "deferred"}, 3, "UNKNOWN"},
		{"bad flag", []string{"--critical", "deferred=3"}, 3, "UNKNOWN"},
	}
	for _, c := range cases {
		r := qs(t, "", append([]string{"--queue", q, "monitor", "--nagios"}, c.args...)...)
		if r.code != c.code || !strings.HasPrefix(r.stdout, "QSURGEON "+c.word+" - ") || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("%s: exit %d, output %q; want %d and QSURGEON %s", c.name, r.code, r.stdout, c.code, c.word)
			continue
		}
		if c.code == 3 {
			continue
		}
		p := perfdata(t, r.stdout)
		if p["deferred"][0] != strconv.Itoa(deferred) || p["top_account_fanout"][0] != strconv.Itoa(len(fanout[top])) || p["top_account_messages"][0] != strconv.Itoa(acct[top]) {
			t.Errorf("%s: perfdata %v; truth deferred=%d fanout=%d account=%d", c.name, p, deferred, len(fanout[top]), acct[top])
		}
		if c.name == "deferred above warn" && (p["deferred"][1] != strconv.Itoa(deferred-1) || p["deferred"][2] != strconv.Itoa(deferred*2)) {
			t.Errorf("deferred perfdata thresholds %v", p["deferred"])
		}
	}
	r := qs(t, "", "--queue", filepath.Join(q, "nonexistent"), "monitor", "--nagios")
	if r.code != 3 || !strings.HasPrefix(r.stdout, "QSURGEON UNKNOWN - ") {
		t.Errorf("missing queue: exit %d %q, want 3 UNKNOWN", r.code, r.stdout)
	}
	// Without --nagios the codes are qsurgeon's own.
	if r := qs(t, "", "--queue", filepath.Join(q, "nonexistent"), "monitor"); r.code != exitNoQueue {
		t.Errorf("missing queue without --nagios: exit %d, want %d", r.code, exitNoQueue)
	}
}

// TestMonitorTextfile: the node_exporter file parses with the client
// library's own text parser (and promtool check metrics when installed),
// carries postfix_exporter's showq histograms with the truth's counts,
// and per-account series for the top N accounts only.
func TestMonitorTextfile(t *testing.T) {
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	dir := t.TempDir()
	r := qs(t, "", "--queue", q, "monitor", "--textfile", dir, "--top", "2")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "qsurgeon.prom" {
		t.Fatalf("textfile dir holds %v, want qsurgeon.prom alone (the temporary file renamed)", entries)
	}
	fams := promFile(t, filepath.Join(dir, "qsurgeon.prom"))
	queues, acct, _ := truthAccounts(t)
	size := fams["postfix_showq_message_size_bytes"]
	if size == nil || fams["postfix_showq_message_age_seconds"] == nil {
		t.Fatalf("no postfix_exporter showq histograms in %v", keys(fams))
	}
	seen := 0
	for _, m := range size.GetMetric() {
		qn := m.GetLabel()[0].GetValue()
		if got := int(m.GetHistogram().GetSampleCount()); got != queues[qn] {
			t.Errorf("size histogram queue %s: count %d, truth %d", qn, got, queues[qn])
		}
		seen++
	}
	if seen < len(queues) {
		t.Errorf("size histogram has %d queues, truth %d", seen, len(queues))
	}
	accts := fams["qsurgeon_account_messages"].GetMetric()
	if len(accts) != 2 {
		t.Errorf("--top 2: %d account series", len(accts))
	}
	for _, m := range accts {
		var name string
		for _, l := range m.GetLabel() {
			if l.GetName() == "account" {
				name = l.GetValue()
			}
		}
		if int(m.GetGauge().GetValue()) != acct[name] {
			t.Errorf("account %s: %v, truth %d", name, m.GetGauge().GetValue(), acct[name])
		}
	}
	if _, ok := fams["qsurgeon_snapshot_timestamp_seconds"]; !ok {
		t.Error("no snapshot time")
	}
	// --format json on either side of the command prints the snapshot too.
	for _, args := range [][]string{{"-o", "json", "monitor", "--textfile", dir}, {"monitor", "--textfile", dir, "-o", "json"}} {
		r := qs(t, "", append([]string{"--queue", q}, args...)...)
		if r.code != 0 || len(jsonLines(t, r.stdout)) != 1 {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
	// A directory that is not there is an error naming the flag.
	if r := qs(t, "", "--queue", q, "monitor", "--textfile", filepath.Join(dir, "missing")); r.code != exitError || !strings.Contains(r.stderr, "--textfile") {
		t.Errorf("missing textfile dir: exit %d %s", r.code, r.stderr)
	}
}

func keys(m map[string]*dto.MetricFamily) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestMonitorQmail: the qmail incident queue's snapshot counts the queue
// and todo, and the SASL user of the ESMTPA Received header leads.
func TestMonitorQmail(t *testing.T) {
	q := filepath.Join(extract(t, qmailFixture+"/queue.tar.gz"), "queue")
	r := qs(t, "", "--queue", q, "-o", "json", "monitor", "--crit", "fanout=10")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(filepath.Join(qmailFixture, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth struct {
		Counts struct {
			Messages int            `json:"messages"`
			Auth     map[string]int `json:"auth_user_messages"`
		} `json:"counts"`
	}
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	want, wantN := "", 0
	for u, n := range truth.Counts.Auth {
		if n > wantN {
			want, wantN = u, n
		}
	}
	got := jsonLines(t, r.stdout)[0]
	qu := got["queues"].(map[string]any)
	n := qu["queue"].(map[string]any)["messages"].(float64) + qu["todo"].(map[string]any)["messages"].(float64)
	if int(n) != truth.Counts.Messages || int(got["messages"].(float64)) != truth.Counts.Messages {
		t.Errorf("qmail messages %v (queue+todo %v), truth %d", got["messages"], n, truth.Counts.Messages)
	}
	top := got["top_accounts"].([]any)[0].(map[string]any)
	if top["name"] != want || top["kind"] != "sasl_user" || int(top["messages"].(float64)) != wantN {
		t.Errorf("qmail top account %v, truth %s (sasl_user) with %d", top, want, wantN)
	}
	if got["status"] != "CRITICAL" {
		t.Errorf("status %v with --crit fanout=10 and %v client addresses", got["status"], top["client_addresses"])
	}
}

// TestMonitorUnderNagios4 runs monitor --nagios the way a monitoring
// server does: a private Debian nagios4 (package nagios4-core) with one
// service whose check command is qsurgeon, on a real queue. Nagios's own
// status file must then hold qsurgeon's state, status line and perfdata.
func TestMonitorUnderNagios4(t *testing.T) {
	nagios, err := exec.LookPath("nagios4")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/nagios4"); err != nil {
			t.Fatal("nagios4 (Debian package nagios4-core) is not installed")
		}
		nagios = "/usr/sbin/nagios4"
	}
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	dir := t.TempDir()
	args := []string{"--queue", q, "monitor", "--nagios", "--warn", "deferred=100", "--crit", "fanout=20"}
	direct := qs(t, "", args...)
	line, perf, _ := strings.Cut(strings.TrimSpace(direct.stdout), " | ")

	must := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "checkresults"), 0o755)
	must("resource.cfg", "")
	cfg := strings.NewReplacer("DIR", dir).Replace(`log_file=DIR/nagios.log
cfg_file=DIR/objects.cfg
object_cache_file=DIR/objects.cache
precached_object_file=DIR/objects.precache
resource_file=DIR/resource.cfg
status_file=DIR/status.dat
status_update_interval=1
nagios_user=root
nagios_group=root
check_external_commands=0
command_file=DIR/nagios.cmd
lock_file=DIR/nagios.lock
temp_file=DIR/nagios.tmp
temp_path=DIR
check_result_path=DIR/checkresults
query_socket=DIR/nagios.qh
retain_state_information=0
state_retention_file=DIR/retention.dat
interval_length=1
max_service_check_spread=1
service_inter_check_delay_method=n
execute_host_checks=0
enable_notifications=0
enable_event_handlers=0
check_for_updates=0
`)
	must("nagios.cfg", cfg)
	must("objects.cfg", fmt.Sprintf(`define command {
  command_name check_qsurgeon
  command_line %s %s
}
define command {
  command_name check_dummy
  command_line /bin/true
}
define timeperiod {
  timeperiod_name always
  alias always
  sunday 00:00-24:00
  monday 00:00-24:00
  tuesday 00:00-24:00
  wednesday 00:00-24:00
  thursday 00:00-24:00
  friday 00:00-24:00
  saturday 00:00-24:00
}
define contact {
  contact_name nobody
  host_notifications_enabled 0
  service_notifications_enabled 0
  host_notification_period always
  service_notification_period always
  host_notification_options n
  service_notification_options n
  host_notification_commands check_dummy
  service_notification_commands check_dummy
}
define host {
  host_name mx1
  address 127.0.0.1
  check_command check_dummy
  max_check_attempts 1
  check_period always
  notification_period always
  contacts nobody
}
define service {
  host_name mx1
  service_description mailqueue
  check_command check_qsurgeon
  max_check_attempts 1
  check_interval 60
  retry_interval 60
  check_period always
  notification_period always
  contacts nobody
}
`, qsBin, strings.Join(args, " ")))
	if out, err := exec.Command(nagios, "-v", filepath.Join(dir, "nagios.cfg")).CombinedOutput(); err != nil {
		t.Fatalf("nagios4 -v: %v\n%s", err, out)
	}
	cmd := exec.Command(nagios, filepath.Join(dir, "nagios.cfg"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	}()
	var st map[string]string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		st = serviceStatus(filepath.Join(dir, "status.dat"))
		if st["has_been_checked"] == "1" {
			break
		}
	}
	if st["has_been_checked"] != "1" {
		log, _ := os.ReadFile(filepath.Join(dir, "nagios.log"))
		t.Fatalf("nagios4 never ran the check: %v\n%s", st, log)
	}
	if st["current_state"] != strconv.Itoa(direct.code) || direct.code != 2 {
		t.Errorf("nagios state %s, qsurgeon exit %d (want 2: fanout above 20)", st["current_state"], direct.code)
	}
	// The two runs are seconds apart: the oldest age may differ by that.
	got, want := perfdata(t, "x | "+st["performance_data"]), perfdata(t, "x | "+perf)
	ga, _ := strconv.Atoi(got["oldest_age"][0])
	wa, _ := strconv.Atoi(want["oldest_age"][0])
	delete(got, "oldest_age")
	delete(want, "oldest_age")
	oldest := regexp.MustCompile(`oldest [0-9dhms]+`)
	if oldest.ReplaceAllString(st["plugin_output"], "") != oldest.ReplaceAllString(line, "") || fmt.Sprint(got) != fmt.Sprint(want) || ga < wa || ga > wa+60 {
		t.Errorf("nagios read\n  %q | %q\nqsurgeon printed\n  %q | %q", st["plugin_output"], st["performance_data"], line, perf)
	}
}

// serviceStatus is the first servicestatus block of a Nagios status file.
func serviceStatus(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "servicestatus {":
			in = true
		case in && l == "}":
			return out
		case in:
			if k, v, ok := strings.Cut(l, "="); ok {
				out[k] = v
			}
		}
	}
	return out
}

// TestSystemdWatchUnit: contrib/systemd's service runs a command line
// qsurgeon accepts (its ExecStart with the default QSURGEON_WATCH_ARGS and
// with the defaults file's, on a real queue), and systemd-analyze verify
// accepts the unit and the timer when systemd is installed.
func TestSystemdWatchUnit(t *testing.T) {
	unit, err := os.ReadFile("../../contrib/systemd/qsurgeon-watch.service")
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := os.ReadFile("../../contrib/systemd/qsurgeon-watch.default")
	if err != nil {
		t.Fatal(err)
	}
	exec1 := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/qsurgeon (.*)$`).FindSubmatch(unit)
	env := regexp.MustCompile(`(?m)^Environment="QSURGEON_WATCH_ARGS=(.*)"$`).FindSubmatch(unit)
	def := regexp.MustCompile(`(?m)^QSURGEON_WATCH_ARGS="(.*)"$`).FindSubmatch(defaults)
	if exec1 == nil || env == nil || def == nil {
		t.Fatalf("unit or defaults file lost its ExecStart/QSURGEON_WATCH_ARGS lines")
	}
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	dir := t.TempDir()
	for _, args := range []string{string(env[1]), string(def[1])} {
		line := strings.ReplaceAll(string(exec1[1]), "$QSURGEON_WATCH_ARGS", args)
		line = strings.ReplaceAll(line, "/var/lib/qsurgeon/", dir+"/")
		line = strings.ReplaceAll(line, "/var/lib/prometheus/node-exporter", dir)
		line = strings.ReplaceAll(line, "/usr/local/sbin/qsurgeon-alert", "true")
		r := qs(t, "", append([]string{"--queue", q}, strings.Fields(line)...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "CRITICAL (was OK)") {
			t.Errorf("qsurgeon %s: exit %d, %q %s", line, r.code, r.stdout, r.stderr)
		}
		os.Remove(filepath.Join(dir, "watch.state"))
	}
	if _, err := os.Stat(filepath.Join(dir, "qsurgeon.prom")); err != nil {
		t.Errorf("the defaults' --textfile wrote nothing: %v", err)
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit syntax not verified")
		return
	}
	ud := t.TempDir()
	os.WriteFile(filepath.Join(ud, "qsurgeon-watch.service"), []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/qsurgeon", qsBin)), 0o644)
	timer, _ := os.ReadFile("../../contrib/systemd/qsurgeon-watch.timer")
	os.WriteFile(filepath.Join(ud, "qsurgeon-watch.timer"), timer, 0o644)
	out, err := exec.Command(sa, "verify", "--man=no", filepath.Join(ud, "qsurgeon-watch.service"), filepath.Join(ud, "qsurgeon-watch.timer")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

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
	fams := promFile(t, filepath.Join(dir, "qsurgeon.prom"))
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

// promFile parses a Prometheus textfile with client_golang's own parser,
// and has Prometheus's promtool check it where it is installed (CI
// installs it).
func promFile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
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
	return fams
}

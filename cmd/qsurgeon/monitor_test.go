package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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
	path := filepath.Join(dir, "qsurgeon.prom")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("client_golang's text parser: %v", err)
	}
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

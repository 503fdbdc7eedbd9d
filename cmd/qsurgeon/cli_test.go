package main

// These tests drive qsurgeon as the user runs it: a built binary, real
// command lines, real queues made by real MTAs (the fixtures in
// testdata/queues), checked against the ground truth that came with them.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

var qsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qsurgeon-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qsBin = filepath.Join(dir, "qsurgeon")
	// The clock-shifted run (make test-clock-ahead) builds the binary it
	// drives with the same moved clock as the tests themselves.
	args := []string{"build", "-o", qsBin}
	if os.Getenv("QSURGEON_CLOCK_SHIFT") != "" {
		args = append(args, "-tags", "qsurgeon_clockshift")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building qsurgeon: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	postfixFixture = "../../testdata/queues/postfix-incident"
	qmailFixture   = "../../testdata/queues/qmail-incident"
)

// extract unpacks a fixture tarball (numeric owners kept when root) into a
// fresh directory and returns it.
func extract(t testing.TB, tarball string) string {
	t.Helper()
	return testkit.Extract(t, tarball)
}

type result struct {
	stdout, stderr string
	code           int
}

// qs runs the binary with no terminal on stdin.
func qs(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(qsBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running qsurgeon %v: %v", args, err)
	}
	return result{so.String(), se.String(), code}
}

func jsonLines(t testing.TB, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %v: %.200s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// postfixTruth is the part of the fixture's truth.json the tests compare.
type postfixTruth struct {
	Messages []struct {
		Queue        string  `json:"queue"`
		QueueID      string  `json:"queue_id"`
		Path         string  `json:"path"`
		Sender       string  `json:"sender"`
		SASLUsername *string `json:"sasl_username"`
		ClientAddr   *string `json:"client_address"`
		LogClient    *string `json:"log_client_address"`
		ArrivalTime  int64   `json:"arrival_time"`
		Subject      *string `json:"subject_decoded"`
		Recipients   []struct {
			Address string `json:"address"`
			State   string `json:"state"`
		} `json:"recipients"`
		LogReasons []struct {
			Reason string `json:"reason"`
		} `json:"log_reasons"`
	} `json:"messages"`
}

func loadPostfixTruth(t testing.TB) postfixTruth {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(postfixFixture, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pt postfixTruth
	if err := json.Unmarshal(b, &pt); err != nil {
		t.Fatal(err)
	}
	if len(pt.Messages) == 0 {
		t.Fatal("truth.json has no messages")
	}
	return pt
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func addrs(v any, key string) []string {
	var out []string
	arr, _ := v.([]any)
	for _, x := range arr {
		if m, ok := x.(map[string]any); ok {
			out = append(out, str(m[key]))
		}
	}
	sort.Strings(out)
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func TestListPostfixMatchesTruth(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	got := listBy(t, func(m map[string]any) string { return str(m["queue_name"]) + "/" + str(m["queue_id"]) }, root)
	truth := loadPostfixTruth(t)
	if len(got) != len(truth.Messages) {
		t.Errorf("listed %d messages, the queue holds %d", len(got), len(truth.Messages))
	}
	for _, tm := range truth.Messages {
		key := tm.Queue + "/" + tm.QueueID
		o := got[key]
		if o == nil {
			t.Errorf("%s: not listed", key)
			continue
		}
		wantSender := tm.Sender
		if wantSender == "" {
			wantSender = "MAILER-DAEMON"
		}
		if str(o["sender"]) != wantSender || o["null_sender"] != (tm.Sender == "") {
			t.Errorf("%s: sender %q null=%v, want %q", key, o["sender"], o["null_sender"], tm.Sender)
		}
		var pend, done []string
		for _, rc := range tm.Recipients {
			switch rc.State {
			case "todo":
				pend = append(pend, rc.Address)
			case "done":
				done = append(done, rc.Address)
			}
		}
		sort.Strings(pend)
		sort.Strings(done)
		if g := addrs(o["recipients"], "address"); !slices.Equal(g, pend) {
			t.Errorf("%s: pending %v, want %v", key, g, pend)
		}
		if g := addrs(o["done_recipients"], "address"); !slices.Equal(g, done) {
			t.Errorf("%s: done %v, want %v", key, g, done)
		}
		if str(o["sasl_username"]) != deref(tm.SASLUsername) {
			t.Errorf("%s: sasl_username %q, want %q", key, o["sasl_username"], deref(tm.SASLUsername))
		}
		wantIP := deref(tm.ClientAddr)
		if wantIP == "" {
			wantIP = deref(tm.LogClient)
		}
		if str(o["client_address"]) != wantIP {
			t.Errorf("%s: client_address %q, want %q", key, o["client_address"], wantIP)
		}
		if at, _ := o["arrival_time"].(float64); int64(at) != tm.ArrivalTime {
			t.Errorf("%s: arrival_time %v, want %d", key, o["arrival_time"], tm.ArrivalTime)
		}
		if str(o["path"]) != tm.Path || str(o["mta"]) != "postfix" {
			t.Errorf("%s: path %q mta %q, want %q postfix", key, o["path"], o["mta"], tm.Path)
		}
	}
}

// TestListPostfixMatchesPostqueue compares with what the real postqueue -j
// printed for the same queue: the postqueue members must be identical.
func TestListPostfixMatchesPostqueue(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	got := listByID(t, root)
	b, err := os.ReadFile(filepath.Join(postfixFixture, "postqueue.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := jsonLines(t, string(b))
	if len(want) == 0 {
		t.Fatal("postqueue.json is empty")
	}
	for _, w := range want {
		id := str(w["queue_id"])
		g := got[id]
		if g == nil {
			t.Errorf("%s: in postqueue -j, not listed", id)
			continue
		}
		for _, k := range []string{"queue_name", "arrival_time", "message_size", "forced_expire", "sender"} {
			if fmt.Sprint(g[k]) != fmt.Sprint(w[k]) {
				t.Errorf("%s: %s = %v, postqueue says %v", id, k, g[k], w[k])
			}
		}
		// Same recipients with the same reasons. (postqueue lists the defer
		// log's entries first, in the order of the last delivery attempt;
		// qsurgeon lists them in queue-file order.)
		type rr struct{ a, reason string }
		var gr, wr []rr
		for _, x := range g["recipients"].([]any) {
			m := x.(map[string]any)
			gr = append(gr, rr{str(m["address"]), str(m["delay_reason"])})
		}
		for _, x := range w["recipients"].([]any) {
			m := x.(map[string]any)
			wr = append(wr, rr{str(m["address"]), str(m["delay_reason"])})
		}
		less := func(a, b rr) int { return strings.Compare(a.a+"\x00"+a.reason, b.a+"\x00"+b.reason) }
		slices.SortFunc(gr, less)
		slices.SortFunc(wr, less)
		if !slices.Equal(gr, wr) {
			t.Errorf("%s: recipients %v, postqueue says %v", id, gr, wr)
		}
	}
}

func TestFilterFlagsPostfix(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	truth := loadPostfixTruth(t)
	type tm = struct {
		queue, id, sender, sasl, ip, subject string
		pending                              []string
		reasons                              []string
	}
	var msgs []tm
	for _, m := range truth.Messages {
		x := tm{queue: m.Queue, id: m.QueueID, sender: m.Sender, sasl: deref(m.SASLUsername), subject: deref(m.Subject)}
		x.ip = deref(m.ClientAddr)
		if x.ip == "" {
			x.ip = deref(m.LogClient)
		}
		for _, rc := range m.Recipients {
			if rc.State == "todo" {
				x.pending = append(x.pending, rc.Address)
			}
		}
		for _, lr := range m.LogReasons {
			x.reasons = append(x.reasons, lr.Reason)
		}
		msgs = append(msgs, x)
	}
	inNet := func(ip, cidr string) bool {
		a, err := netip.ParseAddr(ip)
		return err == nil && netip.MustParsePrefix(cidr).Contains(a)
	}
	senderRe := regexp.MustCompile(`^[a-z]+[0-9]+@example\.com$`)
	cases := []struct {
		args []string
		want func(tm) bool
	}{
		{[]string{"--sasl-user", "hello@example.com"}, func(m tm) bool { return m.sasl == "hello@example.com" }},
		{[]string{"--sasl-user", "hello@example.com", "--sasl-user", "alice@example.com"}, func(m tm) bool { return m.sasl == "hello@example.com" || m.sasl == "alice@example.com" }},
		{[]string{"--null-sender"}, func(m tm) bool { return m.sender == "" }},
		{[]string{"--not-null-sender", "--not-sasl-user", "hello@example.com"}, func(m tm) bool { return m.sender != "" && m.sasl != "hello@example.com" }},
		{[]string{"--queue-name", "hold"}, func(m tm) bool { return m.queue == "hold" }},
		{[]string{"--sender", "bob@example.com"}, func(m tm) bool { return m.sender == "bob@example.com" }},
		{[]string{"--sender", `/^[a-z]+[0-9]+@example\.com$/`}, func(m tm) bool { return senderRe.MatchString(m.sender) }},
		{[]string{"--client", "100.0.0.0/8"}, func(m tm) bool { return inNet(m.ip, "100.0.0.0/8") }},
		{[]string{"--subject", "Undelivered Mail"}, func(m tm) bool { return strings.Contains(m.subject, "Undelivered Mail") }},
		{[]string{"--subject", "未払い料金"}, func(m tm) bool { return strings.Contains(m.subject, "未払い料金") }},
		{[]string{"--reason", "unknown user"}, func(m tm) bool {
			return slices.ContainsFunc(m.reasons, func(r string) bool { return strings.Contains(r, "unknown user") })
		}},
		{[]string{"--sasl-user", "hello@example.com", "--queue-name", "deferred", "--client", "100.0.0.0/8"}, func(m tm) bool {
			return m.sasl == "hello@example.com" && m.queue == "deferred" && inNet(m.ip, "100.0.0.0/8")
		}},
		{[]string{"--recipient", "@fastbox.example.net"}, func(m tm) bool {
			return slices.ContainsFunc(m.pending, func(a string) bool { return strings.HasSuffix(a, "@fastbox.example.net") })
		}},
		{[]string{"--sasl-user", "hello@example.com", "--invert"}, func(m tm) bool { return m.sasl != "hello@example.com" }},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			want := map[string]bool{}
			for _, m := range msgs {
				if c.want(m) {
					want[m.id] = true
				}
			}
			if len(want) == 0 {
				t.Fatal("the case selects nothing in the fixture: it would prove nothing")
			}
			// Global flags both before and after the command name.
			for _, args := range [][]string{
				append([]string{"--queue", root, "--format", "ids", "list"}, c.args...),
				append(append([]string{"list"}, c.args...), "--queue", root, "--format", "ids"),
			} {
				r := qs(t, "", args...)
				if r.code != 0 {
					t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
				}
				got := map[string]bool{}
				for _, l := range strings.Fields(r.stdout) {
					got[l] = true
				}
				for id := range want {
					if !got[id] {
						t.Errorf("%v: %s not selected", args, id)
					}
				}
				for id := range got {
					if !want[id] {
						t.Errorf("%v: %s selected but should not be", args, id)
					}
				}
			}
		})
	}
}

func TestIDsFromStdin(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	all := qs(t, "", "--queue", root, "--format", "ids", "list", "--queue-name", "hold")
	ids := strings.Fields(all.stdout)
	if len(ids) < 2 {
		t.Fatalf("want held messages in the fixture, got %q", all.stdout)
	}
	// mailq decorations (! for hold) are tolerated.
	in := ids[0] + "!\n\n" + ids[1] + "\n"
	r := qs(t, in, "--queue", root, "--format", "ids", "list", "--id", "-")
	got := strings.Fields(r.stdout)
	sort.Strings(got)
	want := []string{ids[0], ids[1]}
	sort.Strings(want)
	if r.code != 0 || !slices.Equal(got, want) {
		t.Fatalf("exit %d, got %v, want %v (%s)", r.code, got, want, r.stderr)
	}
}

func TestSummaryPostfix(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	truth := loadPostfixTruth(t)
	r := qs(t, "", "--queue", root, "--format", "json", "summary", "--top", "0")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var s summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	perQueue := map[string]int64{}
	var null int64
	sasl := map[string]int64{}
	clients := map[string]map[string]bool{}
	for _, m := range truth.Messages {
		perQueue[m.Queue]++
		if m.Sender == "" {
			null++
		}
		if u := deref(m.SASLUsername); u != "" {
			sasl[u]++
			if clients[u] == nil {
				clients[u] = map[string]bool{}
			}
			clients[u][deref(m.ClientAddr)] = true
		}
	}
	if s.Messages != int64(len(truth.Messages)) || s.NullSender != null {
		t.Errorf("messages %d null %d, want %d %d", s.Messages, s.NullSender, len(truth.Messages), null)
	}
	for q, n := range perQueue {
		if s.Queues[q] == nil || s.Queues[q].Count != n {
			t.Errorf("queue %s: %+v, want %d", q, s.Queues[q], n)
		}
	}
	if len(s.SASLUsers) != len(sasl) {
		t.Fatalf("%d SASL users, want %d", len(s.SASLUsers), len(sasl))
	}
	for _, e := range s.SASLUsers {
		if e.Count != sasl[e.Key] || e.Clients != len(clients[e.Key]) {
			t.Errorf("SASL user %s: %d messages from %d clients, want %d from %d", e.Key, e.Count, e.Clients, sasl[e.Key], len(clients[e.Key]))
		}
	}
	if s.SASLUsers[0].Key != "hello@example.com" {
		t.Errorf("top SASL user %q, want the stolen account", s.SASLUsers[0].Key)
	}
	// The table form is for a terminal; it must at least name the account.
	r = qs(t, "", "--queue", root, "summary")
	if r.code != 0 || !strings.Contains(r.stdout, "hello@example.com") || !strings.Contains(r.stdout, "deferred") {
		t.Errorf("table summary: exit %d\n%s", r.code, r.stdout)
	}
}

func TestShowPostfix(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	truth := loadPostfixTruth(t)
	for _, m := range truth.Messages {
		if deref(m.Subject) == "" || deref(m.SASLUsername) == "" {
			continue
		}
		r := qs(t, "", "--queue", root, "show", m.QueueID)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		for _, want := range []string{m.QueueID, deref(m.SASLUsername), deref(m.Subject)} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("show %s lacks %q:\n%s", m.QueueID, want, r.stdout)
			}
		}
		raw := qs(t, "", "--queue", root, "show", "--raw", m.QueueID)
		if raw.code != 0 || !strings.Contains(raw.stdout, "\nSubject:") && !strings.HasPrefix(raw.stdout, "Subject:") {
			t.Errorf("show --raw: exit %d, no Subject header:\n%.300s", raw.code, raw.stdout)
		}
		break
	}
	r := qs(t, "", "--queue", root, "show", "NOSUCHID")
	if r.code != exitError {
		t.Errorf("show of a missing ID: exit %d, want %d", r.code, exitError)
	}
}

func TestExitCodes(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"--queue", "/nonexistent/queue", "list"}, exitNoQueue},
		{[]string{"--queue", t.TempDir(), "list"}, exitNoQueue},
		{[]string{"--queue", root, "list", "--no-such-flag"}, exitUsage},
		{[]string{"--queue", root, "--format", "yaml", "list"}, exitUsage},
		{[]string{"--queue", root, "list", "--older-than", "soon"}, exitUsage},
		{[]string{"--queue", root, "list", "--sender", "/[/"}, exitUsage},
		{[]string{"--queue", root, "list", "--client", "300.1.2.3/8"}, exitUsage},
		{[]string{"--queue", root, "list", "--sasl-user", "nobody@nowhere.example"}, exitOK},
	}
	for _, c := range cases {
		if r := qs(t, "", c.args...); r.code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.args, r.code, c.code, r.stderr)
		}
	}
	help := qs(t, "", "--help")
	if !strings.Contains(help.stdout, "EXIT CODES") {
		t.Errorf("--help does not document the exit codes:\n%s", help.stdout)
	}
}

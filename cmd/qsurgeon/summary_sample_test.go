package main

// summary --sample and the live summary, through the binary: on the
// real-MTA fixtures, on a generated queue of 50,000 messages, and on a
// pseudo-terminal.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/qsurgeon/qsurgeon/estimate"
	"github.com/qsurgeon/qsurgeon/internal/gen"
)

func fixtureRoot(t *testing.T, mta string) string {
	t.Helper()
	if mta == "qmail" {
		return filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue")
	}
	return filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
}

func summaryJSON(t *testing.T, args ...string) summary {
	t.Helper()
	r := qs(t, "", append([]string{"--format", "json", "summary"}, args...)...)
	if r.code != 0 {
		t.Fatalf("summary %v: exit %d: %s", args, r.code, r.stderr)
	}
	var s summary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	return s
}

// TestSummarySampleFixtures: a seeded sample's interval holds the exact
// share of the top accounts; a sample as large as the queue is the exact
// summary, with zero-width intervals; the JSON members are the documented
// ones.
func TestSummarySampleFixtures(t *testing.T) {
	for _, mta := range []string{"postfix", "qmail"} {
		t.Run(mta, func(t *testing.T) {
			root := fixtureRoot(t, mta)
			// The exact summary and the whole-queue sample in one run.
			s := summaryJSON(t, "--queue", root, "--top", "0", "--sample", "100000")
			est := s.Sample
			if est == nil || !est.Exact || est.Population != s.Messages || est.SampleSize != s.Messages || est.Messages != s.Messages {
				t.Fatalf("whole-queue sample: %+v, exact summary has %d messages", est, s.Messages)
			}
			var queues []topEntry
			for q, c := range s.Queues {
				queues = append(queues, topEntry{Key: q, Count: c.Count})
			}
			for _, c := range []struct {
				name  string
				got   []estimate.Share
				exact []topEntry
			}{
				{"queues", est.Queues, queues},
				{"SASL users", est.SASLUsers, s.SASLUsers}, {"senders", est.Senders, s.Senders},
				{"client networks", est.ClientNetworks, s.Networks}, {"recipient domains", est.RecipientDomains, s.RcptDomains},
			} {
				want := map[string]int64{}
				for _, e := range c.exact {
					want[e.Key] = e.Count
				}
				if len(c.got) != len(want) || len(want) == 0 {
					t.Errorf("%s: %d keys estimated, %d exact", c.name, len(c.got), len(want))
				}
				for _, x := range c.got {
					if x.Count != want[x.Key] || x.CILow != x.Share || x.CIHigh != x.Share {
						t.Errorf("%s %q: %+v, want count %d, zero width", c.name, x.Key, x, want[x.Key])
					}
				}
			}

			// A sample of a third of the queue, seeded: the exact share of
			// each of the top three accounts lies in its interval.
			n := s.Messages / 3
			r := qs(t, "", "--queue", root, "--format", "json", "summary", "--sample", strconv.FormatInt(n, 10), "--seed", "20261207", "--sample-only")
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var raw map[string]json.RawMessage
			var rawSample map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw["sample"], &rawSample); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"sample_size", "population", "top_sasl_users", "seed"} {
				if _, ok := rawSample[k]; !ok {
					t.Errorf("sample object lacks %q: %s", k, r.stdout)
				}
			}
			if _, ok := raw["messages"]; ok {
				t.Errorf("--sample-only prints exact members: %s", r.stdout)
			}
			var so struct{ Sample estimate.Estimate }
			if err := json.Unmarshal([]byte(r.stdout), &so); err != nil {
				t.Fatal(err)
			}
			if so.Sample.SampleSize != n || so.Sample.Exact || so.Sample.Population != s.Messages {
				t.Fatalf("sample: %+v", so.Sample)
			}
			exact := map[string]int64{}
			for _, e := range s.SASLUsers {
				exact[e.Key] = e.Count
			}
			for _, x := range so.Sample.SASLUsers[:min(3, len(so.Sample.SASLUsers))] {
				p := float64(exact[x.Key]) / float64(s.Messages)
				if p < x.CILow || p > x.CIHigh || x.CIHigh-x.CILow <= 0 {
					t.Errorf("%s: exact share %.4f, interval [%.4f, %.4f]", x.Key, p, x.CILow, x.CIHigh)
				}
			}
			if so.Sample.SASLUsers[0].Key != "hello@example.com" {
				t.Errorf("top estimated SASL user %q", so.Sample.SASLUsers[0].Key)
			}
			// The same seed draws the same sample.
			r2 := qs(t, "", "--queue", root, "--format", "json", "summary", "--sample", strconv.FormatInt(n, 10), "--seed", "20261207", "--sample-only")
			var so2 struct{ Sample estimate.Estimate }
			_ = json.Unmarshal([]byte(r2.stdout), &so2)
			if len(so2.Sample.Senders) == 0 || so2.Sample.Senders[0] != so.Sample.Senders[0] {
				t.Errorf("--seed does not repeat the draw: %+v vs %+v", so2.Sample.Senders, so.Sample.Senders)
			}
			// Text: the estimate says what it is.
			r = qs(t, "", "--queue", root, "summary", "--sample", "50", "--sample-only")
			if r.code != 0 || !strings.Contains(r.stdout, "estimate from 50 of "+strconv.FormatInt(s.Messages, 10)+" messages") || !strings.Contains(r.stdout, "hello@example.com") {
				t.Errorf("text estimate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestSummarySampleGenerated: 4,000 of a generated queue of 50,000 name the
// compromised account first, with its share within ±2 points of the
// generator's truth and its count scaled to the queue. The seed is fixed,
// so the draw is too; an estimator that forgot to scale, or a sample of the
// first names listed instead of all, fails.
func TestSummarySampleGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 50,000 messages")
	}
	root := filepath.Join(t.TempDir(), "postfix")
	cfg := gen.PostfixConfig{Config: gen.Config{Root: root, Count: 50000, Seed: 15, Now: time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)}, UID: -1, GID: -1, PostdropGID: -1}
	st, err := gen.Postfix(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := qs(t, "", "--queue", root, "--format", "json", "summary", "--sample", "4000", "--sample-only", "--seed", "4242")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var out struct{ Sample estimate.Estimate }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	e := out.Sample
	if e.Population != int64(st.Messages) || e.SampleSize != 4000 {
		t.Fatalf("population %d sample %d, want %d and 4000", e.Population, e.SampleSize, st.Messages)
	}
	top := e.SASLUsers[0]
	want := float64(st.Compromised) / float64(st.Messages)
	if top.Key != st.CompromisedUser || math.Abs(top.Share-want) > 0.02 || want < top.CILow || want > top.CIHigh {
		t.Errorf("top SASL user %q share %.4f [%.4f, %.4f], want %q %.4f", top.Key, top.Share, top.CILow, top.CIHigh, st.CompromisedUser, want)
	}
	if math.Abs(float64(top.Count-int64(st.Compromised))) > 0.02*float64(st.Messages) {
		t.Errorf("estimated count %d, want %d ± 2 points of %d", top.Count, st.Compromised, st.Messages)
	}
	// Every queue holds its share: a sample of the names listed first
	// (maildrop, active, incoming, the first hash directories) would miss
	// hold, which Walk lists last.
	qshare := map[string]estimate.Share{}
	for _, x := range e.Queues {
		qshare[x.Key] = x
	}
	for q, n := range st.ByQueue {
		p := float64(n) / float64(st.Messages)
		if x := qshare[q]; p < x.CILow || p > x.CIHigh {
			t.Errorf("queue %s: truth %.4f outside the estimate's [%.4f, %.4f]", q, p, x.CILow, x.CIHigh)
		}
	}
	// The newsletter sender and the bounces (the null sender) are in
	// their own places of the queue; both within 2 points too.
	got := map[string]estimate.Share{}
	for _, x := range e.Senders {
		got[x.Key] = x
	}
	for k, n := range map[string]int{st.NewsletterAddr: st.Newsletter, "MAILER-DAEMON": st.NullSender} {
		p := float64(n) / float64(st.Messages)
		if x := got[k]; math.Abs(x.Share-p) > 0.02 || math.Abs(float64(x.Count-int64(n))) > 0.02*float64(st.Messages) {
			t.Errorf("sender %s: estimated %.4f (~%d), truth %.4f (%d)", k, x.Share, x.Count, p, n)
		}
	}
}

// screen replays what a terminal shows of out: text, CR, LF, and the two
// sequences the live view uses (ESC[nA cursor up, ESC[J clear to the end).
func screen(t *testing.T, out string) string {
	t.Helper()
	var lines [][]rune
	row, col := 0, 0
	put := func(r rune) {
		for len(lines) <= row {
			lines = append(lines, nil)
		}
		for len(lines[row]) < col {
			lines[row] = append(lines[row], ' ')
		}
		if col < len(lines[row]) {
			lines[row][col] = r
		} else {
			lines[row] = append(lines[row], r)
		}
		col++
	}
	csi := regexp.MustCompile(`^\x1b\[([0-9]*)([A-Za-z])`)
	rs := []rune(out)
	for i := 0; i < len(rs); i++ {
		switch rs[i] {
		case '\r':
			col = 0
		case '\n':
			row++
			col = 0 // the pty's onlcr adds the CR anyway
		case 0x1b:
			m := csi.FindStringSubmatch(string(rs[i:]))
			if m == nil {
				t.Fatalf("unexpected escape at %d: %q", i, string(rs[i:min(i+10, len(rs))]))
			}
			n, _ := strconv.Atoi(m[1])
			switch m[2] {
			case "A":
				row = max(row-max(n, 1), 0)
			case "J":
				if row < len(lines) {
					lines[row] = lines[row][:min(col, len(lines[row]))]
					lines = lines[:row+1]
				}
			default:
				t.Fatalf("unexpected sequence %q", m[0])
			}
			i += len([]rune(m[0])) - 1
		default:
			put(rs[i])
		}
	}
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(string(l))
		if i < len(lines)-1 || row > i {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// onPTY runs the binary with stdout on a pseudo-terminal (stderr apart)
// and returns everything the terminal received.
func onPTY(t *testing.T, args ...string) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 200}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(qsBin, args...)
	cmd.Stdin, cmd.Stdout = strings.NewReader(""), tty
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&out, ptmx); close(done) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, se.String())
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pty not closed")
	}
	return out.String()
}

// TestSummaryLiveOnTerminal: on a terminal the summary draws frames of the
// counts and top accounts so far, and what the terminal finally shows is
// exactly what a pipe gets; a pipe, JSON and --no-progress get no escape
// sequence at all.
func TestSummaryLiveOnTerminal(t *testing.T) {
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skip("no pseudo-terminals here")
	}
	for _, mta := range []string{"postfix", "qmail"} {
		t.Run(mta, func(t *testing.T) {
			root := fixtureRoot(t, mta)
			args := []string{"--queue", root, "summary", "--sample", "40", "--seed", "9"}
			out := onPTY(t, args...)
			if !strings.Contains(out, "\x1b[J") || !strings.Contains(out, "Top SASL users so far") || !strings.Contains(out, "so far ") {
				t.Fatalf("no live frame on the terminal:\n%q", out)
			}
			// The frame's first line comes after the estimate, and is
			// erased before the final summary.
			if strings.Index(out, "so far ") < strings.Index(out, "estimate from 40 of") {
				t.Errorf("live frame before the estimate:\n%s", out)
			}
			pipe := qs(t, "", args...)
			if pipe.code != 0 || strings.Contains(pipe.stdout, "\x1b") {
				t.Fatalf("pipe: exit %d, escape codes: %q", pipe.code, pipe.stdout)
			}
			// The timings of the two runs differ; everything else is the
			// same text.
			secs := regexp.MustCompile(`[0-9.]+ s\b`)
			got, want := secs.ReplaceAllString(screen(t, out), "T s"), secs.ReplaceAllString(pipe.stdout, "T s")
			if got != want {
				t.Errorf("terminal shows\n%s\n--- a pipe gets\n%s", got, want)
			}
			for _, extra := range [][]string{{"--no-progress"}, {"--format", "json"}} {
				o := onPTY(t, append(append([]string{}, args...), extra...)...)
				if strings.Contains(o, "\x1b") || strings.Contains(o, "so far") {
					t.Errorf("%v on a terminal: %q", extra, o)
				}
			}
		})
	}
}

// TestREADMESampleRecipe runs the README's --sample recipe as written,
// against the bundled Postfix queue (given with --queue, the one thing a
// machine without /var/spool/postfix must add).
func TestREADMESampleRecipe(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	root := fixtureRoot(t, "postfix")
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "qsurgeon summary") || !strings.Contains(l, "--sample") {
			continue
		}
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		args := strings.Fields(l)[1:]
		found++
		r := qs(t, "", append([]string{"--queue", root}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "estimate from ") || !strings.Contains(r.stdout, "hello@example.com") || !strings.Contains(r.stdout, "QUEUE") {
			t.Errorf("README: %s: exit %d\n%s%s", l, r.code, r.stdout, r.stderr)
		}
	}
	if found == 0 {
		t.Error("the README has no summary --sample recipe")
	}
}

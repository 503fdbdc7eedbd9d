package main

// The live summary on a terminal, through the binary on a pseudo-terminal.

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

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
			n := 0
			for _, d := range m[1] {
				n = 10*n + int(d-'0')
			}
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

// TestTopKIsTop: the live view's one-pass top list is the exact summary's.
func TestTopKIsTop(t *testing.T) {
	c := counter{}
	for i := range 500 {
		for range (i * 7919) % 13 {
			c.add("k"+string(rune('a'+i%26))+string(rune('a'+i/26)), 1)
		}
	}
	for _, k := range []int{1, 5, 40} {
		got, want := topK(c, k), c.top(k)
		if len(got) != len(want) {
			t.Fatalf("k=%d: %d entries, want %d", k, len(got), len(want))
		}
		for i := range got {
			if got[i].Key != want[i].Key || got[i].Count != want[i].Count {
				t.Errorf("k=%d #%d: %+v, want %+v", k, i, got[i], want[i])
			}
		}
	}
	if s := fitWidth("ab日本語cd", 6); s != "ab日…" {
		t.Errorf("fitWidth: %q", s)
	}
	if s := fitWidth("short", 80); s != "short" {
		t.Errorf("fitWidth: %q", s)
	}
}

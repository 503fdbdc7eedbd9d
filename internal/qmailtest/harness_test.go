package qmailtest_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/qmailtest"
)

// TestHarness injects with the real qmail-inject, runs the real qmail-send
// and sees a local delivery in the Maildir, a remote one at the sink, and
// a bounce for a recipient the sink refuses with 550.
func TestHarness(t *testing.T) {
	q := qmailtest.New(t, qmailtest.Options{RcptReply: func(addr string) (int, string) {
		if strings.HasPrefix(addr, "nobody@") {
			return 550, "no such user"
		}
		return 250, "ok"
	}})
	if out, err := q.Instcheck(); err != nil {
		t.Fatalf("instcheck on the fresh queue: %v\n%s", err, out)
	}
	q.Inject("sender@example.com", []string{"bob@example.com", "carol@remote.example", "nobody@remote.example"},
		[]byte("Subject: harness\n\nhello\n"))
	q.Start()
	res := q.WaitIdle(2 * time.Minute)
	var local, remote, bounce int
	for _, d := range res.Delivered {
		switch {
		case d.Channel == "local" && slices.Equal(d.Recipients, []string{"bob@example.com"}) && d.Sender == "sender@example.com":
			local++
		case d.Channel == "remote" && slices.Equal(d.Recipients, []string{"carol@remote.example"}) && d.Sender == "sender@example.com":
			remote++
		case d.Channel == "local" && d.Sender == "" && slices.Equal(d.Recipients, []string{"sender@example.com"}):
			if !strings.Contains(string(d.Data), "nobody@remote.example") {
				t.Errorf("bounce does not name the failed recipient:\n%s", d.Data)
			}
			bounce++
		default:
			t.Errorf("unexpected delivery %s from <%s> to %q", d.Channel, d.Sender, d.Recipients)
		}
	}
	if local != 1 || remote != 1 || bounce != 1 {
		t.Fatalf("local %d remote %d bounce %d, want 1 each; log:\n%s", local, remote, bounce, res.Log)
	}
	for _, want := range []string{"new msg", "end msg", "status: exiting"} {
		if !strings.Contains(res.Log, want) {
			t.Errorf("log lacks %q:\n%s", want, res.Log)
		}
	}
	if q.Running() {
		t.Error("qmail-send still running after WaitIdle")
	}
}

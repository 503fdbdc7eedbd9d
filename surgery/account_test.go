package surgery_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/monitor"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// AccountHold on Postfix selects exactly the account's mail in incoming,
// active and deferred, as the hold verb; once held, none is left to hold.
func TestAccountHoldPostfix(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(testkit.Extract(t, "../testdata/queues/postfix-incident/queue.tar.gz"), "postfix-incident-a")
	src, err := surgery.Open(surgery.OpenOptions{Dir: root})
	if err != nil {
		t.Fatal(err)
	}
	bob := monitor.Account{Kind: monitor.KindSASL, Name: "bob@example.com"}
	want, err := surgery.Select(ctx, src, filter.Spec{SASLUsers: []string{bob.Name}, Queues: []string{queue.Incoming, queue.Active, queue.Deferred}}, surgery.SelectOptions{Keep: surgery.KeepIDs})
	if err != nil {
		t.Fatal(err)
	}
	job, sel, err := surgery.AccountHold(ctx, src, bob, surgery.AccountHoldOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Verb().Name != surgery.Hold {
		t.Errorf("verb %q, want hold", job.Verb().Name)
	}
	if len(sel.Results) == 0 || len(sel.Results) != len(want.Results) {
		t.Fatalf("selected %d, want bob's %d", len(sel.Results), len(want.Results))
	}
	for i, r := range sel.Results {
		if r.Msg.SASLUser != bob.Name || r.Msg.ID != want.Results[i].Msg.ID {
			t.Errorf("selected %s of %q, want %s", r.Msg.ID, r.Msg.SASLUser, want.Results[i].Msg.ID)
		}
	}
	rep, err := job.Run(ctx, sel.Results, surgery.RunOptions{})
	if err != nil || rep.OK != len(sel.Results) {
		t.Fatalf("hold: %d done, %v; want %d", rep.OK, err, len(sel.Results))
	}
	_, again, err := surgery.AccountHold(ctx, src, bob, surgery.AccountHoldOptions{})
	if err != nil || len(again.Results) != 0 {
		t.Errorf("after the hold: %d selected, %v; want none", len(again.Results), err)
	}
}

// qmail has no hold queue: AccountHold needs a quarantine directory, and
// then quarantines.
func TestAccountHoldQmail(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(testkit.Extract(t, "../testdata/queues/qmail-incident/queue.tar.gz"), "queue")
	src, err := surgery.Open(surgery.OpenOptions{Dir: root})
	if err != nil {
		t.Fatal(err)
	}
	acct := monitor.Account{Kind: monitor.KindSASL, Name: "hello@example.com"}
	if _, _, err := surgery.AccountHold(ctx, src, acct, surgery.AccountHoldOptions{}); !errors.Is(err, surgery.ErrNoHoldQueue) {
		t.Fatalf("without a directory: %v, want ErrNoHoldQueue", err)
	}
	job, sel, err := surgery.AccountHold(ctx, src, acct, surgery.AccountHoldOptions{QuarantineDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if job.Verb().Name != surgery.Quarantine || len(sel.Results) == 0 {
		t.Errorf("verb %q, %d selected; want quarantine of hello's mail", job.Verb().Name, len(sel.Results))
	}
	for _, r := range sel.Results {
		if r.Msg.SASLUser != acct.Name {
			t.Errorf("selected %s of %q", r.Msg.ID, r.Msg.SASLUser)
		}
	}
}

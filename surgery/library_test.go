package surgery_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/monitor"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// A message that disappears between the selection and the export is one
// failure in the report, naming its ID; the others are still written, and
// a failed message leaves no file behind.
func TestExportDirGoneMessage(t *testing.T) {
	ctx := context.Background()
	src, root := openFixture(t, "postfix-incident/queue.tar.gz", "postfix-incident-a")
	sel, err := surgery.Select(ctx, src, filter.Spec{SASLUsers: []string{"bob@example.com"}}, surgery.SelectOptions{Keep: surgery.KeepAll})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Results) < 2 {
		t.Fatalf("bob has %d messages in the fixture, want at least 2", len(sel.Results))
	}
	gone := sel.Results[0].Msg
	if err := os.Remove(filepath.Join(root, gone.Path)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	rep, err := surgery.ExportDir(ctx, sel, dir, surgery.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Exported != len(sel.Results)-1 || rep.Failed() != 1 {
		t.Fatalf("exported %d, failed %d; want %d and 1", rep.Exported, rep.Failed(), len(sel.Results)-1)
	}
	var ae *queue.ActionError
	if !errors.As(rep.Failures[0], &ae) || ae.ID != gone.ID || ae.Action != "export" {
		t.Fatalf("failure %v: want an export ActionError for %s", rep.Failures[0], gone.ID)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != rep.Exported {
		t.Errorf("%d files in %s, want %d (no .json without an Envelope, nothing for the gone message)", len(left), dir, rep.Exported)
	}
	if _, err := os.Stat(filepath.Join(dir, gone.ID+".eml")); !os.IsNotExist(err) {
		t.Errorf("the gone message left %s.eml: %v", gone.ID, err)
	}
}

// AccountHold on Postfix selects exactly the account's mail in incoming,
// active and deferred, as the hold verb; once held, none is left to hold.
func TestAccountHoldPostfix(t *testing.T) {
	ctx := context.Background()
	src, _ := openFixture(t, "postfix-incident/queue.tar.gz", "postfix-incident-a")
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
	src, _ := openFixture(t, "qmail-incident/queue.tar.gz", "queue")
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

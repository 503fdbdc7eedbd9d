package surgery_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// A message that disappears between the selection and the export is one
// failure in the report, naming its ID; the others are still written, and
// a failed message leaves no file behind.
func TestExportDirGoneMessage(t *testing.T) {
	tmp := t.TempDir()
	if err := testkit.Untar("../testdata/queues/postfix-incident/queue.tar.gz", tmp); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	root := filepath.Join(tmp, "postfix-incident-a")
	src, err := surgery.Open(surgery.OpenOptions{Dir: root})
	if err != nil {
		t.Fatal(err)
	}
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
	dir := filepath.Join(tmp, "out")
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

package rebuild

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/qmailq"
)

func openFS(t testing.TB, root string) *safefs.FS {
	t.Helper()
	f, err := safefs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// inventory lists every regular file below dir (relative path -> inode).
func inventory(t testing.TB, dir string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = inodeOf(fi)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

func TestRepairBroken(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	ids := fixtureIDs(t)
	opts := Options{Now: fixtureNow(t)}
	before := inventory(t, root)
	probs, err := CheckQmail(root, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanRepair(root, probs, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Skipped) > 0 {
		t.Errorf("skipped: %v", plan.Skipped)
	}
	text := plan.String()
	if !strings.Contains(text, "lost+found") {
		t.Error("plan moves nothing to lost+found")
	}
	// Dry run first: nothing may change.
	dry := safefs.NewDryRun(nil)
	plan2, err := PlanRepair(root, probs, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan2.Execute(dry, nil); err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if len(dry.Ops()) == 0 {
		t.Error("dry run recorded nothing")
	}
	if after := inventory(t, root); len(after) != len(before) {
		t.Fatalf("dry run changed the queue: %d files, was %d", len(after), len(before))
	}

	if err := plan.Execute(openFS(t, plan.Base), nil); err != nil {
		t.Logf("%s", text)
		t.Fatal(err)
	}
	if err := plan.Execute(openFS(t, plan.Base), nil); err != ErrExecuted {
		t.Errorf("second Execute: %v, want ErrExecuted", err)
	}
	after, err := CheckQmail(root, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range after {
		t.Errorf("after repair: %v", p)
	}
	if t.Failed() {
		t.Logf("%s", text)
	}
	verifyNothingLost(t, root, plan.LostFound, before)
}

// verifyNothingLost: every file (by inode) of the queue before repair is
// either still in the queue or in lost+found with a note.
func verifyNothingLost(t *testing.T, root, lf string, before map[string]uint64) {
	t.Helper()
	inQueue := map[uint64]bool{}
	for _, ino := range inventory(t, root) {
		inQueue[ino] = true
	}
	lost := inventory(t, lf)
	inLF := map[uint64]bool{}
	for rel, ino := range lost {
		if strings.HasSuffix(rel, ".note") {
			continue
		}
		inLF[ino] = true
		if _, ok := lost[rel+".note"]; !ok {
			t.Errorf("lost+found %s has no note", rel)
		}
	}
	var gone []string
	for rel, ino := range before {
		if !inQueue[ino] && !inLF[ino] {
			gone = append(gone, rel)
		}
	}
	sort.Strings(gone)
	if len(gone) > 0 {
		t.Errorf("files lost: %v", gone)
	}
}

var _ = qmailq.DefaultSplit

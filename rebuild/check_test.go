package rebuild

import (
	"testing"
)

func TestCheckQmailBroken(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	probs, err := CheckQmail(root, fixtureIDs(t), Options{Now: fixtureNow(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if p.Kind != KindIDNotInode {
			t.Log(p)
		}
	}
	if missing := matchDefects(t, probs); len(missing) > 0 {
		t.Errorf("defects not reported: %v", missing)
	}
}

func TestCheckQmailClean(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	probs, err := CheckQmail(root, fixtureIDs(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range probs {
		if p.Kind == KindIDNotInode {
			n++
			continue
		}
		t.Errorf("false problem on the clean queue: %v", p)
	}
	if n != 371 {
		t.Errorf("%d id-not-inode problems, want one per message (371)", n)
	}
}

// TestCheckQmailDefectKinds: each planted defect is reported with the kind
// a reader of broken-defects.json would expect (written here from the
// defect descriptions, not from the code's output).
func TestCheckQmailDefectKinds(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	probs, err := CheckQmail(root, fixtureIDs(t), Options{Now: fixtureNow(t)})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind, id, path string
	}{
		{KindMessWithoutEnvelope, "10004805", ""},
		{KindZeroLengthMess, "10004835", ""},
		{KindStalePid, "", "pid/10473.1795364104.1"},
		{KindWrongSubdir, "10003718", "mess/13/10003718"},
		{KindWrongSubdir, "10003718", "info/13/10003718"},
		{KindWrongSubdir, "10003718", "remote/13/10003718"},
		{KindWrongSubdir, "10004533", "mess/0/10004533"},
		{KindWrongSubdir, "10006318", "remote/14/10006318"},
		{KindWrongSubdir, "10003719", "mess/24/10003719"},
		{KindWrongSubdir, "10006092", "info/19/10006092"},
		{KindExtraSplitDir, "", "mess/24"},
		{KindInfoWithoutMess, "10004796", ""},
		{KindInfoWithoutMess, "10006447", ""},
		{KindMessWithoutEnvelope, "10006490", ""},
		{KindTodoWithoutIntd, "10004436", "todo/10004436"},
		{KindTodoWithoutIntd, "10006773", "todo/10006773"},
		{KindZeroLengthMess, "10004643", "mess/11/10004643"},
		{KindWrongOwner, "", "info/17"},
		{KindWrongOwner, "10006326", "remote/15/10006326"},
		{KindWrongMode, "10006326", "remote/15/10006326"},
		{KindWrongOwner, "10006771", "remote/0/10006771"},
		{KindWrongOwner, "10003570", "mess/19/10003570"},
		{KindWrongMode, "10003570", "mess/19/10003570"},
		{KindWrongMode, "", "todo"},
		{KindWrongOwner, "10006300", "local/12/10006300"},
		{KindMissing, "", "lock/trigger"},
	}
	for _, w := range want {
		found := false
		for _, p := range probs {
			if p.Kind == w.kind && (w.id == "" || p.ID == w.id) && (w.path == "" || p.Path == w.path) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s problem for id %q path %q", w.kind, w.id, w.path)
		}
	}
	// id-not-inode exactly once per message that has a mess file.
	seen := map[string]int{}
	for _, p := range probs {
		if p.Kind == KindIDNotInode {
			seen[p.ID]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("id-not-inode reported %d times for %s", n, id)
		}
	}
	if len(seen) < 360 {
		t.Errorf("id-not-inode for %d messages only", len(seen))
	}
}

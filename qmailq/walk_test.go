package qmailq

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/qsurgeon/qsurgeon/queue"
)

// summary is what a Read says of a message, in a comparable form.
func summary(t *testing.T, q *Queue, id string) string {
	t.Helper()
	m, err := q.Read(queue.Ref{ID: id})
	if err != nil {
		return "error: " + err.Error()
	}
	probs := slices.Clone(m.Problems)
	slices.Sort(probs)
	s := m.Queue + "|" + m.Path + "|" + m.Sender + "|" + m.SASLUser + "|" + strconv.Itoa(len(m.Recipients))
	for _, r := range m.Recipients {
		s += "|" + r.Address + r.Channel + strconv.FormatBool(r.Done) + r.Reason
	}
	for _, p := range probs {
		s += "\n" + p
	}
	return s
}

// The bounded Walk (two passes, one subdirectory number at a time) lists
// the same messages and strays as the whole-queue Inventory, and a Read
// after it (during the walk, from the kept group, or after it, from the
// unusual files only) says the same as a Read after Inventory, on a queue
// a real qmail wrote and that was then damaged in every way the fixture
// knows (wrong subdirectory, subdirectory beyond the split, parts
// missing), plus strays, a FIFO and a symbolic link.
func TestWalkMatchesInventory(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	for _, p := range []string{"mess/5/123.tmp", "todo/abc", "info/7/0123", "bounce/x"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte("F\x00"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "remote/junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	fifoID := uint64(999999937)
	if err := syscall.Mkfifo(filepath.Join(root, "mess", strconv.FormatUint(fifoID%23, 10), strconv.FormatUint(fifoID, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "info/4/999999944")); err != nil {
		t.Fatal(err)
	}

	qi, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer qi.Close()
	inv, err := qi.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, id := range inv.IDs {
		s := strconv.FormatUint(id, 10)
		want[s] = summary(t, qi, s)
	}

	qw, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer qw.Close()
	during := map[string]string{}
	lastSub := -1
	err = qw.Walk(context.Background(), func(r queue.Ref) error {
		if _, dup := during[r.ID]; dup {
			t.Errorf("%s listed twice", r.ID)
		}
		id, _ := ParseID(r.ID)
		sub := qw.layout.Subdir(id)
		if sub < lastSub {
			t.Errorf("%s (subdirectory %d) after subdirectory %d", r.ID, sub, lastSub)
		}
		lastSub = sub
		during[r.ID] = summary(t, qw, r.ID)
		ws := qw.walk.Load()
		for _, g := range ws.groups {
			if g != nil && g.sub != sub && g.sub != sub-1 {
				t.Errorf("walk keeps subdirectory %d while at %d", g.sub, sub)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(during) != len(want) {
		t.Errorf("walk listed %d messages, inventory %d", len(during), len(want))
	}
	if _, ok := during[strconv.FormatUint(fifoID, 10)]; !ok {
		t.Error("message with a FIFO mess file not listed")
	}
	for id, w := range want {
		if during[id] != w {
			t.Errorf("%s read during the walk:\n%s\nafter Inventory:\n%s", id, during[id], w)
		}
		if after := summary(t, qw, id); after != w {
			t.Errorf("%s read after the walk:\n%s\nafter Inventory:\n%s", id, after, w)
		}
	}
	var ws, is []string
	for _, s := range qw.Strays() {
		ws = append(ws, s.Path+" "+s.Why)
	}
	for _, s := range inv.Strays {
		is = append(is, s.Path+" "+s.Why)
	}
	slices.Sort(ws)
	slices.Sort(is)
	if !slices.Equal(ws, is) || len(ws) < 5 {
		t.Errorf("walk strays %q\ninventory strays %q", ws, is)
	}
}

package quarantine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// TestPlanChangesNothing: a plan (what --dry-run prints) is built without
// touching the queue or the quarantine directory, and lists every move
// Execute then makes, in order.
func TestPlanChangesNothing(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	sp := c.spool(t)
	msgs := testkit.ReadAll(t, sp)
	q0, d0 := testkit.Snapshot(t, c.root), testkit.Snapshot(t, c.qdir)
	var plans []*Plan
	for _, m := range selectSASL(msgs, hello)[:10] {
		p, err := PlanQuarantine(sp, m, c.dirFS, c.queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	if d := diffSnapshots(q0, testkit.Snapshot(t, c.root), nil); len(d) > 0 {
		t.Errorf("planning changed the queue: %v", d)
	}
	if d := diffSnapshots(d0, testkit.Snapshot(t, c.qdir), nil); len(d) > 0 {
		t.Errorf("planning changed the quarantine dir: %v", d)
	}
	rec := &recorder{Mover: &Disk{Queue: c.queueFS, Dir: c.dirFS}}
	for _, p := range plans {
		if _, err := p.Execute(rec); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, s := range p.Steps {
			if s.Op == OpMove {
				want = append(want, s.Path+" -> "+s.Dest)
			}
		}
		if got := rec.take(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: executed\n%s\nplanned\n%s", p.Entry.ID, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

type recorder struct {
	Mover
	moves []string
}

func (r *recorder) Move(a Root, from string, b Root, to string) error {
	r.moves = append(r.moves, from+" -> "+to)
	return r.Mover.Move(a, from, b, to)
}

func (r *recorder) take() []string { m := r.moves; r.moves = nil; return m }

// TestHostileParts: a symbolic link where a log belongs, and a quarantined
// file replaced by another, are refused before anything moves.
func TestHostileParts(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	sp := c.spool(t)
	msgs := testkit.ReadAll(t, sp)
	var m *queue.Message
	for _, x := range sorted(msgs) {
		if x.Queue == queue.Deferred {
			m = x
			break
		}
	}
	// A bounce log that is a symbolic link to a file outside the queue.
	outside := filepath.Join(c.tmp, "outside")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(c.root, sp.LogPath(postfixq.LogBounce, m.ID))
	os.MkdirAll(filepath.Dir(link), 0o700)
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	q0 := testkit.Snapshot(t, c.root)
	if _, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{}); !errors.Is(err, ErrNotRegular) {
		t.Errorf("symlinked log: %v", err)
	}
	if d := diffSnapshots(q0, testkit.Snapshot(t, c.root), nil); len(d) > 0 {
		t.Errorf("refused quarantine changed the queue: %v", d)
	}
	if b, _ := os.ReadFile(outside); string(b) != "secret" {
		t.Error("outside file changed")
	}
	os.Remove(link)

	// A quarantined file replaced by another one is not restored.
	e, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{})
	if err != nil {
		t.Fatal(err)
	}
	last := e.Parts[len(e.Parts)-1]
	qp := filepath.Join(c.qdir, last.DirPath)
	b, _ := os.ReadFile(qp)
	os.Remove(qp)
	if err := os.WriteFile(qp, b, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(e, c.dirFS, c.queueFS, RestoreOptions{}); !errors.Is(err, ErrChanged) {
		t.Errorf("replaced quarantined file: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(c.root, last.QueuePath)); !os.IsNotExist(err) {
		t.Errorf("replaced file was put into the queue: %v", err)
	}
}

// TestManifestDamage: a torn or garbage line is reported with its line
// number, the other entries are still read, and the last state wins.
func TestManifestDamage(t *testing.T) {
	t.Parallel()
	c := newPostfixCopy(t)
	sp := c.spool(t)
	sel := selectSASL(testkit.ReadAll(t, sp), hello)[:3]
	for _, m := range sel {
		if _, err := Quarantine(sp, m, c.dirFS, c.queueFS, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	mf := filepath.Join(c.qdir, ManifestName)
	f, err := os.OpenFile(mf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not json\n{\"key\":\"")
	f.Close()
	es, err := ReadManifest(mf)
	var me *ManifestError
	if !errors.As(err, &me) || me.Line != 7 {
		t.Errorf("error %v, want a *ManifestError at line 7", err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries", len(es))
	}
	for i, e := range es {
		if e.State != StateQuarantined || e.ID != sel[i].ID {
			t.Errorf("entry %d: %s %s", i, e.ID, e.State)
		}
	}
	// A symbolic link is not followed.
	ln := filepath.Join(c.tmp, "link.jsonl")
	os.Symlink(mf, ln)
	if _, err := ReadManifest(ln); err == nil {
		t.Error("manifest read through a symbolic link")
	}
}

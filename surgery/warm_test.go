package surgery_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// TestWarmer: a Postfix delete's warmer is given every selected message
// while the real fixture is scanned, changes nothing in the queue, and
// the delete that follows removes exactly the selection with its logs.
// Other verbs have no warmer.
func TestWarmer(t *testing.T) {
	tmp := t.TempDir()
	if err := testkit.Untar("../testdata/queues/postfix-incident/queue.tar.gz", tmp); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(tmp, "postfix-incident-a")
	src, err := surgery.Open(surgery.OpenOptions{Dir: root})
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{surgery.Hold, surgery.Requeue, surgery.Expire} {
		j, err := surgery.NewJob(src, surgery.Verb{Name: verb})
		if err != nil {
			t.Fatal(err)
		}
		if warm, stop := j.Warmer(); warm != nil || stop != nil {
			t.Errorf("%s has a warmer", verb)
		}
	}
	job, err := surgery.NewJob(src, surgery.Verb{Name: surgery.Delete})
	if err != nil {
		t.Fatal(err)
	}
	warm, stop := job.Warmer()
	if warm == nil {
		t.Fatal("a Postfix delete has no warmer")
	}
	before := testkit.Snapshot(t, root)
	var warmed atomic.Int64
	spec := filter.Spec{SASLUsers: []string{"hello@example.com"}}
	sel, err := surgery.Select(context.Background(), src, spec, surgery.SelectOptions{Keep: job.Keep(),
		Selected: func(m *queue.Message) { warmed.Add(1); warm(m) }})
	stop()
	stop() // twice is harmless
	if err != nil {
		t.Fatal(err)
	}
	if len(sel.Results) == 0 || warmed.Load() != int64(len(sel.Results)) {
		t.Fatalf("%d selected, %d warmed", len(sel.Results), warmed.Load())
	}
	if d := before.Diff(testkit.Snapshot(t, root)); d != nil {
		t.Fatalf("warming changed the queue:\n%s", strings.Join(d, "\n"))
	}
	logs := 0
	selected := map[string]bool{}
	for _, r := range sel.Results {
		selected[r.Msg.ID] = true
	}
	for rel := range before {
		top, _, _ := strings.Cut(rel, "/")
		if (top == "defer" || top == "bounce") && selected[filepath.Base(rel)] {
			logs++
		}
	}
	if logs == 0 {
		t.Fatal("no selected message has a log: the test would prove nothing")
	}
	rep, err := job.Run(context.Background(), sel.Results, surgery.RunOptions{})
	if err != nil || rep.OK != len(sel.Results) {
		t.Fatalf("delete: %+v %v", rep, err)
	}
	after := testkit.Snapshot(t, root)
	for rel, st := range before {
		id := filepath.Base(rel)
		got, still := after[rel]
		top, _, _ := strings.Cut(rel, "/")
		isPart := strings.Contains("maildrop incoming active deferred hold defer bounce trace", top) && top != ""
		switch {
		case isPart && selected[id] && still:
			t.Errorf("%s: part of a deleted message remains", rel)
		case !(isPart && selected[id]) && !still:
			t.Errorf("%s: removed, not selected", rel)
		case !(isPart && selected[id]) && st.Mode.IsRegular() && !got.Equal(st):
			t.Errorf("%s: changed, not selected", rel)
		}
	}
}

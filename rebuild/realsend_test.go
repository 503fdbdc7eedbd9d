package rebuild

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/qmailtest"
	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

// TestRepairCutThenRealQmailSend: the remaining hole. A queue copied
// with cp -a (every message id-not-inode) is repaired with a fault injected
// inside one message's move, and the real qmail-send (notqmail, via
// internal/qmailtest) is started on the cut queue WITHOUT a second repair:
// every pending recipient must be delivered exactly once and qmail-send
// must log no trouble. The cut points: right before the step that moves
// the message from its old name to its new one (where the old order,
// channel files renamed before info, left info without channel files,
// which qmail-send.c:pqadd() hands to messdone(): "treated as delivered"),
// right after it, and between the unlinks of the old names; every step of
// the message under QSURGEON_ALL_FAULTS.
func TestRepairCutThenRealQmailSend(t *testing.T) {
	q := qmailtest.New(t, qmailtest.Options{})
	t.Cleanup(func() { os.RemoveAll(q.QueueDir + ".lost+found") })
	ids, err := Resolve(IDs{})
	if err != nil {
		t.Fatal(err)
	}
	type pair struct{ sender, rcpt string }
	want := map[pair]int{
		{"alice@example.com", "a1@remote.example"}: 1, {"alice@example.com", "dave@example.com"}: 1,
		{"bob@example.com", "b1@remote.example"}: 1, {"bob@example.com", "erin@example.com"}: 1,
	}
	q.Inject("alice@example.com", []string{"a1@remote.example", "dave@example.com"}, []byte("Subject: from alice\n\nalice\n"))
	q.Inject("bob@example.com", []string{"b1@remote.example", "erin@example.com"}, []byte("Subject: from bob\n\nbob\n"))
	// Preprocessed (todo -> info, local, remote) but not delivered.
	q.SetControl("concurrencylocal", "0")
	q.SetControl("concurrencyremote", "0")
	q.Start()
	if res := q.WaitIdle(time.Minute); len(res.Delivered) != 0 {
		t.Fatalf("delivered while held: %v", res.Delivered)
	}
	q.SetControl("concurrencylocal", "")
	q.SetControl("concurrencyremote", "")
	template := copyTree(t, q.QueueDir)

	// plan lays a fresh copy (new inodes: every message id-not-inode) and
	// plans its repair; first/commit/last are the step indexes of the
	// first message's move.
	plan := func() (p *Plan, first, commit, last int) {
		q.LayQueue(template)
		p, err := PlanRepair(q.QueueDir, nil, ids, Options{})
		if err != nil {
			t.Fatal(err)
		}
		first, commit, last = -1, -1, -1
		for i, s := range p.Steps {
			if s.Kind != KindIDNotInode {
				continue
			}
			if first < 0 {
				first = i
			} else if s.ID != p.Steps[first].ID {
				break
			}
			if s.Op == "rename" && strings.Contains(s.Path, "/info/") {
				commit = i
			}
			last = i
		}
		if first < 0 || commit < 0 {
			t.Fatalf("no id-not-inode move in the plan:\n%v", p.Steps)
		}
		return p, first, commit, last
	}
	_, first, commit, last := plan()
	cuts := []int{commit, commit + 1, (commit + 1 + last + 1) / 2}
	if os.Getenv("QSURGEON_ALL_FAULTS") != "" {
		cuts = nil
		for i := first; i <= last; i++ {
			cuts = append(cuts, i)
		}
	}
	// The instance's Maildir and SMTP sink keep what earlier runs
	// delivered: each run counts what was added.
	seen := map[pair]int{}
	for _, cut := range cuts {
		t.Run(fmt.Sprintf("before-step-%d", cut+1), func(t *testing.T) {
			p, _, _, _ := plan()
			// Call cut+1 fails: steps 1..cut are done.
			err := p.Execute(safefs.NewFaulty(testkit.OpenFS(t, p.Base), cut+1), nil)
			var se *StepError
			if !errors.Is(err, safefs.ErrInjected) || !errors.As(err, &se) || se.N != cut+1 {
				t.Fatalf("Execute cut before step %d: %v", cut+1, err)
			}
			t.Logf("cut before %v", p.Steps[cut])
			q.Start()
			res := q.WaitIdle(2 * time.Minute)
			for _, l := range strings.Split(res.Log, "\n") {
				if strings.Contains(l, "trouble") || strings.Contains(l, "unable") || strings.Contains(l, "alert") {
					t.Errorf("qmail-send logged: %s", l)
				}
			}
			got := map[pair]int{}
			for _, d := range res.Delivered {
				for _, r := range d.Recipients {
					got[pair{d.Sender, r}]++
				}
			}
			for pr, n := range seen {
				got[pr] -= n
				if got[pr] == 0 {
					delete(got, pr)
				}
			}
			for pr, n := range got {
				seen[pr] += n
			}
			for pr, n := range want {
				if got[pr] != n {
					t.Errorf("%v delivered %d times, want %d", pr, got[pr], n)
				}
			}
			for pr, n := range got {
				if _, ok := want[pr]; !ok {
					t.Errorf("%v delivered %d times, want none", pr, n)
				}
			}
		})
	}
}

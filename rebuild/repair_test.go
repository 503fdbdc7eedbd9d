package rebuild

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/qmailtest"
	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/qmailq"
)

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

	if err := plan.Execute(testkit.OpenFS(t, plan.Base), nil); err != nil {
		t.Logf("%s", text)
		t.Fatal(err)
	}
	if err := plan.Execute(testkit.OpenFS(t, plan.Base), nil); err != ErrExecuted {
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
	verifyMessagesKept(t, root, before)
}

// verifyMessagesKept: every message of broken.tar.gz whose mess file was
// recoverable (all but the defects that destroyed it, as broken-defects.json
// describes them) is in the queue under its inode number, with every
// envelope file it had (the recreated todo of A08 excepted: repair sets it
// aside), and the unrecoverable ones are gone from the queue.
func verifyMessagesKept(t *testing.T, root string, before map[string]uint64) {
	t.Helper()
	d := testkit.BrokenDefects(t)
	lostKinds := map[string]bool{"mess_only_by_crash": true, "zero_length_mess_orphan_by_crash": true, "info_without_mess": true, "mess_without_info_local_remote": true, "zero_length_mess": true}
	lost := map[string]bool{}
	for _, def := range d.Defects {
		if lostKinds[def.Kind] {
			for _, id := range def.MessageIDs {
				lost[itoa(uint64(id))] = true
			}
		}
	}
	if len(d.After) < 360 || len(lost) != 6 {
		t.Fatalf("fixture: %d messages, %d lost", len(d.After), len(lost))
	}
	after := inventory(t, root)
	byIno := map[uint64]string{}
	for rel, ino := range after {
		byIno[ino] = rel
	}
	kept := 0
	for id, m := range d.After {
		messRel, ok := m.Paths["mess"]
		if !ok {
			if !lost[id] {
				t.Errorf("%s: no mess in the fixture but not an expected loss", id)
			}
			continue
		}
		ino := before[strings.TrimPrefix(messRel, "queue/")]
		if lost[id] {
			if rel, ok := byIno[ino]; ok {
				t.Errorf("%s: unrecoverable, but its mess is still in the queue at %s", id, rel)
			}
			continue
		}
		name := itoa(ino)
		want := map[string]string{"mess": "mess/" + itoa(ino%23) + "/" + name}
		for part := range m.Paths {
			switch part {
			case "info", "local", "remote":
				want[part] = part + "/" + itoa(ino%23) + "/" + name
			case "todo", "intd", "bounce":
				if id == "10006773" && part == "todo" {
					continue
				}
				want[part] = part + "/" + name
			}
			if part == "todo" {
				want["intd"] = "intd/" + name // A08: intd relinked
			}
		}
		for part, rel := range want {
			if _, ok := after[rel]; !ok {
				t.Errorf("%s: %s missing after repair (want %s)", id, part, rel)
			}
		}
		if after[want["mess"]] != ino {
			t.Errorf("%s: mess is not the original file", id)
		}
		kept++
	}
	if kept < 360 {
		t.Errorf("only %d messages kept", kept)
	}
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

// TestRepairSeedRecipe: the seed's hand rebuild made todo/0..22 and
// intd/0..22 on a flat-todo qmail (qmail-queue.md §4.3). check flags
// every such subdirectory; repair removes them (they are empty) and moves
// an envelope found inside one back to the flat directory.
func TestRepairSeedRecipe(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	ids := fixtureIDs(t)
	for _, d := range []string{"todo", "intd"} {
		for i := 0; i < 23; i++ {
			if err := os.Mkdir(filepath.Join(root, d, itoa(uint64(i))), 0o750); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One frozen message's envelope pushed into todo/5/ and intd/5/.
	ents, err := os.ReadDir(filepath.Join(root, "todo"))
	if err != nil {
		t.Fatal(err)
	}
	var moved string
	for _, e := range ents {
		if e.Type().IsRegular() {
			moved = e.Name()
			break
		}
	}
	for _, d := range []string{"todo", "intd"} {
		if err := os.Rename(filepath.Join(root, d, moved), filepath.Join(root, d, "5", moved)); err != nil {
			t.Fatal(err)
		}
	}
	probs, err := CheckQmail(root, ids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub, wrong := 0, 0
	for _, p := range probs {
		switch p.Kind {
		case KindTodoSubdir:
			sub++
		case KindWrongSubdir:
			if p.ID == moved {
				wrong++
			}
		}
	}
	if sub != 46 || wrong != 2 {
		t.Errorf("%d todo-subdir (want 46), %d wrong-subdir for %s (want 2)", sub, wrong, moved)
	}
	plan, err := PlanRepair(root, nil, ids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Execute(testkit.OpenFS(t, plan.Base), nil); err != nil {
		t.Fatal(err)
	}
	after, err := CheckQmail(root, ids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range after {
		t.Errorf("after repair: %v", p)
	}
	if plan.LostFound != "" {
		t.Errorf("repair used lost+found %s for a queue with nothing lost", plan.LostFound)
	}
}

// TestRepairRefusesWhileSendRuns: PlanRepair and Execute refuse while
// lock/sendmutex is held, as qmail-send holds it.
func TestRepairRefusesWhileSendRuns(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	ids := fixtureIDs(t)
	plan, err := PlanRepair(root, nil, ids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := qmailq.LockSend(root)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := PlanRepair(root, nil, ids, Options{}); !errors.Is(err, qmailq.ErrSendRunning) {
		t.Errorf("PlanRepair while locked: %v", err)
	}
	before := inventory(t, root)
	if err := plan.Execute(testkit.OpenFS(t, plan.Base), nil); !errors.Is(err, qmailq.ErrSendRunning) {
		t.Errorf("Execute while locked: %v", err)
	}
	if after := inventory(t, root); len(after) != len(before) {
		t.Error("Execute changed the queue while refusing")
	}
}

// TestRepairOnlyGivenProblems: PlanRepair fixes only the problems it is
// given.
func TestRepairOnlyGivenProblems(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	ids := fixtureIDs(t)
	probs, err := CheckQmail(root, ids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var only []Problem
	for _, p := range probs {
		if p.Kind == KindMissing && p.Path == "lock/trigger" || p.Kind == KindWrongMode && p.Path == "todo" {
			only = append(only, p)
		}
	}
	if len(only) != 2 {
		t.Fatalf("fixture: %v", only)
	}
	plan, err := PlanRepair(root, only, ids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Steps) != 2 || plan.Steps[0].Op != "chmod" || plan.Steps[1].Op != "mkfifo" {
		t.Fatalf("plan:\n%s", plan)
	}
	if err := plan.Execute(testkit.OpenFS(t, plan.Base), nil); err != nil {
		t.Fatal(err)
	}
	after, err := CheckQmail(root, ids, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(probs)-2 {
		t.Errorf("%d problems after fixing 2 of %d", len(after), len(probs))
	}
}

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

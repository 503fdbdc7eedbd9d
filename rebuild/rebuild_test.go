package rebuild

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// docEntry is one line of the table in qmail-queue.md §1.1, written out
// here by hand (not taken from hier.go).
type docEntry struct {
	typ   string // d, f, p
	user  string
	group string
	mode  uint32
	size  int64
}

// docHier is qmail-queue.md §1.1 ("Directories and files"): queue/ pid/
// intd/ todo/ bounce/ lock/ with their owners and modes, mess/ info/
// local/ remote/ split 0..S-1 with the parent's owner and mode, todo/ and
// intd/ split only for big-todo (§1.3), and the three lock files.
func docHier(split int, bigTodo bool) map[string]docEntry {
	h := map[string]docEntry{
		".":              {"d", "qmailq", "qmail", 0o750, -1},
		"pid":            {"d", "qmailq", "qmail", 0o700, -1},
		"mess":           {"d", "qmailq", "qmail", 0o750, -1},
		"intd":           {"d", "qmailq", "qmail", 0o700, -1},
		"todo":           {"d", "qmailq", "qmail", 0o750, -1},
		"info":           {"d", "qmails", "qmail", 0o700, -1},
		"local":          {"d", "qmails", "qmail", 0o700, -1},
		"remote":         {"d", "qmails", "qmail", 0o700, -1},
		"bounce":         {"d", "qmails", "qmail", 0o700, -1},
		"lock":           {"d", "qmailq", "qmail", 0o750, -1},
		"lock/sendmutex": {"f", "qmails", "qmail", 0o600, 0},
		"lock/tcpto":     {"f", "qmailr", "qmail", 0o644, 1024},
		"lock/trigger":   {"p", "qmails", "qmail", 0o622, -1},
	}
	splitDirs := []string{"mess", "info", "local", "remote"}
	if bigTodo {
		splitDirs = append(splitDirs, "todo", "intd")
	}
	for _, d := range splitDirs {
		for i := 0; i < split; i++ {
			h[d+"/"+strconv.Itoa(i)] = h[d]
		}
	}
	return h
}

// walkHier describes every entry below root the way docHier does.
func walkHier(t *testing.T, root string, ids IDs) map[string]docEntry {
	t.Helper()
	name := func(m map[string]int, id int) string {
		for k, v := range m {
			if v == id {
				return k
			}
		}
		return strconv.Itoa(id)
	}
	out := map[string]docEntry{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		e := docEntry{user: name(ids.Users, int(st.Uid)), group: name(ids.Groups, int(st.Gid)), mode: st.Mode & 0o7777, size: -1}
		switch {
		case fi.IsDir():
			e.typ = "d"
		case fi.Mode()&fs.ModeNamedPipe != 0:
			e.typ = "p"
		case fi.Mode().IsRegular():
			e.typ = "f"
			e.size = fi.Size()
		default:
			e.typ = "?"
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRebuildHierarchy(t *testing.T) {
	ids := fixtureIDs(t)
	for _, split := range []int{23, 31} {
		for _, big := range []bool{false, true} {
			t.Run(fmt.Sprintf("split%d-big%v", split, big), func(t *testing.T) {
				dir := t.TempDir()
				newq := filepath.Join(dir, "queue")
				if err := Rebuild(newq, split, big, ids, testkit.OpenFS(t, dir)); err != nil {
					t.Fatal(err)
				}
				got := walkHier(t, newq, ids)
				want := docHier(split, big)
				var diff []string
				for p, w := range want {
					if g, ok := got[p]; !ok {
						diff = append(diff, "missing "+p)
					} else if g != w {
						diff = append(diff, fmt.Sprintf("%s: got %+v want %+v", p, g, w))
					}
				}
				for p := range got {
					if _, ok := want[p]; !ok {
						diff = append(diff, "extra "+p)
					}
				}
				sort.Strings(diff)
				for _, d := range diff {
					t.Error(d)
				}
				// The new queue checks clean and its layout is detected
				// as built (big-todo cannot be seen without files).
				probs, err := CheckQmail(newq, ids, Options{Todo: map[bool]TodoLayout{true: TodoBig, false: TodoFlat}[big]})
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range probs {
					t.Errorf("new queue: %v", p)
				}
				l, err := qmailq.DetectLayout(newq)
				if err != nil || l.Split != split {
					t.Errorf("DetectLayout: %v split %v", err, l)
				}
			})
		}
	}
}

func TestRebuildRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	if _, err := PlanRebuild(dir, 23, false, fixtureIDs(t)); err == nil {
		t.Error("PlanRebuild into an existing directory succeeded")
	}
	if _, err := PlanRebuild(filepath.Join(dir, "q"), 23, false, IDs{}); err == nil {
		t.Error("PlanRebuild without ids succeeded")
	}
}

// truthMessage is the part of truth.json the carry test compares.
type truthMessage struct {
	Sender     string `json:"sender"`
	MessSize   int64  `json:"mess_size"`
	InfoMtime  int64  `json:"info_mtime"`
	Recipients []struct {
		Address string `json:"address"`
		Channel string `json:"channel"`
		State   string `json:"state"`
	} `json:"recipients"`
	Parts            map[string]bool `json:"parts"`
	BounceRecipients []string        `json:"bounce_recipients"`
}

func TestCarryAllIntoRebuilt(t *testing.T) {
	ids := fixtureIDs(t)
	var truth struct {
		Messages map[string]truthMessage `json:"messages"`
	}
	readJSON(t, filepath.Join(qmailFixtures, "truth.json"), &truth)
	for _, tc := range []struct {
		split int
		big   bool
	}{{23, false}, {31, true}} {
		t.Run(fmt.Sprintf("split%d-big%v", tc.split, tc.big), func(t *testing.T) {
			old := extract(t, "queue.tar.gz")
			before := testkit.Snapshot(t, old)
			newq := filepath.Join(filepath.Dir(old), "queue.new")
			plan, err := PlanRebuild(newq, tc.split, tc.big, ids)
			if err != nil {
				t.Fatal(err)
			}
			var sel []uint64
			for id := range truth.Messages {
				n, _ := strconv.ParseUint(id, 10, 64)
				sel = append(sel, n)
			}
			cp, err := PlanCarry(old, newq, sel, ids, CarryOptions{Split: tc.split, BigTodo: tc.big})
			if err != nil {
				t.Fatal(err)
			}
			plan.Append(cp)
			if len(plan.Skipped) > 0 {
				t.Fatalf("skipped: %v", plan.Skipped)
			}
			if err := plan.Execute(testkit.OpenFS(t, plan.Base), nil); err != nil {
				t.Fatal(err)
			}
			carried := plan.Carried()
			if len(carried) != len(truth.Messages) {
				t.Fatalf("carried %d messages, want %d", len(carried), len(truth.Messages))
			}
			if d := before.Diff(testkit.Snapshot(t, old)); d != nil {
				t.Errorf("the old queue changed:\n%s", strings.Join(d, "\n"))
			}
			// Clean check: names are inodes now, layout as built.
			probs, err := CheckQmail(newq, ids, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range probs {
				t.Errorf("new queue: %v", p)
			}
			// Read back with the qmail reader and compare with truth.json.
			q, err := qmailq.Open(newq)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if q.Layout().BigTodo != tc.big || q.Layout().Split != tc.split {
				t.Errorf("new queue detected as split %d big %v", q.Layout().Split, q.Layout().BigTodo)
			}
			got := map[string]*queue.Message{}
			err = q.Walk(context.Background(), func(r queue.Ref) error {
				m, err := q.Read(r)
				if err != nil {
					return err
				}
				got[m.ID] = m
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(truth.Messages) {
				t.Errorf("read back %d messages, want %d", len(got), len(truth.Messages))
			}
			for oldID, tm := range truth.Messages {
				n, _ := strconv.ParseUint(oldID, 10, 64)
				m := got[itoa(carried[n])]
				if m == nil {
					t.Errorf("%s: not in the new queue (new id %d)", oldID, carried[n])
					continue
				}
				if m.Sender != tm.Sender || m.Size != tm.MessSize {
					t.Errorf("%s: sender %q size %d, want %q %d", oldID, m.Sender, m.Size, tm.Sender, tm.MessSize)
				}
				if tm.Parts["info"] && m.Arrival.Unix() != tm.InfoMtime {
					t.Errorf("%s: arrival %v, want info mtime %d", oldID, m.Arrival, tm.InfoMtime)
				}
				var gr, wr []string
				for _, r := range m.Recipients {
					gr = append(gr, fmt.Sprintf("%s %v", r.Address, r.Done))
				}
				for _, r := range tm.Recipients {
					wr = append(wr, fmt.Sprintf("%s %v", r.Address, r.State == "done"))
				}
				// The reader also lists recipients known only from
				// bounce/N (their channel file is gone) as done.
				for _, a := range tm.BounceRecipients {
					if !strings.Contains(strings.Join(wr, ","), a+" ") {
						wr = append(wr, a+" true")
					}
				}
				sort.Strings(gr)
				sort.Strings(wr)
				if strings.Join(gr, ",") != strings.Join(wr, ",") {
					t.Errorf("%s: recipients %v, want %v", oldID, gr, wr)
				}
				if len(m.Problems) > 0 {
					t.Errorf("%s: problems %v", oldID, m.Problems)
				}
			}
		})
	}
}

// copyTree copies a queue with cp -a (owners, modes, times, hard links and
// the FIFO kept) into a fresh directory; the copy has new inodes, like
// every extraction.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dir := testkit.FastTempDir(t)
	out, err := exec.Command("cp", "-a", src, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return filepath.Join(dir, filepath.Base(src))
}

// faultPoints returns the calls to fail: all of them when
// QSURGEON_ALL_FAULTS is set (CI, slow), else the first 40 (lost+found
// preparation, hierarchy fixes) and 40 spread evenly over the rest (the
// message moves and renames), always including the last.
func faultPoints(n int) []int {
	var out []int
	all := os.Getenv("QSURGEON_ALL_FAULTS") != ""
	stride := max(1, (n-40)/40)
	for k := 1; k <= n; k++ {
		if all || k <= 40 || (k-40)%stride == 0 || k == n {
			out = append(out, k)
		}
	}
	return out
}

// sendHazards lists what the real qmail-send would do wrong at its next
// start on this queue, by its own rules (notqmail qmail-send.c), keyed by
// path:
//
//   - "messdone": info where fnmake_info() looks, no todo and neither
//     local nor remote where fnmake_chanaddr() looks. pqadd() puts the id
//     on pqdone, and messdone() unlinks info and has qmail-clean unlink
//     mess: any recipient still pending in a channel file elsewhere is lost.
//   - "cleanup": a mess with one link, where fnmake_mess() looks, with
//     neither info nor todo. cleanup_do() has qmail-clean unlink it once
//     its atime is 36 h old.
func sendHazards(t *testing.T, root string) map[string]string {
	t.Helper()
	s, err := takeSnapshot(root, 0, TodoAuto)
	if err != nil {
		t.Fatal(err)
	}
	l := s.layout
	exists := func(rel string) bool {
		_, err := os.Lstat(filepath.Join(root, rel))
		return err == nil
	}
	out := map[string]string{}
	for _, dir := range []string{"info", "mess"} {
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			id, err := strconv.ParseUint(d.Name(), 10, 64)
			if err != nil {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			if dir == "info" {
				if rel == l.InfoPath(id) && !exists(l.TodoPath(id)) && !exists(l.Path(qmailq.PartLocal, id)) && !exists(l.Path(qmailq.PartRemote, id)) {
					out[rel] = "messdone"
				}
				return nil
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return nil
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 1 && rel == l.MessPath(id) && !exists(l.InfoPath(id)) && !exists(l.TodoPath(id)) {
				out[rel] = "cleanup"
			}
			return nil
		})
	}
	return out
}

// newHazards returns the hazards of now that were not there before.
func newHazards(before, now map[string]string) []string {
	var out []string
	for p, h := range now {
		if before[p] != h {
			out = append(out, h+" "+p)
		}
	}
	sort.Strings(out)
	return out
}

// countKind counts the problems of one kind.
func countKind(probs []Problem, kind string) int {
	n := 0
	for _, p := range probs {
		if p.Kind == kind {
			n++
		}
	}
	return n
}

// TestRepairFaults interrupts the repair of the broken queue at each
// mutating call and checks that a second repair then finishes the job:
// the queue checks clean and every file is either in it or in lost+found.
func TestRepairFaults(t *testing.T) {
	template := extract(t, "broken.tar.gz")
	ids := fixtureIDs(t)
	opts := Options{Now: fixtureNow(t)}

	// Count the calls of an uninterrupted repair.
	q := copyTree(t, template)
	p, err := PlanRepair(q, nil, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	counter := safefs.NewFaulty(testkit.OpenFS(t, p.Base), 0)
	if err := p.Execute(counter, nil); err != nil {
		t.Fatal(err)
	}
	n := counter.Calls()
	if n < 50 {
		t.Fatalf("only %d calls", n)
	}
	for _, k := range faultPoints(n) {
		t.Run(strconv.Itoa(k), func(t *testing.T) {
			q := copyTree(t, template)
			before := inventory(t, q)
			hazBefore := sendHazards(t, q)
			probsBefore, err := CheckQmail(q, ids, opts)
			if err != nil {
				t.Fatal(err)
			}
			p, err := PlanRepair(q, nil, ids, opts)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Execute(safefs.NewFaulty(testkit.OpenFS(t, p.Base), k), nil)
			if !errors.Is(err, safefs.ErrInjected) {
				t.Fatalf("Execute with a fault at call %d: %v", k, err)
			}
			// The cut queue as qmail-send would find it if started now,
			// without a second repair: nothing it would finish as
			// delivered or clean up that was not so before.
			if h := newHazards(hazBefore, sendHazards(t, q)); len(h) > 0 {
				t.Errorf("cut at call %d (%v): qmail-send would lose mail: %v", k, p.Steps[min(k, len(p.Steps))-1], h)
			}
			probsCut, err := CheckQmail(q, ids, opts)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := countKind(probsCut, KindChannelsGone), countKind(probsBefore, KindChannelsGone); a > b {
				t.Errorf("cut at call %d: %d %s messages, %d before", k, a, KindChannelsGone, b)
			}
			// Whatever was done so far lost nothing.
			verifyNothingLost(t, q, q+".lost+found", before)
			p2, err := PlanRepair(q, nil, ids, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(p2.Skipped) > 0 {
				t.Errorf("second repair skips %v", p2.Skipped)
			}
			if err := p2.Execute(testkit.OpenFS(t, p2.Base), nil); err != nil {
				t.Fatalf("second repair: %v", err)
			}
			probs, err := CheckQmail(q, ids, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, pr := range probs {
				t.Errorf("after interrupted + second repair: %v", pr)
			}
			verifyNothingLost(t, q, q+".lost+found", before)
		})
	}
}

// TestRebuildCarryFaults interrupts "rebuild + carry every message" at
// each sampled mutating call: the old queue must be byte-for-byte
// untouched, and the new one may hold at most one partly carried message
// (which check flags) besides what was carried completely.
func TestRebuildCarryFaults(t *testing.T) {
	template := extract(t, "queue.tar.gz")
	ids := fixtureIDs(t)
	s, err := takeSnapshot(template, 0, TodoAuto)
	if err != nil {
		t.Fatal(err)
	}
	sel := s.sortedIDs()
	mk := func(old string) (*Plan, string, int) {
		newq := filepath.Join(filepath.Dir(old), "queue.new")
		p, err := PlanRebuild(newq, 29, true, ids)
		if err != nil {
			t.Fatal(err)
		}
		hierSteps := len(p.Steps)
		c, err := PlanCarry(old, newq, sel, ids, CarryOptions{Split: 29, BigTodo: true})
		if err != nil {
			t.Fatal(err)
		}
		p.Append(c)
		return p, newq, hierSteps
	}
	old := copyTree(t, template)
	p, _, hierCalls := mk(old)
	counter := safefs.NewFaulty(testkit.OpenFS(t, p.Base), 0)
	if err := p.Execute(counter, nil); err != nil {
		t.Fatal(err)
	}
	n := counter.Calls()
	for _, k := range faultPoints(n) {
		t.Run(strconv.Itoa(k), func(t *testing.T) {
			old := copyTree(t, template)
			before := testkit.Snapshot(t, old)
			p, newq, _ := mk(old)
			err := p.Execute(safefs.NewFaulty(testkit.OpenFS(t, p.Base), k), nil)
			if !errors.Is(err, safefs.ErrInjected) {
				t.Fatalf("Execute with a fault at call %d: %v", k, err)
			}
			if d := before.Diff(testkit.Snapshot(t, old)); d != nil {
				t.Fatalf("the old queue changed:\n%s", strings.Join(d, "\n"))
			}
			if k <= hierCalls {
				return // the new queue is not complete yet; nothing was carried
			}
			// A partly carried mess alone is a copy (the old queue
			// keeps the message, checked above); info without channel
			// files would be finished as delivered.
			for p, h := range sendHazards(t, newq) {
				if h == "messdone" {
					t.Errorf("new queue cut at call %d: qmail-send would finish %s as delivered", k, p)
				}
			}
			probs, err := CheckQmail(newq, ids, Options{Todo: TodoBig})
			if err != nil {
				t.Fatal(err)
			}
			if n := countKind(probs, KindChannelsGone); n > 0 {
				t.Errorf("new queue cut at call %d: %d %s messages", k, n, KindChannelsGone)
			}
			partial := map[string]bool{}
			for _, pr := range probs {
				switch {
				// The carry's own temporary file: young or stale by the
				// old message's time stamp, which the carry keeps, so
				// either kind whatever the date; the message itself is
				// still whole in the old queue (checked above).
				case pr.Kind == KindPidFile, pr.Kind == KindStalePid:
				case pr.ID != "":
					partial[pr.ID] = true
				default:
					t.Errorf("new queue: %v", pr)
				}
			}
			if len(partial) > 1 {
				t.Errorf("%d partly carried messages: %v", len(partial), probs)
			}
		})
	}
}

func TestSwapKeepsOld(t *testing.T) {
	ids := fixtureIDs(t)
	dir := testkit.FastTempDir(t)
	old := filepath.Join(dir, "queue")
	if err := Rebuild(old, 23, false, ids, testkit.OpenFS(t, dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "mess/0/marker"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	newq := filepath.Join(dir, "queue.new")
	if err := Rebuild(newq, 23, false, ids, testkit.OpenFS(t, dir)); err != nil {
		t.Fatal(err)
	}
	// Refused while "qmail-send" holds the old queue's sendmutex.
	unlock, err := qmailq.LockSend(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Swap(old, newq, testkit.OpenFS(t, dir)); !errors.Is(err, qmailq.ErrSendRunning) {
		t.Errorf("Swap while locked: %v", err)
	}
	unlock()
	kept, err := Swap(old, newq, testkit.OpenFS(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(kept, "mess/0/marker")); err != nil || string(data) != "old" {
		t.Errorf("old queue not kept at %s: %v", kept, err)
	}
	if _, err := os.Stat(filepath.Join(old, "mess/0/marker")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the new queue is not in place: %v", err)
	}
	if _, err := os.Stat(newq); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists", newq)
	}
}

func TestIDsFromFlags(t *testing.T) {
	ids, err := IDsFromFlags([]string{"qmailq=992", "qmails=990", "qmailr = 991", "alias=999"}, []string{"qmail=995"})
	if err != nil {
		t.Fatal(err)
	}
	if ids.Users["qmailq"] != 992 || ids.Users["qmailr"] != 991 || ids.Groups["qmail"] != 995 {
		t.Errorf("got %+v", ids)
	}
	for _, bad := range []string{"qmailq", "=5", "qmailq=x", "qmailq=-1"} {
		if _, err := IDsFromFlags([]string{bad}, nil); err == nil || errors.Is(err, ErrUnknownAccount) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// Accounts this machine does not have are named in the error.
	if _, err := user.Lookup("qmailq"); err != nil {
		_, err := IDsFromFlags(nil, []string{"qmail=995"})
		if !errors.Is(err, ErrUnknownAccount) {
			t.Errorf("missing accounts: %v", err)
		}
	}
	if _, err := CheckQmail(t.TempDir(), IDs{}, Options{}); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("CheckQmail without ids: %v", err)
	}
}

package rebuild

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

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

package rebuild

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/qmailq"
)

type truthMsg struct {
	Parts      map[string]bool   `json:"parts"`
	Paths      map[string]string `json:"paths"`
	Sender     string            `json:"sender"`
	AuthUser   *string           `json:"auth_user"`
	Category   string            `json:"category"`
	HeaderTo   string            `json:"header_to"`
	Recipients []struct {
		Address string `json:"address"`
		Channel string `json:"channel"`
		State   string `json:"state"`
	} `json:"recipients"`
	Received struct {
		Invoked string `json:"invoked"`
	} `json:"qmail_received"`
}

func loadTruth(t *testing.T) map[string]truthMsg {
	var tr struct {
		Messages map[string]truthMsg `json:"messages"`
	}
	readJSON(t, filepath.Join(qmailFixtures, "truth.json"), &tr)
	return tr.Messages
}

// pick returns the smallest id of the clean fixture that ok accepts and
// that no earlier pick took.
func pick(t *testing.T, truth map[string]truthMsg, taken map[string]bool, what string, ok func(truthMsg) bool) string {
	t.Helper()
	var ids []string
	for id, m := range truth {
		if !taken[id] && ok(m) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		t.Fatalf("fixture has no message for %s", what)
	}
	sort.Strings(ids)
	taken[ids[0]] = true
	return ids[0]
}

func pendingRemote(m truthMsg) (n int) {
	for _, r := range m.Recipients {
		if r.Channel == "remote" && r.State == "pending" {
			n++
		}
	}
	return n
}

// TestCheckRepairContents damages real queue files the way the issue saw
// qmail lose recipients (an empty info, a remote file cut mid-address, the
// channel files gone, a duplicate copy) and checks that check names each
// with its own kind and severity, and that one repair pass leaves nothing
// at risk, taking the sender of a recreated info from evidence only.
func TestCheckRepairContents(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	ids := fixtureIDs(t)
	opts := Options{Now: fixtureNow(t)}
	truth := loadTruth(t)
	taken := map[string]bool{}
	plain := func(m truthMsg) bool {
		return m.Parts["mess"] && m.Parts["info"] && !m.Parts["todo"] && !m.Parts["bounce"] && !m.Parts["local"]
	}
	cut := pick(t, truth, taken, "cut remote", func(m truthMsg) bool {
		return plain(m) && pendingRemote(m) >= 2 && len(m.Recipients) == pendingRemote(m) && strings.Count(m.HeaderTo, "@") == len(m.Recipients)
	})
	cutBlind := pick(t, truth, taken, "cut remote, To: undisclosed", func(m truthMsg) bool {
		return plain(m) && pendingRemote(m) >= 2 && len(m.Recipients) == pendingRemote(m) && !strings.Contains(m.HeaderTo, "@")
	})
	emptyAuth := pick(t, truth, taken, "empty info, AUTH user", func(m truthMsg) bool {
		return plain(m) && m.AuthUser != nil && *m.AuthUser == m.Sender && m.Category == "legit"
	})
	emptyBounce := pick(t, truth, taken, "empty info of a bounce", func(m truthMsg) bool {
		return plain(m) && m.Received.Invoked == "for bounce" && m.Sender == "" && m.Parts["remote"]
	})
	gone := pick(t, truth, taken, "channels gone", func(m truthMsg) bool { return plain(m) && pendingRemote(m) >= 1 })
	allDone := pick(t, truth, taken, "all done", func(m truthMsg) bool { return plain(m) && pendingRemote(m) >= 1 })
	dup := pick(t, truth, taken, "duplicate", plain)

	path := func(id, part string) string {
		return filepath.Join(filepath.Dir(root), truth[id].Paths[part])
	}
	inode := map[string]uint64{} // id -> its mess inode, the id after repair
	for id := range taken {
		fi, err := os.Stat(path(id, "mess"))
		if err != nil {
			t.Fatal(err)
		}
		inode[id] = inodeOf(fi)
	}
	cutAddr := map[string]string{}
	for _, id := range []string{cut, cutBlind} {
		remote, err := os.ReadFile(path(id, "remote"))
		if err != nil {
			t.Fatal(err)
		}
		recs := bytes.Split(remote[:len(remote)-1], []byte{0})
		last := string(recs[len(recs)-1][1:])
		cutAddr[id] = last[:len(last)-5]
		if err := os.Truncate(path(id, "remote"), int64(len(remote)-6)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{emptyAuth, emptyBounce} {
		if err := os.Truncate(path(id, "info"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(path(gone, "remote")); err != nil {
		t.Fatal(err)
	}
	ad, err := os.ReadFile(path(allDone, "remote"))
	if err != nil {
		t.Fatal(err)
	}
	ad = bytes.ReplaceAll(append([]byte{0}, ad...), []byte("\x00T"), []byte("\x00D"))[1:]
	if err := os.WriteFile(path(allDone, "remote"), ad, 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Base(filepath.Dir(path(dup, "mess")))
	other := filepath.Join(root, "mess", map[bool]string{true: "1", false: "0"}[sub == "0"], dup)
	data, err := os.ReadFile(path(dup, "mess"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, data, 0o644); err != nil {
		t.Fatal(err)
	}

	probs, err := CheckQmail(root, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The reader (list, list --corrupt) sees the same damage: one parser.
	rq, err := qmailq.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rq.Inventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, kind := range map[string]string{emptyAuth: qmailq.KindCorrupt, emptyBounce: qmailq.KindCorrupt, cut: qmailq.KindCorrupt, cutBlind: qmailq.KindCorrupt, gone: qmailq.KindChannelsGone} {
		_, ps, err := rq.Inspect(id)
		found := false
		for _, p := range ps {
			found = found || p.Kind == kind
		}
		if err != nil || !found {
			t.Errorf("qmailq.Inspect(%s): %v %v, want a %s problem", id, err, ps, kind)
		}
	}
	rq.Close()
	want := map[string][2]string{ // id -> kind, severity
		emptyAuth:   {KindEmptyInfo, SeverityRisk},
		emptyBounce: {KindEmptyInfo, SeverityRisk},
		cut:         {KindChannelCut, SeverityRisk},
		cutBlind:    {KindChannelCut, SeverityRisk},
		gone:        {KindChannelsGone, SeverityRisk},
		allDone:     {KindChannelAllDone, SeverityNote},
		dup:         {KindDuplicatePart, SeverityFault},
	}
	for id, w := range want {
		found := false
		for _, p := range probs {
			if p.ID == id && p.Kind == w[0] {
				found = true
				if p.Severity != w[1] {
					t.Errorf("%s %s: severity %q, want %q", id, p.Kind, p.Severity, w[1])
				}
				if id == cut && !strings.Contains(p.Fix, "plus ") {
					t.Errorf("cut address not completed from the To: header: %s", p.Fix)
				}
			}
		}
		if !found {
			t.Errorf("%s: no %s problem", id, w[0])
		}
	}
	if !AtRisk(probs) {
		t.Error("AtRisk false")
	}

	plan, err := PlanRepair(root, nil, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Skipped) > 0 {
		t.Errorf("repair left problems unfixed: %v", plan.Skipped)
	}
	if err := plan.Execute(testkit.OpenFS(t, plan.Base), nil); err != nil {
		t.Fatalf("%v\n%s", err, plan)
	}
	after, err := CheckQmail(root, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range after {
		if p.Severity != SeverityNote {
			t.Errorf("after one repair: %v", p)
		}
	}
	if AtRisk(after) {
		t.Error("still at risk after one repair")
	}

	// What the repaired messages now say, read by qmailq.
	q, err := qmailq.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	present := inventory(t, root)
	inQueue := func(id string) bool {
		rel := "mess/" + itoa(inode[id]%23) + "/" + itoa(inode[id])
		return present[rel] == inode[id]
	}
	byMessID := map[string]string{}
	for id, ino := range inode {
		byMessID[id] = itoa(ino)
	}
	for _, id := range []string{emptyAuth, emptyBounce} {
		m, probs, err := q.Inspect(byMessID[id])
		if err != nil || len(probs) > 0 {
			t.Fatalf("%s: %v %v", id, err, probs)
		}
		if m.Sender != truth[id].Sender || m.NullSender != (truth[id].Sender == "") {
			t.Errorf("%s: recreated sender %q null=%v, want %q", id, m.Sender, m.NullSender, truth[id].Sender)
		}
	}
	m, _, err := q.Inspect(byMessID[cut])
	if err != nil {
		t.Fatal(err)
	}
	var got, wantR []string
	for _, r := range m.Recipients {
		got = append(got, r.Address)
	}
	for _, r := range truth[cut].Recipients {
		wantR = append(wantR, r.Address)
	}
	sort.Strings(got)
	sort.Strings(wantR)
	if strings.Join(got, ",") != strings.Join(wantR, ",") {
		t.Errorf("cut message's recipients after repair %q, want %q", got, wantR)
	}
	if inQueue(gone) {
		t.Errorf("%s: channels gone, yet still in the queue", gone)
	}
	if !inQueue(dup) {
		t.Errorf("%s: the duplicated message is not in the queue under its inode", dup)
	}
	// The blind cut: the complete records stay queued, the cut address is
	// named in the note of the file kept in lost+found.
	m, _, err = q.Inspect(byMessID[cutBlind])
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Recipients) != len(truth[cutBlind].Recipients)-1 {
		t.Errorf("blind cut: %d recipients left, want %d", len(m.Recipients), len(truth[cutBlind].Recipients)-1)
	}
	notes, _ := filepath.Glob(filepath.Join(plan.LostFound, "*", "*", "*.note"))
	var goneNote, cutNote bool
	for _, n := range notes {
		b, _ := os.ReadFile(n)
		if strings.Contains(string(b), "message: "+gone) && strings.Contains(string(b), KindChannelsGone) {
			goneNote = true
		}
		if strings.Contains(string(b), "message: "+cutBlind) && strings.Contains(string(b), cutAddr[cutBlind]) {
			cutNote = true
		}
	}
	if !goneNote || !cutNote {
		t.Errorf("lost+found notes: channels-gone %v, cut address %v, among %v", goneNote, cutNote, notes)
	}
}

// TestSenderFromSendLog: with qmail-send's log, a lost info's sender comes
// from its "info msg" line (same id, qp and size), before any header.
func TestSenderFromSendLog(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	ids := fixtureIDs(t)
	truth := loadTruth(t)
	taken := map[string]bool{}
	id := pick(t, truth, taken, "a forward (sender differs from From:)", func(m truthMsg) bool {
		return m.Parts["mess"] && m.Parts["info"] && !m.Parts["todo"] && m.Received.Invoked == "by uid 0" && m.Sender != ""
	})
	if err := os.Truncate(filepath.Join(filepath.Dir(root), truth[id].Paths["info"]), 0); err != nil {
		t.Fatal(err)
	}
	opts := Options{Now: fixtureNow(t), SendLogs: []string{filepath.Join(qmailFixtures, "qmail-send.log")}}
	probs, err := CheckQmail(root, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if p.ID == id && p.Kind == KindEmptyInfo {
			if !strings.Contains(p.Fix, "<"+truth[id].Sender+"> from qmail-send's log") {
				t.Errorf("fix %q, want the sender %s from the log", p.Fix, truth[id].Sender)
			}
			return
		}
	}
	t.Fatalf("no empty-info problem for %s", id)
}

// TestReaderAndCheckAgree: every message the reader (qmailq, what list and
// list --corrupt show) finds a problem with, check reports too: the two
// read the same bytes with the same parsers.
func TestReaderAndCheckAgree(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	truth := loadTruth(t)
	// Damage a few more the way only the contents show.
	var emptied, cut string
	var sortedIDs []string
	for id := range truth {
		sortedIDs = append(sortedIDs, id)
	}
	sort.Strings(sortedIDs)
	for _, id := range sortedIDs {
		m := truth[id]
		p := filepath.Join(filepath.Dir(root), m.Paths["remote"])
		if m.Parts["info"] && m.Parts["remote"] && !m.Parts["todo"] && (emptied == "" || cut == "") {
			if _, err := os.Stat(p); err != nil {
				continue // moved by a planted defect
			}
			if emptied == "" {
				emptied = id
				if err := os.Truncate(filepath.Join(filepath.Dir(root), m.Paths["info"]), 0); err != nil {
					t.Fatal(err)
				}
			} else if id != emptied {
				cut = id
				fi, _ := os.Stat(p)
				if err := os.Truncate(p, fi.Size()-3); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	probs, err := CheckQmail(root, fixtureIDs(t), Options{Now: fixtureNow(t)})
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for _, p := range probs {
		if p.ID != "" && p.Kind != KindIDNotInode {
			checked[p.ID] = true
		}
	}
	q, err := qmailq.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	inv, err := q.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, id := range inv.IDs {
		_, ps, err := q.Inspect(itoa(id))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Kind == qmailq.KindIDNotInode {
				continue
			}
			n++
			if !checked[itoa(id)] {
				t.Errorf("the reader says %s, check says nothing about message %d", p, id)
			}
		}
	}
	if n < 15 || !checked[emptied] || !checked[cut] {
		t.Errorf("%d reader problems; check on the emptied info %s: %v, on the cut remote %s: %v", n, emptied, checked[emptied], cut, checked[cut])
	}
}

// TestCorruptTodo: a todo envelope qmail-send cannot preprocess whole is
// reported at risk, and repair does not pretend to fix it.
func TestCorruptTodo(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	truth := loadTruth(t)
	id := pick(t, truth, map[string]bool{}, "a frozen message", func(m truthMsg) bool { return m.Parts["todo"] && m.Parts["mess"] })
	todo := filepath.Join(filepath.Dir(root), truth[id].Paths["todo"])
	f, err := os.OpenFile(todo, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("Xjunk\x00")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ids, opts := fixtureIDs(t), Options{Now: fixtureNow(t)}
	probs, err := CheckQmail(root, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range probs {
		found = found || p.ID == id && p.Kind == KindCorruptEnvelope && p.Severity == SeverityRisk
	}
	if !found {
		t.Fatalf("no at-risk corrupt-envelope for %s", id)
	}
	plan, err := PlanRepair(root, nil, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	skipped := false
	for _, p := range plan.Skipped {
		skipped = skipped || p.ID == id && p.Kind == KindCorruptEnvelope
	}
	if !skipped {
		t.Errorf("repair does not list %s's corrupt envelope as left unfixed: %v", id, plan.Skipped)
	}
}

package main

// Hostile queues: a queue file that is a symbolic link to a file outside
// the queue, a hash directory that is a symbolic link to a directory outside
// the queue, and names with ".." or a leading dot. qsurgeon must never read,
// change or delete anything outside the queue root through them, must not
// take them for messages, and must report each one. The queues are copies
// of the real fixtures; what the links point at are copies of real queue
// files, so following a link would "work" and be noticed.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

// sameTree fails the test with the differences when the tree below dir is
// no longer what before (a testkit.Snapshot of it) describes: type and
// mode, owner, inode, size, mtime, content and link target. Access times
// are left out: reading is checked by what qsurgeon reports, not by atime.
func sameTree(t *testing.T, what, dir string, before testkit.Tree) {
	t.Helper()
	if diffs := before.Diff(testkit.Snapshot(t, dir)); len(diffs) > 0 {
		t.Errorf("after %s, the tree OUTSIDE the queue (%s) changed:\n  %s", what, dir, strings.Join(diffs, "\n  "))
	}
}

// cpA copies src to dst keeping mode, owner and times (cp -a).
func cpA(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
}

// moveDirOut replaces the directory root/rel by a symbolic link to
// outside/name, moving its real files there first; it returns their names.
func moveDirOut(t *testing.T, root, rel, outside, name string) []string {
	t.Helper()
	src := filepath.Join(root, rel)
	dst := filepath.Join(outside, name)
	if err := os.Rename(src, dst); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dst, src); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		t.Fatalf("%s held no files: the test would prove nothing", rel)
	}
	return names
}

func linkOut(t *testing.T, root, rel, target string) {
	t.Helper()
	if err := os.Symlink(target, filepath.Join(root, rel)); err != nil {
		t.Fatal(err)
	}
}

func firstFile(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			return e.Name()
		}
	}
	t.Fatalf("no regular file in %s", dir)
	return ""
}

// hostile is one planted entry: the queue-relative path that must be
// reported, and the queue ID (if it has one) that must not become a message.
type hostile struct {
	rel, id string
}

// reportedOn says whether rel is named on stderr or, for list, in the
// problems of a listed entry.
func reportedOn(r result, listed map[string]map[string]any, rel string) bool {
	if strings.Contains(r.stderr, rel) {
		return true
	}
	for _, m := range listed {
		for _, p := range strSlice(m["problems"]) {
			if strings.Contains(p, rel) {
				return true
			}
		}
	}
	return false
}

func strSlice(v any) []string {
	arr, _ := v.([]any)
	var out []string
	for _, x := range arr {
		out = append(out, str(x))
	}
	return out
}

func okOrPartial(code int) bool { return code == 0 || code == exitPartial }

// checkReported asserts the "each is reported": every planted entry
// is named on stderr (or, for list, in a listed entry's problems).
// listPartial runs list --format json on a queue with hostile entries,
// where a partial failure (the entries it reports) is expected, and
// returns the messages by queue ID.
func listPartial(t *testing.T, root string) (result, map[string]map[string]any) {
	t.Helper()
	r := qs(t, "", "--queue", root, "--format", "json", "list")
	if !okOrPartial(r.code) {
		t.Fatalf("list: exit %d: %s", r.code, r.stderr)
	}
	listed := map[string]map[string]any{}
	for _, m := range jsonLines(t, r.stdout) {
		listed[str(m["queue_id"])] = m
	}
	return r, listed
}

// exportRefused: export of an ID that only exists behind a symbolic link
// must fail (the brief; it once exited 0, "exported 0") and write nothing.
func exportRefused(t *testing.T, root, id, exp, what string) {
	t.Helper()
	r := qs(t, "", "--queue", root, "export", "--id", id, exp)
	if r.code == 0 {
		t.Errorf("export --id %s (%s): exit 0, want a failure; stdout %q stderr %q", id, what, r.stdout, r.stderr)
	}
	if ents, _ := os.ReadDir(exp); len(ents) > 0 {
		t.Errorf("export --id %s wrote %d file(s) from behind a symbolic link", id, len(ents))
	}
}

// deleteAllInside runs delete --all, which must remove the real messages
// and nothing outside the queue, reporting every planted entry.
func deleteAllInside(t *testing.T, root, outside string, outsideBefore testkit.Tree, planted []hostile) {
	t.Helper()
	r := qs(t, "", "--queue", root, "delete", "--all", "--yes", "--journal", "none")
	if !okOrPartial(r.code) {
		t.Fatalf("delete --all: exit %d: %s", r.code, r.stderr)
	}
	sameTree(t, "delete --all", outside, outsideBefore)
	checkReported(t, "delete --all", r, nil, planted)
}

func checkReported(t *testing.T, cmd string, r result, listed map[string]map[string]any, planted []hostile) {
	t.Helper()
	var missing []string
	for _, h := range planted {
		if !reportedOn(r, listed, h.rel) {
			missing = append(missing, h.rel)
		}
	}
	if len(missing) > 0 {
		// ISSUE REQUIREMENT ("each is reported"): qsurgeon says nothing
		// about these hostile entries.
		t.Errorf("UNREPORTED by %s (exit %d): %s are not named on stderr%s; stderr (start):\n%s",
			cmd, r.code, strings.Join(missing, ", "), map[bool]string{true: " nor in any listed problem", false: ""}[listed != nil], clipStderr(r.stderr))
	}
}

func clipStderr(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

// TestHostilePostfixQueue plants symbolic links and odd names in a copy of
// the real Postfix fixture.
func TestHostilePostfixQueue(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	outside := t.TempDir()
	truth := loadPostfixTruth(t)

	// (a) deferred/A/ABCDE12345 and hold/ABCDE54321: symbolic links to
	// copies of a real deferred queue file outside the queue.
	realID := firstFile(t, filepath.Join(root, "deferred", "0"))
	realFile := filepath.Join(root, "deferred", "0", realID)
	for _, id := range []string{"ABCDE12345", "ABCDE54321"} {
		if _, err := os.Lstat(filepath.Join(root, "deferred", "A", id)); err == nil {
			t.Fatalf("%s exists in the fixture", id)
		}
		cpA(t, realFile, filepath.Join(outside, "copy-"+id))
	}
	linkOut(t, root, "deferred/A/ABCDE12345", filepath.Join(outside, "copy-ABCDE12345"))
	linkOut(t, root, "hold/ABCDE54321", filepath.Join(outside, "copy-ABCDE54321"))
	// (b) the hash directory deferred/F is a symbolic link to a directory
	// outside holding the real files that were there.
	behind := moveDirOut(t, root, "deferred/F", outside, "deferred-F")
	// (c) real queue files under names with "..", a leading dot, or both.
	for _, name := range []string{"..0BEEF1234", ".0BEEF1235", "0BE..EF123"} {
		cpA(t, realFile, filepath.Join(root, "deferred", "0", name))
	}
	cpA(t, realFile, filepath.Join(root, "hold", "..ABCDE5432"))

	planted := []hostile{
		{"deferred/A/ABCDE12345", "ABCDE12345"},
		{"hold/ABCDE54321", "ABCDE54321"},
		{"deferred/F", ""},
		{"deferred/0/..0BEEF1234", "..0BEEF1234"},
		{"deferred/0/.0BEEF1235", ".0BEEF1235"},
		{"deferred/0/0BE..EF123", "0BE..EF123"},
		{"hold/..ABCDE5432", "..ABCDE5432"},
	}
	notMessages := map[string]bool{}
	for _, h := range planted {
		if h.id != "" {
			notMessages[h.id] = true
		}
	}
	for _, id := range behind {
		notMessages[id] = true
	}
	outsideBefore := testkit.Snapshot(t, outside)

	// list: the planted entries are no messages, every other message of
	// the fixture is still listed, and each planted entry is reported.
	r, listed := listPartial(t, root)
	for id := range notMessages {
		if m, ok := listed[id]; ok {
			t.Errorf("list shows %s (behind a symbolic link or a bogus name) as a message: %v", id, m)
		}
	}
	for id, m := range listed {
		p := str(m["path"])
		if strings.Contains(p, "..") || strings.HasPrefix(filepath.Base(p), ".") || strings.HasPrefix(p, "deferred/F/") {
			t.Errorf("list shows %s at %s", id, p)
		}
	}
	want := 0
	for _, tm := range truth.Messages {
		if notMessages[tm.QueueID] {
			continue
		}
		want++
		if _, ok := listed[tm.QueueID]; !ok {
			t.Errorf("%s (%s) is no longer listed", tm.QueueID, tm.Path)
		}
	}
	if len(listed) != want {
		t.Errorf("list shows %d messages, want %d (the fixture's %d minus %d behind deferred/F)", len(listed), want, len(truth.Messages), len(behind))
	}
	checkReported(t, "list", r, listed, planted)
	sameTree(t, "list", outside, outsideBefore)

	// summary counts the same messages and reports the same entries.
	r = qs(t, "", "--queue", root, "--format", "json", "summary")
	if !okOrPartial(r.code) {
		t.Fatalf("summary: exit %d: %s", r.code, r.stderr)
	}
	if s := jsonLines(t, r.stdout); len(s) != 1 || fmt.Sprint(s[0]["messages"]) != strconv.Itoa(want) {
		t.Errorf("summary: %.300s, want messages %d", r.stdout, want)
	}
	checkReported(t, "summary", r, nil, planted)
	sameTree(t, "summary", outside, outsideBefore)

	// show and export of IDs that exist only behind a link or under a
	// bogus name fail, and nothing from behind the link is written out.
	for _, id := range []string{"ABCDE12345", "ABCDE54321", behind[0]} {
		if r := qs(t, "", "--queue", root, "show", "--raw", id); r.code == 0 || r.stdout != "" {
			t.Errorf("show --raw %s (only behind a symbolic link): exit %d, stdout %.200q", id, r.code, r.stdout)
		}
		if r := qs(t, "", "--queue", root, "show", id); r.code == 0 {
			t.Errorf("show %s (only behind a symbolic link): exit 0:\n%.500s", id, r.stdout)
		}
		exp := filepath.Join(t.TempDir(), "export")
		exportRefused(t, root, id, exp, "only behind a symbolic link")
	}
	sameTree(t, "show/export", outside, outsideBefore)

	// delete --all removes the real messages and nothing outside.
	deleteAllInside(t, root, outside, outsideBefore, planted)
	if rest := ids(t, root); len(rest) != 0 {
		t.Errorf("after delete --all, still listed: %v", rest)
	}
	for id := range listed {
		if _, err := os.Lstat(filepath.Join(root, str(listed[id]["path"]))); err == nil {
			t.Errorf("%s: %s is still there after delete --all", id, listed[id]["path"])
		}
	}
}

// TestHostileQmailQueue plants symbolic links and odd names in a copy of
// the real qmail fixture (conf-split 23).
func TestHostileQmailQueue(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue")
	outside := t.TempDir()

	// (a) message 99999981 (split 99999981 % 23 = 6) whose mess, info and
	// remote are symbolic links to copies of a real message's parts.
	const fake = "99999981"
	realID := firstFile(t, filepath.Join(root, "mess", "0"))
	for _, part := range []string{"mess", "info", "remote"} {
		src := filepath.Join(root, part, "0", realID)
		if _, err := os.Lstat(src); err != nil {
			t.Fatalf("fixture message %s has no %s part: %v", realID, part, err)
		}
		if _, err := os.Lstat(filepath.Join(root, part, "6", fake)); err == nil {
			t.Fatalf("%s/6/%s exists in the fixture", part, fake)
		}
		cpA(t, src, filepath.Join(outside, part+"-"+fake))
		linkOut(t, root, part+"/6/"+fake, filepath.Join(outside, part+"-"+fake))
	}
	// (b) the split directories mess/5 and info/7 are symbolic links to
	// directories outside holding the real files that were there.
	mess5 := moveDirOut(t, root, "mess/5", outside, "mess-5")
	info7 := moveDirOut(t, root, "info/7", outside, "info-7")
	// (c) copies of real parts under names with "..", a leading dot.
	cpA(t, filepath.Join(root, "mess", "0", realID), filepath.Join(root, "mess", "0", ".."+realID))
	cpA(t, filepath.Join(root, "info", "0", realID), filepath.Join(root, "info", "0", ".."+realID))
	cpA(t, filepath.Join(root, "mess", "0", realID), filepath.Join(root, "mess", "0", ".23"))
	cpA(t, filepath.Join(root, "mess", "0", realID), filepath.Join(root, "mess", "0", "1..2"))

	planted := []hostile{
		{"mess/6/" + fake, fake},
		{"mess/5", ""},
		{"info/7", ""},
		{"mess/0/.." + realID, ".." + realID},
		{"info/0/.." + realID, ".." + realID},
		{"mess/0/.23", ".23"},
		{"mess/0/1..2", "1..2"},
	}
	outsideBefore := testkit.Snapshot(t, outside)

	// What the real message's parts say: the planted copy must not be
	// credited with it.
	realMsg := listByID(t, filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue"), "--id", realID)[realID]
	if realMsg == nil || str(realMsg["sender"]) == "" && len(strSlice(realMsg["recipients"])) == 0 {
		t.Fatalf("fixture message %s: %v", realID, realMsg)
	}

	r, listed := listPartial(t, root)
	for _, h := range planted {
		if h.id == "" {
			continue
		}
		m, ok := listed[h.id]
		if !ok {
			continue
		}
		// A message whose every part is a symbolic link may be listed
		// only as a problem entry: nothing read through the links, and
		// the links named among its problems.
		if h.id == fake && str(m["sender"]) == "" && m["recipients"] != nil && len(m["recipients"].([]any)) == 0 &&
			fmt.Sprint(m["message_size"]) == "0" && strings.Contains(strings.Join(strSlice(m["problems"]), "\n"), "mess/6/"+fake) {
			continue
		}
		t.Errorf("list shows %s (behind symbolic links or a bogus name) as a message: %v", h.id, m)
	}
	// Messages whose mess is behind the mess/5 link: their in-queue parts
	// may be listed, but nothing of the mess is read.
	for _, id := range mess5 {
		m, ok := listed[id]
		if !ok {
			continue
		}
		if fmt.Sprint(m["message_size"]) != "0" || fmt.Sprint(m["file_size"]) != "0" || len(strSlice(m["problems"])) == 0 {
			t.Errorf("%s: its mess is only behind the mess/5 link, yet list shows size %v file_size %v problems %v", id, m["message_size"], m["file_size"], m["problems"])
		}
		if sr := qs(t, "", "--queue", root, "show", "--raw", id); sr.code == 0 || sr.stdout != "" {
			t.Errorf("show --raw %s (mess only behind a symbolic link): exit %d, stdout %.200q", id, sr.code, sr.stdout)
		}
	}
	// Messages whose info is behind the info/7 link: the sender stays
	// unknown.
	for _, id := range info7 {
		if m, ok := listed[id]; ok && (str(m["sender"]) != "" || m["null_sender"] == true || len(strSlice(m["problems"])) == 0) {
			t.Errorf("%s: its info is only behind the info/7 link, yet list shows sender %q null_sender %v problems %v", id, m["sender"], m["null_sender"], m["problems"])
		}
	}
	checkReported(t, "list", r, listed, planted)
	sameTree(t, "list", outside, outsideBefore)

	r = qs(t, "", "--queue", root, "--format", "json", "summary")
	if !okOrPartial(r.code) {
		t.Fatalf("summary: exit %d: %s", r.code, r.stderr)
	}
	checkReported(t, "summary", r, nil, planted)
	sameTree(t, "summary", outside, outsideBefore)

	for _, id := range []string{fake, mess5[0]} {
		if r := qs(t, "", "--queue", root, "show", "--raw", id); r.code == 0 || r.stdout != "" {
			t.Errorf("show --raw %s: exit %d, stdout %.200q", id, r.code, r.stdout)
		}
		exp := filepath.Join(t.TempDir(), "export")
		exportRefused(t, root, id, exp, "mess only behind a symbolic link")
	}
	sameTree(t, "show/export", outside, outsideBefore)

	deleteAllInside(t, root, outside, outsideBefore, planted)
	// Every message with no part behind a link is gone.
	hostileIDs := map[string]bool{fake: true}
	for _, id := range append(slices.Clone(mess5), info7...) {
		hostileIDs[id] = true
	}
	for _, id := range ids(t, root) {
		if !hostileIDs[id] {
			t.Errorf("%s is still listed after delete --all", id)
		}
	}
}

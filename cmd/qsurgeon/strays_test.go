package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/qmailq"
)

// The stray parts of a qmail queue are still found by the bounded walk
// (which keeps one subdirectory's messages and the files that lie where
// qmail does not put them, not an inventory of the queue): on the queue
// real qmail wrote, a copy of a message's info in the wrong subdirectory,
// a channel file lying flat in remote/, a bounce/ file of no message and
// a name that is no message id are each reported by list, and a delete
// of the message removes its misplaced copies with it and leaves the rest
// alone.
func TestQmailStrayPartsFoundByWalk(t *testing.T) {
	root := qmailCopy(t)
	q, err := qmailq.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	split := q.Layout().Split
	q.Close()
	all := ids(t, root)
	if len(all) < 10 {
		t.Fatalf("%d messages in the fixture", len(all))
	}
	// A preprocessed message with a remote/ part.
	var id uint64
	for _, s := range all {
		n, _ := strconv.ParseUint(s, 10, 64)
		if _, err := os.Stat(filepath.Join(root, "remote", strconv.Itoa(int(n)%split), s)); err == nil {
			id = n
			break
		}
	}
	if id == 0 {
		t.Fatal("no message with a remote/ part in the fixture")
	}
	idStr := strconv.FormatUint(id, 10)
	sub := int(id) % split
	wrong := filepath.Join("info", strconv.Itoa((sub+1)%split), idStr)
	flat := filepath.Join("remote", idStr)
	orphan := uint64(4000000007)
	orphanPath := filepath.Join("bounce", strconv.FormatUint(orphan, 10))
	junk := filepath.Join("mess", strconv.Itoa(sub), "notanid")
	copyFile := func(from, to string) {
		b, err := os.ReadFile(filepath.Join(root, from))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(filepath.Join("info", strconv.Itoa(sub), idStr), wrong)
	copyFile(filepath.Join("remote", strconv.Itoa(sub), idStr), flat)
	if err := os.WriteFile(filepath.Join(root, orphanPath), []byte("<x@example.com>\x00failure\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, junk), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := qs(t, "", "--queue", root, "--format", "json", "list")
	if r.code != 0 {
		t.Fatalf("list: exit %d: %s", r.code, r.stderr)
	}
	if want := junk + ": name is not a message id: left alone"; !strings.Contains(r.stderr, want) {
		t.Errorf("list does not report %q:\n%s", want, r.stderr)
	}
	byID := map[string]map[string]any{}
	for _, m := range jsonLines(t, r.stdout) {
		byID[str(m["queue_id"])] = m
	}
	problems := func(id string) string { return fmt.Sprint(byID[id]["problems"]) }
	for _, p := range []string{wrong, flat} {
		if !strings.Contains(problems(idStr), p+" is not where qmail looks for it") {
			t.Errorf("message %s: the misplaced %s is not reported: %s", idStr, p, problems(idStr))
		}
	}
	if o := strconv.FormatUint(orphan, 10); !strings.Contains(problems(o), orphanPath+" without info/") {
		t.Errorf("the bounce/ file of no message is not reported: %v", byID[o])
	}
	if len(byID) != len(all)+1 {
		t.Errorf("list shows %d messages, want the %d of the fixture and the orphan bounce", len(byID), len(all))
	}

	if r := qs(t, "", "--queue", root, "delete", "--id", idStr, "--yes", "--journal", "none", "--detached"); r.code != 0 {
		t.Fatalf("delete --id %s: exit %d: %s", idStr, r.code, r.stderr)
	}
	for _, p := range []string{wrong, flat, filepath.Join("info", strconv.Itoa(sub), idStr), filepath.Join("mess", strconv.Itoa(sub), idStr)} {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("after the delete %s is still there (%v)", p, err)
		}
	}
	for _, p := range []string{junk, orphanPath} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("the delete removed %s, which it did not select: %v", p, err)
		}
	}
	if left := ids(t, root); len(left) != len(all) {
		t.Errorf("%d messages left after deleting one of %d (and the orphan)", len(left), len(all))
	}
}

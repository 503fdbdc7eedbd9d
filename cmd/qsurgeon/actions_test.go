package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ids(t *testing.T, root string, filter ...string) []string {
	t.Helper()
	r := qs(t, "", append([]string{"--queue", root, "--format", "ids", "list"}, filter...)...)
	if r.code != 0 {
		t.Fatalf("list %v: exit %d: %s", filter, r.code, r.stderr)
	}
	return strings.Fields(r.stdout)
}

func listByID(t *testing.T, root string, filter ...string) map[string]map[string]any {
	t.Helper()
	r := qs(t, "", append([]string{"--queue", root, "--format", "json", "list"}, filter...)...)
	if r.code != 0 {
		t.Fatalf("list: exit %d: %s", r.code, r.stderr)
	}
	out := map[string]map[string]any{}
	for _, m := range jsonLines(t, r.stdout) {
		out[str(m["queue_id"])] = m
	}
	return out
}

// TestHoldReleaseExpirePostfix: hold moves exactly the selection into hold/
// keeping each file's inode, release brings it back to deferred/, expire
// sets the forced-expire bit; nothing else changes.
func TestHoldReleaseExpirePostfix(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	jr := []string{"--journal", "none", "--yes"}
	sel := ids(t, root, "--sasl-user", "bob@example.com", "--queue-name", "deferred")
	if len(sel) == 0 {
		t.Fatal("bob has no deferred mail in the fixture")
	}
	before := listByID(t, root)
	snapBefore := snapshot(t, root)
	inode := func(snap map[string]fileState, rel string) uint64 { return snap[rel].ino }

	if r := qs(t, "", append([]string{"--queue", root, "hold", "--sasl-user", "bob@example.com", "--queue-name", "deferred"}, jr...)...); r.code != 0 {
		t.Fatalf("hold: exit %d: %s", r.code, r.stderr)
	}
	held := listByID(t, root)
	for _, id := range sel {
		if str(held[id]["queue_name"]) != "hold" || str(held[id]["path"]) != "hold/"+id {
			t.Errorf("%s: after hold %v, want hold/%s", id, held[id]["path"], id)
		}
		if inode(snapBefore, str(before[id]["path"])) != inode(snapshot(t, root), "hold/"+id) {
			t.Errorf("%s: hold did not keep the inode", id)
		}
	}
	for id, m := range before {
		if !contains(sel, id) && str(held[id]["path"]) != str(m["path"]) {
			t.Errorf("%s moved but was not selected", id)
		}
	}
	if r := qs(t, "", append([]string{"--queue", root, "release", "--sasl-user", "bob@example.com", "--queue-name", "hold"}, jr...)...); r.code != 0 {
		t.Fatalf("release: exit %d: %s", r.code, r.stderr)
	}
	released := listByID(t, root)
	for _, id := range sel {
		if str(released[id]["path"]) != str(before[id]["path"]) {
			t.Errorf("%s: after release at %v, want back at %v", id, released[id]["path"], before[id]["path"])
		}
	}
	if r := qs(t, "", append([]string{"--queue", root, "expire", "--id", sel[0]}, jr...)...); r.code != 0 {
		t.Fatalf("expire: exit %d: %s", r.code, r.stderr)
	}
	exp := listByID(t, root)
	for id, m := range exp {
		if want := id == sel[0]; m["forced_expire"] != want {
			t.Errorf("%s: forced_expire %v, want %v", id, m["forced_expire"], want)
		}
	}
}

// TestPlanOutAndApply: --plan-out writes the selection and changes nothing;
// apply acts on it, skipping a message that is no longer the planned one.
func TestPlanOutAndApply(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	sel := ids(t, root, "--null-sender")
	before := snapshot(t, root)
	r := qs(t, "", "--queue", root, "delete", "--null-sender", "--plan-out", plan)
	if r.code != 0 {
		t.Fatalf("--plan-out: exit %d: %s", r.code, r.stderr)
	}
	if !equalSnap(before, snapshot(t, root)) {
		t.Fatal("--plan-out changed the queue")
	}
	b, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(sel) {
		t.Fatalf("plan has %d entries, the selection %d", len(lines), len(sel))
	}
	// Replace one planned message by another file under the same name
	// (what a reused short queue ID looks like): apply must skip it.
	var first planEntry
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, first.Path)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Write the twin first, so it cannot get the freed inode back.
	if err := os.WriteFile(p+".new", data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	r = qs(t, "", "--queue", root, "apply", plan, "delete", "--yes", "--journal", "none")
	if r.code != exitPartial || !strings.Contains(r.stderr, first.QueueID) {
		t.Fatalf("apply: exit %d, want %d naming %s: %s", r.code, exitPartial, first.QueueID, r.stderr)
	}
	left := ids(t, root, "--null-sender")
	if len(left) != 1 || left[0] != first.QueueID {
		t.Fatalf("after apply the null-sender messages left are %v, want only the replaced %s", left, first.QueueID)
	}
}

// TestExportPostfixAndQmail: every exported .eml is the message as the
// MTA stored it and its .json is the envelope list prints.
func TestExportPostfixAndQmail(t *testing.T) {
	pf := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	qm := filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue")
	for _, root := range []string{pf, qm} {
		out := t.TempDir()
		sel := ids(t, root, "--sasl-user", "alice@example.com")
		before := snapshot(t, root)
		r := qs(t, "", "--queue", root, "export", out, "--sasl-user", "alice@example.com")
		if r.code != 0 {
			t.Fatalf("export: exit %d: %s", r.code, r.stderr)
		}
		if !equalSnap(before, snapshot(t, root)) {
			t.Fatal("export changed the queue")
		}
		for _, id := range sel {
			eml, err := os.ReadFile(filepath.Join(out, id+".eml"))
			if err != nil {
				t.Fatal(err)
			}
			raw := qs(t, "", "--queue", root, "show", "--raw", id)
			if !bytes.Equal(eml, []byte(raw.stdout)) || len(eml) == 0 {
				t.Errorf("%s.eml differs from show --raw", id)
			}
			var env map[string]any
			jb, err := os.ReadFile(filepath.Join(out, id+".json"))
			if err != nil || json.Unmarshal(jb, &env) != nil || str(env["sasl_username"]) != "alice@example.com" {
				t.Errorf("%s.json: %v %s", id, err, jb)
			}
		}
		if root == qm {
			// qmail: the .eml is the mess file itself.
			m := listByID(t, root, "--id", sel[0])[sel[0]]
			want, _ := os.ReadFile(filepath.Join(root, str(m["path"])))
			got, _ := os.ReadFile(filepath.Join(out, sel[0]+".eml"))
			if !bytes.Equal(want, got) {
				t.Errorf("qmail %s.eml is not the mess file", sel[0])
			}
		}
	}
}

// TestRepairBrokenQmailQueue: check finds problems on the broken fixture,
// repair --dry-run changes nothing, repair --yes leaves a queue check finds
// clean, with every recoverable message still listed.
func TestRepairBrokenQmailQueue(t *testing.T) {
	base := extract(t, filepath.Join(qmailFixture, "broken.tar.gz"))
	root := filepath.Join(base, "queue")
	acct := []string{"--user", "qmailq=992", "--user", "qmails=990", "--user", "qmailr=991", "--user", "alias=999",
		"--user", "qmaild=995", "--user", "qmaill=994", "--user", "qmailp=993", "--group", "qmail=995", "--group", "nofiles=994"}
	r := qs(t, "", append([]string{"--queue", root, "--format", "json", "check"}, acct...)...)
	if r.code != exitProblems || len(jsonLines(t, r.stdout)) == 0 {
		t.Fatalf("check on the broken queue: exit %d, %d problems: %s", r.code, len(jsonLines(t, r.stdout)), r.stderr)
	}
	listedBefore := ids(t, root)
	before := snapshot(t, root)
	if r := qs(t, "", append([]string{"--queue", root, "repair", "--dry-run"}, acct...)...); r.code != 0 {
		t.Fatalf("repair --dry-run: exit %d: %s", r.code, r.stderr)
	}
	if !equalSnap(before, snapshot(t, root)) {
		t.Fatal("repair --dry-run changed the queue")
	}
	if r := qs(t, "", append([]string{"--queue", root, "repair"}, acct...)...); r.code != exitUsage {
		t.Fatalf("repair without --yes and without a terminal: exit %d, want %d", r.code, exitUsage)
	}
	lf := filepath.Join(base, "lost+found")
	if r := qs(t, "", append([]string{"--queue", root, "repair", "--yes", "--detached", "--lost-found", lf}, acct...)...); r.code != 0 {
		t.Fatalf("repair: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	r = qs(t, "", append([]string{"--queue", root, "--format", "json", "check"}, acct...)...)
	if r.code != 0 {
		t.Fatalf("check after repair: exit %d:\n%s", r.code, r.stdout)
	}
	after := listByID(t, root)
	if len(after) == 0 || len(after) < len(listedBefore)-8 {
		t.Errorf("after repair %d messages are listed, before %d", len(after), len(listedBefore))
	}
	for id, m := range after {
		if probs, _ := m["problems"].([]any); len(probs) > 0 {
			t.Errorf("%s still has problems after repair: %v", id, probs)
		}
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

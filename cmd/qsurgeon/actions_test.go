package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/surgery"
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
	return listBy(t, func(m map[string]any) string { return str(m["queue_id"]) }, root, filter...)
}

// listBy runs list --format json, which must exit 0, and returns its
// lines by key.
func listBy(t *testing.T, key func(map[string]any) string, root string, filter ...string) map[string]map[string]any {
	t.Helper()
	r := qs(t, "", append([]string{"--queue", root, "--format", "json", "list"}, filter...)...)
	if r.code != 0 {
		t.Fatalf("list: exit %d: %s", r.code, r.stderr)
	}
	out := map[string]map[string]any{}
	for _, m := range jsonLines(t, r.stdout) {
		out[key(m)] = m
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
	snapBefore := testkit.Snapshot(t, root)
	inode := func(snap testkit.Tree, rel string) uint64 { return snap[rel].Ino }

	if r := qs(t, "", append([]string{"--queue", root, "hold", "--sasl-user", "bob@example.com", "--queue-name", "deferred"}, jr...)...); r.code != 0 {
		t.Fatalf("hold: exit %d: %s", r.code, r.stderr)
	}
	held := listByID(t, root)
	for _, id := range sel {
		if str(held[id]["queue_name"]) != "hold" || str(held[id]["path"]) != "hold/"+id {
			t.Errorf("%s: after hold %v, want hold/%s", id, held[id]["path"], id)
		}
		if inode(snapBefore, str(before[id]["path"])) != inode(testkit.Snapshot(t, root), "hold/"+id) {
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
	before := testkit.Snapshot(t, root)
	r := qs(t, "", "--queue", root, "delete", "--null-sender", "--plan-out", plan)
	if r.code != 0 {
		t.Fatalf("--plan-out: exit %d: %s", r.code, r.stderr)
	}
	if before.Diff(testkit.Snapshot(t, root)) != nil {
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
	var first surgery.PlanEntry
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	replaceInode(t, filepath.Join(root, first.Path))
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
		before := testkit.Snapshot(t, root)
		r := qs(t, "", "--queue", root, "export", out, "--sasl-user", "alice@example.com")
		if r.code != 0 {
			t.Fatalf("export: exit %d: %s", r.code, r.stderr)
		}
		if before.Diff(testkit.Snapshot(t, root)) != nil {
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
	acct := fixtureAccounts
	r := qs(t, "", append([]string{"--queue", root, "--format", "json", "check"}, acct...)...)
	if r.code != exitAtRisk || len(jsonLines(t, r.stdout)) == 0 {
		t.Fatalf("check on the broken queue: exit %d, %d problems: %s", r.code, len(jsonLines(t, r.stdout)), r.stderr)
	}
	listedBefore := ids(t, root)
	before := testkit.Snapshot(t, root)
	if r := qs(t, "", append([]string{"--queue", root, "repair", "--dry-run"}, acct...)...); r.code != 0 {
		t.Fatalf("repair --dry-run: exit %d: %s", r.code, r.stderr)
	}
	if before.Diff(testkit.Snapshot(t, root)) != nil {
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

// TestQuarantineRestoreRoundTrip: quarantine moves exactly the selection
// out (list no longer shows it, every other file unchanged), restore puts
// it back with byte-identical content and envelope, and a dry run or a
// refused confirmation changes nothing.
func TestQuarantineRestoreRoundTrip(t *testing.T) {
	cases := []struct{ mta, tarball, sub string }{
		{"postfix", postfixFixture + "/queue.tar.gz", "postfix-incident-a"},
		{"qmail", qmailFixture + "/queue.tar.gz", "queue"},
	}
	for _, c := range cases {
		t.Run(c.mta, func(t *testing.T) {
			base := extract(t, c.tarball)
			root := filepath.Join(base, c.sub)
			qdir := filepath.Join(base, "held")
			filter := []string{"--sasl-user", "alice@example.com"}
			if c.mta == "qmail" {
				// An extracted queue's names are not its inodes; qmail
				// (and a restore, which names a message after its mess
				// inode) needs them to be. Repair first, as an admin
				// must before running qmail on a copied queue: otherwise
				// a restored inode can equal another message's stale
				// name, and restore refuses that message (it stays in DIR).
				acct := []string{"--user", "qmailq=992", "--user", "qmails=990", "--user", "qmailr=991", "--group", "qmail=995"}
				if r := qs(t, "", append([]string{"--queue", root, "repair", "--yes", "--lost-found", filepath.Join(base, "lf")}, acct...)...); r.code != 0 {
					t.Fatalf("repair: exit %d: %s", r.code, r.stderr)
				}
			}
			before := listByID(t, root)
			sel := ids(t, root, filter...)
			if len(sel) == 0 {
				t.Fatal("nothing selected")
			}
			raw := map[string]string{} // content of each selected message, by sender+subject
			for _, id := range sel {
				raw[id] = qs(t, "", "--queue", root, "show", "--raw", id).stdout
			}
			snap := testkit.Snapshot(t, root)
			if r := qs(t, "", append([]string{"--queue", root, "quarantine", qdir, "--journal", "none"}, filter...)...); r.code != exitUsage {
				t.Fatalf("quarantine without --yes: exit %d", r.code)
			}
			if r := qs(t, "", append([]string{"--queue", root, "quarantine", qdir, "--dry-run"}, filter...)...); r.code != 0 {
				t.Fatalf("quarantine --dry-run: exit %d: %s", r.code, r.stderr)
			}
			if snap.Diff(testkit.Snapshot(t, root)) != nil {
				t.Fatal("a dry run or a refused confirmation changed the queue")
			}
			if r := qs(t, "", append([]string{"--queue", root, "quarantine", qdir, "--yes", "--journal", "none"}, filter...)...); r.code != 0 {
				t.Fatalf("quarantine: exit %d: %s", r.code, r.stderr)
			}
			during := listByID(t, root)
			for _, id := range sel {
				if during[id] != nil {
					t.Errorf("%s still listed after quarantine", id)
				}
			}
			if len(during) != len(before)-len(sel) {
				t.Errorf("%d messages left, want %d", len(during), len(before)-len(sel))
			}
			if r := qs(t, "", "--queue", root, "restore", qdir, "--all", "--yes", "--journal", "none"); r.code != 0 {
				t.Fatalf("restore: exit %d: %s", r.code, r.stderr)
			}
			after := listByID(t, root)
			if len(after) != len(before) {
				t.Fatalf("%d messages after restore, %d before", len(after), len(before))
			}
			// Every restored message has its old content; qmail may have
			// renamed it after its inode.
			got := map[string]bool{}
			for id, m := range after {
				if str(m["sasl_username"]) == "alice@example.com" {
					got[qs(t, "", "--queue", root, "show", "--raw", id).stdout] = true
				}
			}
			for id, content := range raw {
				if !got[content] {
					t.Errorf("%s: not restored with identical content", id)
				}
			}
			if c.mta == "postfix" {
				for _, id := range sel {
					if str(after[id]["path"]) != str(before[id]["path"]) {
						t.Errorf("%s restored at %v, was at %v", id, after[id]["path"], before[id]["path"])
					}
				}
			}
		})
	}
}

// TestQmailRequeueExpire: requeue makes the next retry now, expire
// back-dates the birth by the queue lifetime (and retries now); hold is
// refused on qmail with a pointer to quarantine.
func TestQmailRequeueExpire(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue")
	sel := ids(t, root, "--sasl-user", "bob@example.com", "--queue-name", "queue")
	if len(sel) < 2 {
		t.Fatalf("want 2 of bob's preprocessed messages, got %v", sel)
	}
	before := listByID(t, root)
	start := float64(clock.Now().Unix())
	if r := qs(t, "", "--queue", root, "requeue", "--id", sel[0], "--yes", "--journal", "none"); r.code != 0 {
		t.Fatalf("requeue: exit %d: %s", r.code, r.stderr)
	}
	if r := qs(t, "", "--queue", root, "expire", "--id", sel[1], "--yes", "--journal", "none"); r.code != 0 {
		t.Fatalf("expire: exit %d: %s", r.code, r.stderr)
	}
	after := listByID(t, root)
	if nr, _ := after[sel[0]]["next_retry"].(float64); nr < start-1 {
		t.Errorf("%s: next_retry %v after requeue, want >= %v", sel[0], nr, start)
	}
	if after[sel[0]]["arrival_time"] != before[sel[0]]["arrival_time"] {
		t.Errorf("requeue changed the birth time")
	}
	if at, _ := after[sel[1]]["arrival_time"].(float64); at > start-604800 {
		t.Errorf("%s: arrival_time %v after expire, want <= now-604800", sel[1], at)
	}
	for id, m := range before {
		if id != sel[0] && id != sel[1] && (after[id]["arrival_time"] != m["arrival_time"] || after[id]["next_retry"] != m["next_retry"]) {
			t.Errorf("%s changed but was not selected", id)
		}
	}
	if r := qs(t, "", "--queue", root, "hold", "--id", sel[0], "--yes"); r.code != exitUsage || !strings.Contains(r.stderr, "quarantine") {
		t.Errorf("hold on qmail: exit %d: %s", r.code, r.stderr)
	}
}

// TestCheckPostfixCLI: on a copied queue every message's name no longer
// matches its inode; check says so once per message, with the rename
// postsuper -s would make, and exits 6.
func TestCheckPostfixCLI(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	r := qs(t, "", "--queue", root, "--format", "json", "check")
	if r.code != exitProblems {
		t.Fatalf("exit %d, want %d: %s", r.code, exitProblems, r.stderr)
	}
	seen := map[string]int{}
	for _, p := range jsonLines(t, r.stdout) {
		if str(p["kind"]) == "id-not-inode" {
			seen[str(p["id"])]++
		}
		for _, k := range []string{"kind", "path", "detail", "fix"} {
			if _, ok := p[k]; !ok {
				t.Errorf("problem without %q: %v", k, p)
			}
		}
	}
	all := ids(t, root)
	if len(seen) != len(all) {
		t.Errorf("%d messages reported id-not-inode, the queue holds %d", len(seen), len(all))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s reported %d times", id, n)
		}
	}
}

// emptyPostfixQueue turns an extracted fixture into an empty live queue:
// the directories stay, every message and log goes.
func emptyPostfixQueue(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"maildrop", "incoming", "active", "deferred", "hold", "defer", "bounce", "corrupt"} {
		_ = filepath.WalkDir(filepath.Join(root, d), func(p string, de os.DirEntry, err error) error {
			if err == nil && !de.IsDir() {
				return os.Remove(p)
			}
			return nil
		})
	}
}

// TestRequeueIntoLive: the seed 000 move. The legitimate mail of a detached
// queue goes into the live queue as new mail — Postfix: complete queue
// files in maildrop/; qmail: mess + intd/todo named by inode — and nothing
// of the stolen account does.
func TestRequeueIntoLive(t *testing.T) {
	t.Run("postfix", func(t *testing.T) {
		det := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
		live := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
		emptyPostfixQueue(t, live)
		good := listByID(t, det, "--sasl-user", "alice@example.com")
		r := qs(t, "", "--queue", det, "requeue", "--sasl-user", "alice@example.com", "--into", live, "--rate", "1000/s", "--yes", "--journal", "none")
		if r.code != 0 {
			t.Fatalf("requeue --into: exit %d: %s", r.code, r.stderr)
		}
		got := listByID(t, live)
		if len(got) != len(good) {
			t.Fatalf("the live queue holds %d messages, want %d", len(got), len(good))
		}
		subjects := map[string]bool{}
		for _, m := range good {
			subjects[str(m["sender"])+"|"+fmt.Sprint(m["arrival_time"])] = true
		}
		for id, m := range got {
			if str(m["queue_name"]) != "maildrop" || str(m["sasl_username"]) != "alice@example.com" {
				t.Errorf("%s: %v %v, want alice's mail in maildrop", id, m["queue_name"], m["sasl_username"])
			}
			if !subjects[str(m["sender"])+"|"+fmt.Sprint(m["arrival_time"])] {
				t.Errorf("%s: not one of the selected messages", id)
			}
		}
	})
	t.Run("qmail", func(t *testing.T) {
		det, live := qmailWithLive(t)
		good := listByID(t, det, "--sasl-user", "bob@example.com")
		r := qs(t, "", "--queue", det, "requeue", "--sasl-user", "bob@example.com", "--into", live, "--yes", "--journal", "none")
		if r.code != 0 {
			t.Fatalf("requeue --into: exit %d: %s", r.code, r.stderr)
		}
		got := listByID(t, live)
		if len(got) != len(good) {
			t.Fatalf("the live queue holds %d messages, want %d", len(got), len(good))
		}
		for id, m := range got {
			if str(m["queue_name"]) != "todo" || str(m["sasl_username"]) != "bob@example.com" {
				t.Errorf("%s: %v %v, want bob's mail in todo", id, m["queue_name"], m["sasl_username"])
			}
			if probs, _ := m["problems"].([]any); len(probs) > 0 {
				t.Errorf("%s: %v", id, probs)
			}
		}
		if r := qs(t, "", append([]string{"--queue", live, "check"}, fixtureAccounts...)...); r.code != 0 {
			t.Errorf("check of the live queue: exit %d:\n%s", r.code, r.stdout)
		}
	})
}

// TestExportMbox: one mbox with a From_ line per message, bodies quoted
// mboxrd-style, and the envelopes beside it.
func TestExportMbox(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	sel := ids(t, root, "--null-sender")
	mbox := filepath.Join(t.TempDir(), "bounces.mbox")
	if r := qs(t, "", "--queue", root, "export", "--mbox", mbox, "--null-sender"); r.code != 0 {
		t.Fatalf("export --mbox: exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(mbox)
	if err != nil {
		t.Fatal(err)
	}
	froms := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "From ") {
			froms++
			if !strings.HasPrefix(l, "From MAILER-DAEMON ") {
				t.Errorf("From_ line %q: the null sender is MAILER-DAEMON", l)
			}
		}
	}
	if froms != len(sel) {
		t.Errorf("%d From_ lines, %d messages", froms, len(sel))
	}
	env, err := os.ReadFile(mbox + ".jsonl")
	if err != nil || len(jsonLines(t, string(env))) != len(sel) {
		t.Errorf("envelopes: %v, %d lines, want %d", err, len(jsonLines(t, string(env))), len(sel))
	}
}

// TestQmailSendRunningRefused: while another process holds lock/sendmutex
// (as a running qmail-send does), every change is refused with exit code 5
// and the queue stays as it was.
func TestQmailSendRunningRefused(t *testing.T) {
	base := extract(t, filepath.Join(qmailFixture, "queue.tar.gz"))
	root := filepath.Join(base, "queue")
	holder := exec.Command("flock", "--exclusive", filepath.Join(root, "lock", "sendmutex"), "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatalf("flock(1): %v", err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		// flock -n fails while the holder has the lock.
		if exec.Command("flock", "--nonblock", filepath.Join(root, "lock", "sendmutex"), "true").Run() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock holder never took lock/sendmutex")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := testkit.Snapshot(t, root)
	acct := []string{"--user", "qmailq=992", "--user", "qmails=990", "--user", "qmailr=991", "--group", "qmail=995"}
	for _, args := range [][]string{
		{"--queue", root, "delete", "--sasl-user", "hello@example.com", "--yes", "--journal", "none"},
		{"--queue", root, "requeue", "--sasl-user", "bob@example.com", "--yes", "--journal", "none"},
		{"--queue", root, "quarantine", filepath.Join(base, "held"), "--sasl-user", "bob@example.com", "--yes", "--journal", "none"},
		append([]string{"--queue", root, "repair", "--yes"}, acct...),
	} {
		if r := qs(t, "", args...); r.code != exitLocked || !strings.Contains(r.stderr, "qmail-send") {
			t.Errorf("%v: exit %d, want %d: %s", args[2:4], r.code, exitLocked, r.stderr)
		}
	}
	if before.Diff(testkit.Snapshot(t, root)) != nil {
		t.Fatal("the queue changed while qmail-send held its lock")
	}
}

// TestDeleteByIDsFromStdin: the postsuper -d - workflow. IDs on standard
// input are looked up where Postfix keeps them; exactly those go, and
// names that are not queue IDs touch nothing.
func TestDeleteByIDsFromStdin(t *testing.T) {
	root := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	var pick []string
	for _, q := range []string{"hold", "deferred", "active", "incoming", "maildrop"} {
		pick = append(pick, ids(t, root, "--queue-name", q)[0])
	}
	all := ids(t, root)
	in := strings.Join(pick, "\n") + "\n../../etc/passwd\nNOPE\n\n"
	r := qs(t, in, "--queue", root, "delete", "--id", "-", "--yes", "--journal", "none")
	if r.code != 0 {
		t.Fatalf("delete --id -: exit %d: %s", r.code, r.stderr)
	}
	left := map[string]bool{}
	for _, id := range ids(t, root) {
		left[id] = true
	}
	for _, id := range all {
		if want := !contains(pick, id); left[id] != want {
			t.Errorf("%s: still queued %v, want %v", id, left[id], want)
		}
	}
}

// replaceInode puts a copy of file p under its name: the same content in a
// new inode, as when a queue ID is reused. The copy is written first, so
// it cannot get the freed inode back.
func replaceInode(t *testing.T, p string) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".new", data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
}

// fixtureAccounts are the --user/--group numbers of the qmail fixture's
// accounts (as the machine that made it had them).
var fixtureAccounts = []string{"--user", "qmailq=992", "--user", "qmails=990", "--user", "qmailr=991", "--user", "alias=999",
	"--user", "qmaild=995", "--user", "qmaill=994", "--user", "qmailp=993", "--group", "qmail=995", "--group", "nofiles=994"}

// qmailWithLive unpacks the qmail fixture (det, a detached queue) and
// builds an empty live queue beside it with rebuild --new.
func qmailWithLive(t *testing.T) (det, live string) {
	t.Helper()
	base := extract(t, filepath.Join(qmailFixture, "queue.tar.gz"))
	det, live = filepath.Join(base, "queue"), filepath.Join(base, "live")
	if r := qs(t, "", append([]string{"rebuild", "--new", live, "--split", "23", "--yes"}, fixtureAccounts...)...); r.code != 0 {
		t.Fatalf("rebuild --new: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	return det, live
}

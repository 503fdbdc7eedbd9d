package main

// CLI tests of issue 10: answers an admin in a hurry can trust, and the
// CLI conventions an admin expects. Each drives the built binary.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// pfQueue and qmQueue extract the bundled Postfix and qmail fixture queues.
func pfQueue(t *testing.T) string {
	return filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
}

func qmQueue(t *testing.T) string {
	return filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue")
}

func TestVersion(t *testing.T) {
	a := qs(t, "", "--version")
	b := qs(t, "", "version")
	if a.code != 0 || b.code != 0 {
		t.Fatalf("--version exit %d, version exit %d: %s%s", a.code, b.code, a.stderr, b.stderr)
	}
	if a.stdout != b.stdout {
		t.Errorf("--version and version differ:\n%s\n%s", a.stdout, b.stdout)
	}
	for _, want := range []string{"qsurgeon ", "\ncommit:  ", "\ndate:    ", "\ngo:      " + runtime.Version()} {
		if !strings.Contains(a.stdout, want) {
			t.Errorf("--version lacks %q:\n%s", want, a.stdout)
		}
	}
	// What make build links in is shown: the commit and the build date.
	bin := filepath.Join(t.TempDir(), "qsurgeon")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.commit=0123abc -X main.buildDate=2030-01-02T03:04:05Z", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	// The build info's own vcs.revision wins when the go command stamped one.
	want := "0123abc"
	if m, _ := exec.Command("go", "version", "-m", bin).Output(); strings.Contains(string(m), "vcs.revision=") {
		want = strings.Fields(strings.SplitN(string(m), "vcs.revision=", 2)[1])[0]
	}
	if !strings.Contains(string(out), "commit:  "+want) {
		t.Errorf("commit %s is not shown: %s", want, out)
	}
	if !strings.Contains(string(out), "date:    2030-01-02T03:04:05Z (build date)") {
		t.Errorf("the linked build date is not shown: %s", out)
	}
}

func TestDidYouMean(t *testing.T) {
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"list", "--sasl-usr", "x"}, "did you mean --sasl-user?"},
		{[]string{"--quue", "/nonexistent", "list"}, "did you mean --queue?"},
		{[]string{"delete", "--dryrun", "--all"}, "did you mean --dry-run?"},
		{[]string{"list", "--older-then", "3d"}, "did you mean --older-than?"},
		{[]string{"lsit"}, "did you mean 'list'?"},
		{[]string{"qurantine", "/tmp/x"}, "did you mean 'quarantine'?"},
		{[]string{"apply", "/nonexistent.plan", "delet"}, "did you mean 'delete'?"},
	} {
		r := qs(t, "", tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "qsurgeon: hint: "+tc.hint) {
			t.Errorf("qsurgeon %v: exit %d, want %d and the hint %q:\n%s", tc.args, r.code, exitUsage, tc.hint, r.stderr)
		}
	}
	// Nothing near: no guess, but where to look.
	r := qs(t, "", "list", "--zzzzqqq")
	if r.code != exitUsage || strings.Contains(r.stderr, "did you mean") || !strings.Contains(r.stderr, "--help") {
		t.Errorf("list --zzzzqqq: exit %d:\n%s", r.code, r.stderr)
	}
}

func TestEmptyFilterNamesAll(t *testing.T) {
	root := pfQueue(t)
	for _, cmd := range [][]string{{"delete"}, {"hold"}, {"expire"}, {"quarantine", filepath.Join(t.TempDir(), "q")}} {
		r := qs(t, "", append([]string{"--queue", root}, cmd...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--all") {
			t.Errorf("%v with no filter: exit %d, want %d and a mention of --all:\n%s", cmd, r.code, exitUsage, r.stderr)
		}
	}
}

func TestUnwritableJournalSaysSoOnce(t *testing.T) {
	root := pfQueue(t)
	sel := ids(t, root, "--null-sender")
	// A journal whose directory is a regular file cannot be written, even
	// by root.
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := testkit.Snapshot(t, root)
	r := qs(t, "", "--queue", root, "delete", "--id", sel[0], "--yes", "--journal", filepath.Join(notDir, "journal.jsonl"))
	if r.code != exitError {
		t.Fatalf("exit %d, want %d: %s", r.code, exitError, r.stderr)
	}
	var errLine string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(l, "qsurgeon: error: ") {
			errLine = l
		}
	}
	if strings.Count(errLine, "journal:") != 1 || !strings.Contains(errLine, notDir) {
		t.Errorf("want one mention of the journal and its path, got %q", errLine)
	}
	if d := before.Diff(testkit.Snapshot(t, root)); d != nil {
		t.Errorf("an unwritable journal still changed the queue: %v", d)
	}
}

// TestMakeDemoCleansUp: make demo removes the queue it extracted.
func TestMakeDemoCleansUp(t *testing.T) {
	tmp := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "-C", "../..", "demo")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "hello@example.com") {
		t.Errorf("make demo did not list the stolen account's mail:\n%.2000s", out)
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("make demo left %s behind", filepath.Join(tmp, e.Name()))
	}
}

// TestForcedMTAMismatch: --mta postfix on a qmail queue and --mta qmail on
// a Postfix queue are refused with exit 4, saying what the directory looks
// like, and change nothing (they used to say "0 messages", exit 0).
func TestForcedMTAMismatch(t *testing.T) {
	pf, qm := pfQueue(t), qmQueue(t)
	pfBefore, qmBefore := testkit.Snapshot(t, pf), testkit.Snapshot(t, qm)
	for _, tc := range []struct {
		dir, mta, looks string
		cmd             []string
	}{
		{qm, "postfix", "looks like a qmail queue", []string{"list"}},
		{qm, "postfix", "looks like a qmail queue", []string{"summary"}},
		{qm, "postfix", "looks like a qmail queue", []string{"delete", "--all", "--yes", "--journal", "none"}},
		{qm, "postfix", "looks like a qmail queue", []string{"check"}},
		{pf, "qmail", "looks like a Postfix queue", []string{"list"}},
		{pf, "qmail", "looks like a Postfix queue", []string{"delete", "--all", "--yes", "--journal", "none"}},
		{pf, "qmail", "looks like a Postfix queue", []string{"check"}},
		{t.TempDir(), "qmail", "looks like neither", []string{"list"}},
	} {
		r := qs(t, "", append([]string{"--queue", tc.dir, "--mta", tc.mta}, tc.cmd...)...)
		if r.code != exitNoQueue || !strings.Contains(r.stderr, tc.looks) {
			t.Errorf("--mta %s %v on %s: exit %d, want %d saying %q:\n%s", tc.mta, tc.cmd, tc.dir, r.code, exitNoQueue, tc.looks, r.stderr)
		}
	}
	if d := pfBefore.Diff(testkit.Snapshot(t, pf)); d != nil {
		t.Errorf("the Postfix queue changed: %v", d)
	}
	if d := qmBefore.Diff(testkit.Snapshot(t, qm)); d != nil {
		t.Errorf("the qmail queue changed: %v", d)
	}
	// The right --mta still works.
	if r := qs(t, "", "--queue", qm, "--mta", "qmail", "--format", "ids", "list"); r.code != 0 || r.stdout == "" {
		t.Errorf("--mta qmail on the qmail queue: exit %d: %s", r.code, r.stderr)
	}
	if r := qs(t, "", "--queue", pf, "--mta", "postfix", "--format", "ids", "list"); r.code != 0 || r.stdout == "" {
		t.Errorf("--mta postfix on the Postfix queue: exit %d: %s", r.code, r.stderr)
	}
}

// TestHoldReleaseWithPartInPlace: hold on a selection of which part is
// already held, and release on one of which part is not held, change what
// must change, count the rest as in place, print nothing per unchanged
// message, and exit 0.
func TestHoldReleaseWithPartInPlace(t *testing.T) {
	root := pfQueue(t)
	jr := []string{"--journal", "none", "--yes"}
	sel := listByID(t, root, "--sasl-user", "hello@example.com")
	var held, toHold []string
	for id, m := range sel {
		switch str(m["queue_name"]) {
		case "hold":
			held = append(held, id)
		case "maildrop":
		default:
			toHold = append(toHold, id)
		}
	}
	if len(held) == 0 || len(toHold) == 0 {
		t.Fatalf("the fixture should have some of hello's mail held and some not: %d held, %d not", len(held), len(toHold))
	}
	r := qs(t, "", append([]string{"--queue", root, "hold", "--sasl-user", "hello@example.com"}, jr...)...)
	if r.code != 0 {
		t.Fatalf("hold: exit %d, want 0:\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("hold: %d to hold, %d already held\n", len(toHold), len(held)),
		fmt.Sprintf("hold: %d done, %d already held, 0 skipped, 0 failed\n", len(toHold), len(held)),
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("hold: want %q in:\n%s", want, r.stderr)
		}
	}
	for _, id := range held {
		if strings.Contains(r.stderr, id) {
			t.Errorf("hold printed the already held %s:\n%s", id, r.stderr)
		}
	}
	after := listByID(t, root, "--sasl-user", "hello@example.com")
	for _, id := range toHold {
		if str(after[id]["queue_name"]) != "hold" {
			t.Errorf("%s not held after hold", id)
		}
	}
	// Again: everything is in place; nothing to do, exit 0.
	r = qs(t, "", append([]string{"--queue", root, "hold", "--sasl-user", "hello@example.com"}, jr...)...)
	if want := fmt.Sprintf("hold: 0 to hold, %d already held\n", len(held)+len(toHold)); r.code != 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("hold again: exit %d, want 0 and %q:\n%s", r.code, want, r.stderr)
	}
	// Release one held message and one that never was.
	notHeld := ""
	for id, m := range listByID(t, root, "--sasl-user", "bob@example.com") {
		if str(m["queue_name"]) == "deferred" {
			notHeld = id
			break
		}
	}
	if notHeld == "" {
		t.Fatal("bob has no deferred mail in the fixture")
	}
	r = qs(t, "", append([]string{"--queue", root, "release", "--id", toHold[0], "--id", notHeld}, jr...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "release: 1 to release, 1 not held\n") || !strings.Contains(r.stderr, "release: 1 done, 1 not held, 0 skipped, 0 failed\n") {
		t.Errorf("release: exit %d, want 0 and 1 to release, 1 not held:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, notHeld) {
		t.Errorf("release printed the message that was not held:\n%s", r.stderr)
	}
	final := listByID(t, root)
	if str(final[toHold[0]]["queue_name"]) != "deferred" || str(final[notHeld]["queue_name"]) != "deferred" {
		t.Errorf("after release: %s in %v, %s in %v; want both deferred", toHold[0], final[toHold[0]]["queue_name"], notHeld, final[notHeld]["queue_name"])
	}
}

// TestApplyCountsChangedAsSkipped: a planned message whose inode changed
// is reported as skipped in apply's final counts (it said "N done, 0
// skipped" and exited 3).
func TestApplyCountsChangedAsSkipped(t *testing.T) {
	root := pfQueue(t)
	plan := filepath.Join(t.TempDir(), "plan.jsonl")
	sel := ids(t, root, "--null-sender")
	if r := qs(t, "", "--queue", root, "delete", "--null-sender", "--plan-out", plan); r.code != 0 {
		t.Fatalf("--plan-out: exit %d: %s", r.code, r.stderr)
	}
	entries, err := surgery.ReadPlan(plan)
	if err != nil || len(entries) != len(sel) {
		t.Fatalf("plan: %d entries, %v; want %d", len(entries), err, len(sel))
	}
	// A new file under a planned name: a reused queue ID.
	replaceInode(t, filepath.Join(root, entries[0].Path))
	r := qs(t, "", "--queue", root, "apply", plan, "delete", "--yes", "--journal", "none")
	want := fmt.Sprintf("delete: %d done, 1 skipped, 0 failed\n", len(sel)-1)
	if r.code != exitPartial || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, entries[0].QueueID+": skipped: inode") {
		t.Errorf("apply: exit %d, want %d, %q and the skipped %s named:\n%s", r.code, exitPartial, want, entries[0].QueueID, r.stderr)
	}
}

// dryRunHeader is the count of file operations a dry run announces.
var dryRunHeader = regexp.MustCompile(`(?m)^dry run: \S+ of (\d+) message\(s\) would do (\d+) file operation\(s\)`)

// TestDryRunSummary: --dry-run prints counts per operation kind and per
// directory and a sample, not one line per operation; --list-ops prints
// every one; none of them is on a file that does not exist.
func TestDryRunSummary(t *testing.T) {
	root := pfQueue(t)
	before := testkit.Snapshot(t, root)
	sel := ids(t, root, "--null-sender")
	r := qs(t, "", "--queue", root, "delete", "--null-sender", "--dry-run", "--sample", "5")
	if r.code != 0 {
		t.Fatalf("--dry-run: exit %d: %s", r.code, r.stderr)
	}
	m := dryRunHeader.FindStringSubmatch(r.stdout)
	if m == nil || m[1] != fmt.Sprint(len(sel)) {
		t.Fatalf("no dry-run header for %d messages:\n%s", len(sel), r.stdout)
	}
	nops, _ := strconv.Atoi(m[2])
	// One remove of the queue file per message, and of each log that is there.
	if nops < len(sel) {
		t.Fatalf("%d operations for %d messages", nops, len(sel))
	}
	if !regexp.MustCompile(`(?m)^  remove +` + m[2] + `  \(defer(red)? \d+, .*\)$`).MatchString(r.stdout) {
		t.Errorf("no count of removes per directory:\n%s", r.stdout)
	}
	if lines := strings.Count(r.stdout, "\n"); lines > 12 || !strings.Contains(r.stdout, "--list-ops") {
		t.Errorf("the default dry run printed %d lines (want a summary and a sample of 5):\n%s", lines, r.stdout)
	}
	full := qs(t, "", "--queue", root, "delete", "--null-sender", "--dry-run", "--list-ops")
	var listed []string
	for _, l := range strings.Split(full.stdout, "\n") {
		if strings.HasPrefix(l, "  ") {
			listed = append(listed, strings.TrimSpace(l))
		}
	}
	if full.code != 0 || len(listed) != nops {
		t.Fatalf("--list-ops: exit %d, %d operations listed, the summary counted %d", full.code, len(listed), nops)
	}
	for _, l := range listed {
		p, ok := strings.CutPrefix(l, "remove ")
		if !ok {
			t.Errorf("delete would do %q", l)
			continue
		}
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("the dry run lists an operation on a file that does not exist: %s", l)
		}
	}
	if d := before.Diff(testkit.Snapshot(t, root)); d != nil {
		t.Errorf("--dry-run changed the queue: %v", d)
	}
}

// TestRequeueIntoDryRunQmail: requeue --into --dry-run on qmail shows the
// operations it would do in the live queue (it said "0 file operation(s)").
func TestRequeueIntoDryRunQmail(t *testing.T) {
	det, live := qmailWithLive(t)
	good := ids(t, det, "--sasl-user", "bob@example.com")
	beforeLive, beforeDet := testkit.Snapshot(t, live), testkit.Snapshot(t, det)
	r := qs(t, "", "--queue", det, "requeue", "--sasl-user", "bob@example.com", "--into", live, "--dry-run", "--list-ops")
	if r.code != 0 {
		t.Fatalf("requeue --into --dry-run: exit %d: %s", r.code, r.stderr)
	}
	m := dryRunHeader.FindStringSubmatch(r.stdout)
	if m == nil || m[1] != fmt.Sprint(len(good)) || m[2] == "0" {
		t.Fatalf("want the operations for %d messages:\n%s", len(good), r.stdout)
	}
	// qmail-queue's steps for each message: into mess/ and todo/.
	for _, want := range []string{"-> mess/", "-> todo/"} {
		if n := strings.Count(r.stdout, want); n != len(good) {
			t.Errorf("%d operations %q, want one per message (%d):\n%s", n, want, len(good), r.stdout)
		}
	}
	if d := beforeLive.Diff(testkit.Snapshot(t, live)); d != nil {
		t.Errorf("the dry run changed the live queue: %v", d)
	}
	if d := beforeDet.Diff(testkit.Snapshot(t, det)); d != nil {
		t.Errorf("the dry run changed the detached queue: %v", d)
	}
}

// TestRefusedQuarantineCreatesNothing: quarantine DIR refused (qmail-send
// holds its lock, no confirmation, DIR inside the queue) leaves no DIR.
func TestRefusedQuarantineCreatesNothing(t *testing.T) {
	base := extract(t, filepath.Join(qmailFixture, "queue.tar.gz"))
	root := filepath.Join(base, "queue")
	before := testkit.Snapshot(t, root)
	held := filepath.Join(base, "held", "bob")
	// No terminal and no --yes: refused before anything is done.
	if r := qs(t, "", "--queue", root, "quarantine", held, "--sasl-user", "bob@example.com", "--journal", "none"); r.code != exitUsage {
		t.Errorf("quarantine without --yes: exit %d, want %d: %s", r.code, exitUsage, r.stderr)
	}
	// Inside the queue: refused.
	inside := filepath.Join(root, "held")
	if r := qs(t, "", "--queue", root, "quarantine", inside, "--sasl-user", "bob@example.com", "--yes", "--journal", "none"); r.code != exitUsage || !strings.Contains(r.stderr, "outside") {
		t.Errorf("quarantine inside the queue: exit %d, want %d: %s", r.code, exitUsage, r.stderr)
	}
	holder := exec.Command("flock", "--exclusive", filepath.Join(root, "lock", "sendmutex"), "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatalf("flock(1): %v", err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for exec.Command("flock", "--nonblock", filepath.Join(root, "lock", "sendmutex"), "true").Run() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the lock holder never took lock/sendmutex")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, extra := range [][]string{{"--yes"}, {"--dry-run"}} {
		args := append([]string{"--queue", root, "quarantine", held, "--sasl-user", "bob@example.com", "--journal", "none"}, extra...)
		if r := qs(t, "", args...); r.code != exitLocked {
			t.Errorf("quarantine %v with qmail-send's lock held: exit %d, want %d: %s", extra, r.code, exitLocked, r.stderr)
		}
	}
	for _, p := range []string{filepath.Join(base, "held"), inside} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("a refused quarantine created %s", p)
		}
	}
	if d := before.Diff(testkit.Snapshot(t, root)); d != nil {
		t.Errorf("a refused quarantine changed the queue: %v", d)
	}
}

// TestQuarantineDryRunLeavesNoDir: a dry run of quarantine into a new
// DIR/sub leaves neither behind.
func TestQuarantineDryRunLeavesNoDir(t *testing.T) {
	root := pfQueue(t)
	top := filepath.Join(t.TempDir(), "held")
	r := qs(t, "", "--queue", root, "quarantine", filepath.Join(top, "bob"), "--sasl-user", "bob@example.com", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "dry run: quarantine") {
		t.Fatalf("quarantine --dry-run: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Lstat(top); err == nil {
		t.Errorf("quarantine --dry-run left %s behind", top)
	}
}

// TestExplainNeverCut: with --explain the table gives each message's
// explanation its own indented line, whole.
func TestExplainNeverCut(t *testing.T) {
	root := pfQueue(t)
	filter := []string{"--sasl-user", "hello@example.com", "--client", "100.0.0.0/8", "--subject", "order"}
	want := ids(t, root, filter...)
	if len(want) == 0 {
		t.Fatal("nothing selected")
	}
	r := qs(t, "", append([]string{"--queue", root, "list", "--explain"}, filter...)...)
	if r.code != 0 {
		t.Fatalf("list --explain: exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 1+2*len(want) {
		t.Fatalf("%d lines for %d messages, want a header and two lines each:\n%s", len(lines), len(want), r.stdout)
	}
	for i, id := range want {
		row, why := lines[1+2*i], lines[2+2*i]
		if !strings.HasPrefix(row, id) {
			t.Errorf("row %d is %q, want %s", i, row, id)
		}
		// Every criterion, whole: the client address and the subject
		// pattern come last and would be the first cut.
		if !strings.HasPrefix(why, "    matched: sasl_user=hello@example.com, client ") || !strings.Contains(why, " in 100.0.0.0/8, subject ") ||
			!strings.HasSuffix(why, " matches order") || strings.Contains(why, "…") {
			t.Errorf("explanation of %s: %q", id, why)
		}
	}
}

// checkProblems runs check --format json and returns the problems per kind
// and the "checked against" note.
func checkProblems(t *testing.T, args ...string) (map[string][]string, string) {
	t.Helper()
	r := qs(t, "", append([]string{"--format", "json"}, append(args, "check")...)...)
	if r.code != 0 && r.code != exitProblems {
		t.Fatalf("check %v: exit %d: %s", args, r.code, r.stderr)
	}
	kinds := map[string][]string{}
	for _, p := range jsonLines(t, r.stdout) {
		kinds[str(p["kind"])] = append(kinds[str(p["kind"])], str(p["path"]))
	}
	if (r.code == 0) != (len(kinds) == 0) {
		t.Errorf("check %v: exit %d with %d kinds of problems", args, r.code, len(kinds))
	}
	return kinds, r.stderr
}

// TestCheckPostfixInfersLayout: without --config-dir, check takes long IDs
// and the hashing from the tree and says so; the bundled queue and a
// long-ID queue written by a real Postfix show no false problem, with and
// without --config-dir.
func TestCheckPostfixInfersLayout(t *testing.T) {
	t.Run("bundled", func(t *testing.T) {
		root := pfQueue(t)
		// The instance's main.cf, from the fixture's ground truth.
		var truth struct {
			MainCF []string `json:"main_cf_non_default"`
		}
		b, err := os.ReadFile(filepath.Join(postfixFixture, "truth.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &truth); err != nil || len(truth.MainCF) == 0 {
			t.Fatalf("truth.json: %v", err)
		}
		cfg := t.TempDir()
		if err := os.WriteFile(filepath.Join(cfg, "main.cf"), []byte(strings.Join(truth.MainCF, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		all := ids(t, root)
		for _, args := range [][]string{{"--queue", root}, {"--queue", root, "--config-dir", cfg}} {
			kinds, note := checkProblems(t, args...)
			// Extracted, every file has a new inode: that (postsuper -s
			// would rename them) is the only true problem.
			for k, paths := range kinds {
				if k != "id-not-inode" {
					t.Errorf("check %v: %d false %s problems, e.g. %s", args[2:], len(paths), k, paths[0])
				}
			}
			if len(kinds["id-not-inode"]) != len(all) {
				t.Errorf("check %v: %d id-not-inode, the queue holds %d messages", args[2:], len(kinds["id-not-inode"]), len(all))
			}
			if !strings.Contains(note, "enable_long_queue_ids = no, deferred, defer hashed 1 deep") {
				t.Errorf("check %v does not say what it assumed: %s", args[2:], note)
			}
		}
	})
	t.Run("long-ids", func(t *testing.T) {
		postfixtest.Require(t)
		pf := postfixtest.New(t, postfixtest.Options{LongQueueIDs: true})
		pf.Start()
		for i := range 3 {
			pf.Sendmail("alice@example.com", []string{fmt.Sprintf("r%d@remote.example", i)},
				rawMessage("alice@example.com", "r@remote.example", fmt.Sprint("long ", i), fmt.Sprint("l", i), "body"))
		}
		queued := pf.WaitQueued(3, 60*time.Second)
		pf.Stop()
		for _, e := range queued {
			if len(e.QueueID) < 12 {
				t.Fatalf("Postfix wrote a short queue ID %s with enable_long_queue_ids = yes", e.QueueID)
			}
		}
		for _, args := range [][]string{{"--queue", pf.QueueDir}, {"--queue", pf.QueueDir, "--config-dir", pf.ConfigDir}} {
			kinds, note := checkProblems(t, args...)
			for k, paths := range kinds {
				t.Errorf("check %v: %d false %s problems, e.g. %s", args[2:], len(paths), k, paths[0])
			}
			if !strings.Contains(note, "enable_long_queue_ids = yes") {
				t.Errorf("check %v does not say it assumed long IDs: %s", args[2:], note)
			}
		}
		_, note := checkProblems(t, "--queue", pf.QueueDir)
		if !strings.Contains(note, "inferred from the tree") {
			t.Errorf("check without --config-dir does not say the layout was inferred: %s", note)
		}
	})
}

// TestQmailDoubleBouncesAreBounces: --null-sender reaches qmail's double
// bounces (sender #@[]) as well as its bounces, --not-null-sender leaves
// both out, and --help says so next to the flag.
func TestQmailDoubleBouncesAreBounces(t *testing.T) {
	root := qmQueue(t)
	b, err := os.ReadFile(filepath.Join(qmailFixture, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth struct {
		Messages map[string]struct {
			Sender string `json:"sender"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	var bounces, doubles []string
	for id, m := range truth.Messages {
		switch m.Sender {
		case "":
			bounces = append(bounces, id)
		case "#@[]":
			doubles = append(doubles, id)
		}
	}
	if len(doubles) == 0 || len(bounces) == 0 {
		t.Fatalf("the fixture has %d bounces and %d double bounces", len(bounces), len(doubles))
	}
	got := ids(t, root, "--null-sender")
	want := append(append([]string{}, bounces...), doubles...)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("--null-sender selects %d messages, want the %d bounces and %d double bounces", len(got), len(bounces), len(doubles))
	}
	all, not := ids(t, root), ids(t, root, "--not-null-sender")
	if len(not) != len(all)-len(want) {
		t.Errorf("--not-null-sender selects %d of %d, want %d", len(not), len(all), len(all)-len(want))
	}
	for _, id := range not {
		if slices.Contains(doubles, id) {
			t.Errorf("--not-null-sender selects the double bounce %s", id)
		}
	}
	for _, cmd := range []string{"list", "delete"} {
		r := qs(t, "", cmd, "--help")
		line := ""
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.Contains(l, "--null-sender") {
				line = l
			}
		}
		if !strings.Contains(line, "double bounces") || !strings.Contains(line, "#@[]") {
			t.Errorf("%s --help: --null-sender does not say it takes qmail's double bounces: %q", cmd, line)
		}
	}
}

// helpExamples returns the example command lines of a command's --help.
func helpExamples(t *testing.T, cmd string) []string {
	t.Helper()
	r := qs(t, "", cmd, "--help")
	_, ex, ok := strings.Cut(r.stdout, "EXAMPLES:")
	if !ok {
		t.Fatalf("%s --help has no examples", cmd)
	}
	ex, _, _ = strings.Cut(ex, "OPTIONS:")
	var out []string
	for _, l := range strings.Split(ex, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "qsurgeon ") {
			out = append(out, l)
		}
	}
	return out
}

// shellWords splits a command line the way sh does for the examples:
// words, single quotes; a pipe or redirection ends it.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for _, r := range line {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			w.WriteRune(r)
		case r == '\'':
			quoted, in = true, true
		case r == ' ':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case (r == '|' || r == '>') && !in:
			return words
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestHelpExamplesWork runs the examples of every selecting command's
// --help on the bundled queues they describe (qmail's where they name
// /var/qmail/queue, Postfix's otherwise), destructive ones as --dry-run:
// each must select something.
func TestHelpExamplesWork(t *testing.T) {
	pfBase := extract(t, filepath.Join(postfixFixture, "queue.tar.gz"))
	qmBase := extract(t, filepath.Join(qmailFixture, "queue.tar.gz"))
	pf, qm := filepath.Join(pfBase, "postfix-incident-a"), filepath.Join(qmBase, "queue")
	live := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	emptyPostfixQueue(t, live)
	out := t.TempDir()
	paths := map[string]string{
		"/var/qmail/queue":           qm,
		"/var/qmail/held":            filepath.Join(qmBase, "held"),
		"/var/spool/postfix.flooded": pf,
		"/var/spool/postfix":         live,
		"/var/tmp/held":              filepath.Join(pfBase, "held"),
		"/root/evidence":             filepath.Join(out, "evidence"),
		"/root/bounces.mbox":         filepath.Join(out, "bounces.mbox"),
		"/root/hello.plan":           filepath.Join(out, "hello.plan"),
	}
	destructive := map[string]bool{"delete": true, "hold": true, "release": true, "requeue": true, "expire": true, "quarantine": true, "apply": true}
	ran := 0
	for _, cmd := range []string{"summary", "list", "show", "export", "delete", "hold", "release", "requeue", "expire", "apply", "quarantine"} {
		for _, line := range helpExamples(t, cmd) {
			words := shellWords(line)[1:]
			verb, queueGiven := "", false
			for i, w := range words {
				if p, ok := paths[w]; ok {
					words[i] = p
				}
				if w == "--queue" {
					queueGiven = true
				}
				if verb == "" && !strings.HasPrefix(w, "-") && (i == 0 || !slices.Contains([]string{"--queue", "--format"}, words[i-1])) {
					verb = w
				}
			}
			if !queueGiven {
				words = append([]string{"--queue", pf}, words...)
			}
			plan := slices.Contains(words, "--plan-out")
			if destructive[verb] && !plan {
				words = append(words, "--dry-run", "--journal", "none")
			}
			r := qs(t, "", words...)
			ran++
			if r.code != 0 {
				t.Errorf("%s: exit %d:\n%s%s", line, r.code, r.stdout, r.stderr)
				continue
			}
			switch {
			case plan:
				if entries, err := surgery.ReadPlan(paths["/root/hello.plan"]); err != nil || len(entries) == 0 {
					t.Errorf("%s: the plan holds %d messages (%v)", line, len(entries), err)
				}
			case destructive[verb]:
				m := dryRunHeader.FindStringSubmatch(r.stdout)
				if m == nil || m[1] == "0" {
					t.Errorf("%s: selects nothing on the queue it describes:\n%s%s", line, r.stdout, r.stderr)
				}
			case verb == "export":
				ents, _ := os.ReadDir(out)
				if len(ents) == 0 {
					t.Errorf("%s: exported nothing:\n%s", line, r.stderr)
				}
			case verb == "list":
				if strings.Count(strings.TrimSpace(r.stdout), "\n") < 1 && !strings.Contains(line, "--format ids") || strings.TrimSpace(r.stdout) == "" {
					t.Errorf("%s: lists nothing on the queue it describes:\n%s%s", line, r.stdout, r.stderr)
				}
			default:
				if strings.TrimSpace(r.stdout) == "" {
					t.Errorf("%s: printed nothing:\n%s", line, r.stderr)
				}
			}
		}
	}
	if ran < 15 {
		t.Errorf("only %d examples ran", ran)
	}
	// The --reason example of the flag's own help works too.
	if got := ids(t, pf, "--reason", "Connection refused"); len(got) == 0 {
		t.Error("--reason 'Connection refused' (its --help example) selects nothing")
	}
}

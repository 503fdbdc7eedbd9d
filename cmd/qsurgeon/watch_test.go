package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestWatchHookAndHold drives watch on a copy of the Postfix incident
// queue: the hook runs once per state change (also across one-check runs
// through --state), --dry-run holds nothing, and --hold-new-from-account
// puts exactly the offending account's incoming/active/deferred mail on
// hold through the journaled hold path, nobody else's and nothing deleted.
func TestWatchHookAndHold(t *testing.T) {
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	hook := "env | grep '^QSURGEON_' | sort | tr '\\n' ' ' >> " + calls + "; echo >> " + calls + "; cat > " + filepath.Join(dir, "report.json")

	// Three checks in one run: OK -> CRITICAL once, then no change.
	r := qs(t, "", "--queue", q, "watch", "--count", "3", "--interval", "10ms", "--crit", "fanout=10", "--hook", hook)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "CRITICAL (was OK)") {
		t.Fatalf("exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	b, _ := os.ReadFile(calls)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "QSURGEON_ACCOUNT=hello@example.com") ||
		!strings.Contains(lines[0], "QSURGEON_STATUS=CRITICAL") || !strings.Contains(lines[0], "QSURGEON_PREVIOUS_STATUS=OK") {
		t.Fatalf("hook calls: %q", lines)
	}
	rep, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if got := jsonLines(t, string(rep)); len(got) != 1 || got[0]["status"] != "CRITICAL" {
		t.Errorf("hook's standard input: %s", rep)
	}

	// One-check runs with --state: the hook runs on the change only.
	os.Remove(calls)
	state := filepath.Join(dir, "state")
	for _, crit := range []string{"fanout=10", "fanout=10", "fanout=1000", "fanout=1000"} {
		if r := qs(t, "", "--queue", q, "watch", "--count", "1", "--state", state, "--crit", crit, "--hook", hook); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	}
	b, _ = os.ReadFile(calls)
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "QSURGEON_STATUS=OK") {
		t.Fatalf("hook calls over four --state runs (CRITICAL, CRITICAL, OK, OK): %q", lines)
	}

	// What the hold must take: hello's mail outside hold, from truth.json.
	pt := loadPostfixTruth(t)
	want, others := 0, map[string]int{}
	for _, m := range pt.Messages {
		if deref(m.SASLUsername) == "hello@example.com" && (m.Queue == "incoming" || m.Queue == "active" || m.Queue == "deferred") {
			want++
		}
	}
	before := jsonLines(t, qs(t, "", "--queue", q, "-o", "json", "list").stdout)
	for _, m := range before {
		if str(m["sasl_username"]) != "hello@example.com" {
			others[str(m["queue_id"])+" "+str(m["queue_name"])]++
		}
	}
	if want == 0 {
		t.Fatal("fixture: hello@example.com has no mail to hold")
	}

	// A --hold-new-from-account without an account threshold is refused.
	if r := qs(t, "", "--queue", q, "watch", "--count", "1", "--crit", "deferred=1", "--hold-new-from-account"); r.code != exitUsage {
		t.Errorf("hold without an account threshold: exit %d", r.code)
	}
	// Dry run: the plan, no change.
	r = qs(t, "", "--queue", q, "watch", "--count", "1", "--crit", "fanout=10", "--hold-new-from-account", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "dry run: hold of "+itoa(want)+" message(s)") {
		t.Fatalf("dry run: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	if after := jsonLines(t, qs(t, "", "--queue", q, "-o", "json", "list").stdout); len(after) != len(before) || countQueue(after, "hold") != countQueue(before, "hold") {
		t.Fatal("the dry run changed the queue")
	}
	// For real, with a journal.
	journal := filepath.Join(dir, "journal.jsonl")
	r = qs(t, "", "--queue", q, "watch", "--count", "1", "--crit", "fanout=10", "--hold-new-from-account", "--journal", journal)
	if r.code != 0 || !strings.Contains(r.stderr, "hold: "+itoa(want)+" done, 0 skipped, 0 failed") {
		t.Fatalf("hold: exit %d, stderr %s", r.code, r.stderr)
	}
	after := jsonLines(t, qs(t, "", "--queue", q, "-o", "json", "list").stdout)
	if len(after) != len(before) {
		t.Fatalf("%d messages before, %d after: a hold never removes mail", len(before), len(after))
	}
	for _, m := range after {
		if str(m["sasl_username"]) == "hello@example.com" {
			if m["queue_name"] != "hold" && m["queue_name"] != "maildrop" {
				t.Errorf("%s of hello@example.com still in %s", m["queue_id"], m["queue_name"])
			}
		} else if others[str(m["queue_id"])+" "+str(m["queue_name"])] == 0 {
			t.Errorf("%s of %v moved to %s", m["queue_id"], m["sasl_username"], m["queue_name"])
		}
	}
	j, err := os.ReadFile(journal)
	if err != nil || strings.Count(string(j), `"hold"`) < want {
		t.Errorf("journal: %v, %d hold records, want %d", err, strings.Count(string(j), `"hold"`), want)
	}
	// The next check finds nothing new to hold.
	r = qs(t, "", "--queue", q, "watch", "--count", "1", "--crit", "fanout=10", "--hold-new-from-account", "--journal", journal)
	if r.code != 0 || strings.Contains(r.stderr, "done,") {
		t.Errorf("second hold: exit %d, stderr %s", r.code, r.stderr)
	}
}

func countQueue(ms []map[string]any, q string) int {
	n := 0
	for _, m := range ms {
		if m["queue_name"] == q {
			n++
		}
	}
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestWatchQmailQuarantine: qmail has no hold queue, so the offending
// account's mail is quarantined (and only with --quarantine-dir); the
// quarantine's manifest lists exactly that account's messages.
func TestWatchQmailQuarantine(t *testing.T) {
	q := filepath.Join(extract(t, qmailFixture+"/queue.tar.gz"), "queue")
	before := jsonLines(t, qs(t, "", "--queue", q, "-o", "json", "list").stdout)
	want := 0
	for _, m := range before {
		if str(m["sasl_username"]) == "hello@example.com" {
			want++
		}
	}
	r := qs(t, "", "--queue", q, "watch", "--count", "1", "--crit", "fanout=10", "--hold-new-from-account", "--journal", "none")
	if r.code != 0 || !strings.Contains(r.stderr, "qmail has no hold queue") {
		t.Fatalf("without --quarantine-dir: exit %d, stderr %s", r.code, r.stderr)
	}
	held := filepath.Join(t.TempDir(), "held")
	r = qs(t, "", "--queue", q, "watch", "--count", "1", "--crit", "fanout=10", "--hold-new-from-account", "--quarantine-dir", held, "--journal", "none")
	if r.code != 0 || !strings.Contains(r.stderr, "quarantine: "+itoa(want)+" done, 0 skipped, 0 failed") {
		t.Fatalf("exit %d, stderr %s", r.code, r.stderr)
	}
	after := jsonLines(t, qs(t, "", "--queue", q, "-o", "json", "list").stdout)
	if len(after) != len(before)-want {
		t.Errorf("%d messages before, %d after, %d quarantined", len(before), len(after), want)
	}
	for _, m := range after {
		if str(m["sasl_username"]) == "hello@example.com" {
			t.Errorf("%s of hello@example.com is still queued", m["queue_id"])
		}
	}
	man, err := os.ReadFile(filepath.Join(held, "manifest.jsonl"))
	if err != nil || strings.Count(string(man), "\n") < want {
		t.Errorf("manifest: %v, %d lines, want %d", err, strings.Count(string(man), "\n"), want)
	}
}

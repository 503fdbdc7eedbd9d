package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

// messageOf maps a queue-relative path to the message id it belongs to, or
// "" for files that are no message's part.
func messageOf(mta, rel string) string {
	top := strings.Split(rel, string(filepath.Separator))[0]
	base := filepath.Base(rel)
	switch mta {
	case "postfix":
		switch top {
		case "maildrop", "incoming", "active", "deferred", "hold", "corrupt", "defer", "bounce", "trace":
			return base
		}
	case "qmail":
		switch top {
		case "mess", "info", "local", "remote", "todo", "intd", "bounce":
			return base
		}
	}
	return ""
}

// TestDeleteExactlyTheSelection drives delete through the CLI on copies of
// both real fixtures: without --yes and without a terminal it refuses and
// changes nothing, --dry-run changes nothing, and --yes removes every part
// of exactly the messages list selects, leaving every other file
// byte-identical with the same name, owner, mode and inode.
func TestDeleteExactlyTheSelection(t *testing.T) {
	cases := []struct {
		mta, tarball, sub string
		filter            []string
	}{
		{"postfix", postfixFixture + "/queue.tar.gz", "postfix-incident-a", []string{"--sasl-user", "hello@example.com"}},
		{"postfix", postfixFixture + "/queue.tar.gz", "postfix-incident-a", []string{"--null-sender", "--queue-name", "deferred"}},
		{"qmail", qmailFixture + "/queue.tar.gz", "queue", []string{"--sasl-user", "hello@example.com"}},
		{"qmail", qmailFixture + "/queue.tar.gz", "queue", []string{"--null-sender"}},
	}
	for _, c := range cases {
		t.Run(c.mta+" "+strings.Join(c.filter, " "), func(t *testing.T) {
			root := filepath.Join(extract(t, c.tarball), c.sub)
			journal := filepath.Join(t.TempDir(), "journal.jsonl")
			sel := qs(t, "", append([]string{"--queue", root, "--format", "ids", "list"}, c.filter...)...)
			if sel.code != 0 {
				t.Fatalf("list: exit %d: %s", sel.code, sel.stderr)
			}
			selected := map[string]bool{}
			for _, id := range strings.Fields(sel.stdout) {
				selected[id] = true
			}
			if len(selected) == 0 {
				t.Fatal("the filter selects nothing: the test would prove nothing")
			}
			before := testkit.Snapshot(t, root)
			del := func(extra ...string) result {
				return qs(t, "", append(append([]string{"--queue", root, "delete", "--journal", journal}, c.filter...), extra...)...)
			}
			if r := del(); r.code != exitUsage {
				t.Errorf("delete without --yes and without a terminal: exit %d, want %d", r.code, exitUsage)
			}
			// --max below the selection refuses after the whole scan (a
			// Postfix delete looks the selected logs up meanwhile).
			if r := del("--yes", "--max", "1"); len(selected) > 1 && r.code != exitUsage {
				t.Errorf("--max 1 on %d messages: exit %d, want %d", len(selected), r.code, exitUsage)
			}
			if r := del("--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "dry run") {
				t.Errorf("--dry-run: exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			if d := before.Diff(testkit.Snapshot(t, root)); d != nil {
				t.Fatalf("the queue changed without --yes, over --max or with --dry-run:\n%s", strings.Join(d, "\n"))
			}
			if r := qs(t, "", "--queue", root, "delete", "--journal", journal); r.code != exitUsage {
				t.Errorf("delete with an empty filter: exit %d, want %d", r.code, exitUsage)
			}
			r := del("--yes")
			if r.code != 0 {
				t.Fatalf("--yes: exit %d: %s", r.code, r.stderr)
			}
			after := testkit.Snapshot(t, root)
			for rel, st := range before {
				id := messageOf(c.mta, rel)
				got, still := after[rel]
				switch {
				case id != "" && selected[id] && still:
					t.Errorf("%s: part of a deleted message remains", rel)
				case (id == "" || !selected[id]) && !still:
					t.Errorf("%s: vanished, but its message was not selected", rel)
				case (id == "" || !selected[id]) && !got.Equal(st) && !strings.HasPrefix(rel, "lock") && st.Mode.IsRegular():
					t.Errorf("%s: changed, but its message was not selected", rel)
				}
			}
			// The queue is still readable and holds exactly the rest.
			rest := qs(t, "", "--queue", root, "--format", "ids", "list")
			for _, id := range strings.Fields(rest.stdout) {
				if selected[id] {
					t.Errorf("%s still listed after delete", id)
				}
			}
			// The journal names every deleted message.
			b, err := os.ReadFile(journal)
			if err != nil {
				t.Fatalf("journal: %v", err)
			}
			recorded := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var e map[string]any
				if json.Unmarshal([]byte(line), &e) == nil {
					if id, _ := e["queue_id"].(string); id != "" && e["result"] == "ok" {
						recorded[id] = true
					}
				}
			}
			for id := range selected {
				if !recorded[id] {
					t.Errorf("journal does not record %s", id)
				}
			}
		})
	}
}

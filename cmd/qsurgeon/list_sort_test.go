package main

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestListSortLimit: --sort -size --limit N prints the N largest messages
// of the whole selection, largest first; --sort arrival the oldest first.
func TestListSortLimit(t *testing.T) {
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	all := jsonLines(t, qs(t, "", "--queue", q, "-o", "json", "list").stdout)
	if len(all) < 10 {
		t.Fatalf("fixture lists %d messages", len(all))
	}
	sizes := make([]float64, 0, len(all))
	for _, m := range all {
		sizes = append(sizes, m["message_size"].(float64))
	}
	slices.Sort(sizes)
	slices.Reverse(sizes)

	r := qs(t, "", "--queue", q, "-o", "json", "list", "--sort", "-size", "--limit", "5")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := jsonLines(t, r.stdout)
	if len(got) != 5 {
		t.Fatalf("--limit 5 printed %d messages", len(got))
	}
	for i, m := range got {
		if m["message_size"].(float64) != sizes[i] {
			t.Errorf("line %d: size %v, want %v (the %d-th largest)", i, m["message_size"], sizes[i], i+1)
		}
	}

	r = qs(t, "", "--queue", q, "-o", "json", "list", "--sort", "arrival")
	prev := -1.0
	for _, m := range jsonLines(t, r.stdout) {
		a := m["arrival_time"].(float64)
		if a < prev {
			t.Fatalf("--sort arrival: %v after %v", a, prev)
		}
		prev = a
	}
	// --format ids keeps the sort too (it needs more than the IDs).
	ids := qs(t, "", "--queue", q, "-o", "ids", "list", "--sort", "-size", "--limit", "1").stdout
	if want := got[0]["queue_id"].(string) + "\n"; ids != want {
		t.Errorf("ids --sort -size --limit 1 = %q, want %q", ids, want)
	}

	if r := qs(t, "", "--queue", q, "list", "--sort", "weight"); r.code != exitUsage {
		t.Errorf("--sort weight: exit %d, want %d", r.code, exitUsage)
	}
}

package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func readAll(t *testing.T, path string) []Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	es, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestJournalRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "var", "lib", "qsurgeon", "journal.jsonl")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	filter := map[string]any{"sender": "spam@example.com", "older_than": "2h"}
	run, err := j.Begin([]string{"qsurgeon", "delete", "--sender", "spam@example.com"}, filter)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Record("4A3F1C2B0", "deferred", "delete", "done", nil); err != nil {
		t.Fatal(err)
	}
	if err := run.Record("5B", "active", "delete", "skipped", errors.New("message changed")); err != nil {
		t.Fatal(err)
	}
	if err := run.End(map[string]int{"done": 1, "skipped": 1}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	for _, d := range []string{filepath.Join(dir, "var"), filepath.Dir(path)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode())
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0600 {
		t.Errorf("journal mode %v, want 0600", fi.Mode())
	}

	es := readAll(t, path)
	if len(es) != 4 {
		t.Fatalf("%d entries, want 4", len(es))
	}
	b := es[0]
	host, _ := os.Hostname()
	if b.Type != TypeBegin || b.UID == nil || *b.UID != os.Getuid() || b.User == "" || b.Host != host ||
		b.PID != os.Getpid() || strings.Join(b.Command, " ") != "qsurgeon delete --sender spam@example.com" {
		t.Errorf("begin record: %+v", b)
	}
	if f, ok := b.Filter.(map[string]any); !ok || f["sender"] != "spam@example.com" {
		t.Errorf("filter: %#v", b.Filter)
	}
	for _, e := range es {
		if e.Run != run.ID() || e.Time.IsZero() {
			t.Errorf("entry %+v: run %q, want %q", e, e.Run, run.ID())
		}
	}
	if m := es[2]; m.Type != TypeMessage || m.ID != "5B" || m.Queue != "active" || m.Action != "delete" ||
		m.Result != "skipped" || m.Error != "message changed" {
		t.Errorf("message record: %+v", m)
	}
	if es[1].Error != "" {
		t.Errorf("error recorded for a success: %q", es[1].Error)
	}
	if e := es[3]; e.Type != TypeEnd || fmt.Sprint(e.Summary) != "map[done:1 skipped:1]" {
		t.Errorf("end record: %+v", e)
	}

	// Appending: a second run goes after the first.
	j, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	run2, err := j.Begin([]string{"qsurgeon", "hold"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run2.End(nil)
	j.Close()
	es = readAll(t, path)
	if len(es) != 6 || es[4].Run != run2.ID() || run2.ID() == run.ID() {
		t.Fatalf("after a second run: %d entries", len(es))
	}
}

func TestJournalPartialLineRepaired(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	if err := os.WriteFile(path, []byte(`{"type":"begin","run":"x"}`+"\n"+`{"type":"mess`), 0600); err != nil {
		t.Fatal(err)
	}
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	run, err := j.Begin([]string{"qsurgeon"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	run.End(nil)
	j.Close()
	b, _ := os.ReadFile(path)
	_, err = Read(bytes.NewReader(b))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("the torn line should be reported as line 2, got %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[2], `{"type":"begin"`) {
		t.Fatalf("new run not on its own line: %q", b)
	}
	// A torn last line alone is tolerated by Read.
	es, err := Read(strings.NewReader(`{"type":"end","run":"y"}` + "\n" + `{"type":"mes`))
	if err != nil || len(es) != 1 {
		t.Fatalf("torn last line: %v %v", es, err)
	}
}

func TestJournalRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, nil, 0644)
	link := filepath.Join(dir, "j.jsonl")
	os.Symlink(target, link)
	if _, err := Open(link); err == nil {
		t.Fatal("opened a journal through a symbolic link")
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("opened a directory as a journal")
	}
}

func TestJournalConcurrentLinesIntact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	run, err := j.Begin(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	long := strings.Repeat("x", 10000)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				run.Record(fmt.Sprintf("W%dI%d", w, i), "deferred", "delete", "failed", errors.New(long))
			}
		}()
	}
	wg.Wait()
	run.End(nil)
	j.Close()
	es := readAll(t, path)
	if len(es) != 2+8*50 {
		t.Fatalf("%d entries", len(es))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := run.Record("A", "q", "a", "r", nil); err == nil {
		t.Fatal("record after close succeeded")
	}
}

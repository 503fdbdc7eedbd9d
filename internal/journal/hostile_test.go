package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A write that fails part-way (a full disk) takes its cut line back and
// leaves the journal failed: every later write fails too.
func TestWriteFailureLeavesNoCutLine(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		t.Fatalf("mount tmpfs (needs root): %v", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	p := filepath.Join(dir, "j.jsonl")
	j, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	run, err := j.Begin([]string{"qsurgeon", "delete"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	n := 0
	for ; n < 10000 && werr == nil; n++ {
		werr = run.Record(strings.Repeat("A", 10)+string(rune('0'+n%10)), "deferred", "delete", "ok", nil)
	}
	if !errors.Is(werr, ErrFailed) {
		t.Fatalf("after %d records: %v, want ErrFailed", n, werr)
	}
	if err := run.End(nil); !errors.Is(err, ErrFailed) {
		t.Errorf("End after a failure: %v", err)
	}
	data, _ := os.ReadFile(p)
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Errorf("journal ends in a cut line (%d bytes)", len(data))
	}
}

// Unfinished finds what a killed run started and never finished, and not
// what it finished.
func TestUnfinished(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j.jsonl")
	j, _ := Open(p)
	run, _ := j.Begin(nil, nil)
	run.Starting("delete", []string{"1", "2", "3"}, []string{"q", "q", "q"})
	run.Record("1", "q", "delete", "ok", nil)
	run.Record("3", "q", "delete", "failed", errors.New("x"))
	run2, _ := j.Begin(nil, nil)
	run2.Starting("requeue", []string{"4"}, []string{"q"})
	j.Close()
	got, err := Unfinished(p, "delete")
	if err != nil || len(got) != 1 || got["2"].IsZero() {
		t.Errorf("Unfinished = %v, %v; want only 2", got, err)
	}
}

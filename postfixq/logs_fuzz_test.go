package postfixq

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzLog fuzzes the defer/bounce logfile reader, which anyone who can write
// to defer/ or bounce/ (the postfix user) controls: the streaming reader
// every command uses (ReadLogFrom, through Spool.ReadLog on a real file)
// must agree with ParseLog while the input stays within the bounds, never
// keep more than maxLogKept, and cut nothing but over-long lines. Seeded
// from the fixture's real logs (written by Postfix's bounce(8)).
func FuzzLog(f *testing.F) {
	root := fixtureRoot(f)
	for _, dir := range []string{LogDefer, LogBounce} {
		n := 0
		filepath.Walk(filepath.Join(root, dir), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && n < 20 {
				b, _ := os.ReadFile(p)
				f.Add(b)
				n++
			}
			return nil
		})
	}
	f.Add([]byte("<a@b>: old reason\n\n<\"x y\"@c>: other\n"))
	f.Add([]byte("recipient=a@b\noffset=12\nreason=x\n\nrecipient=c"))
	f.Add([]byte(strings.Repeat("reason="+strings.Repeat("x", 9000)+"\n", 3)))
	spool := copyFixture(f)
	s, err := Open(spool, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	const id = "FFFFFABCDE"
	logPath := filepath.Join(spool, s.LogPath(LogDefer, id))
	os.MkdirAll(filepath.Dir(logPath), 0o700)
	f.Fuzz(func(t *testing.T, b []byte) {
		want := ParseLog(b)
		got, err := ReadLogFrom(iotest.OneByteReader(bytes.NewReader(b)))
		if err != nil && !errors.Is(err, ErrLogTooLarge) {
			t.Fatalf("ReadLogFrom: %v", err)
		}
		kept := 0
		for _, e := range got {
			kept += len(e.Recipient) + len(e.Reason) + len(e.DiagText) + len(e.Status)
		}
		if kept > 2*maxLogKept+2*maxLogLine {
			t.Fatalf("kept %d bytes of entries", kept)
		}
		longLine := false
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(l) >= maxLogLine {
				longLine = true
			}
		}
		if !longLine && len(b) < maxLogKept && !reflect.DeepEqual(got, want) {
			t.Fatalf("streaming and whole-file parses differ on %q:\n%+v\n%+v", b, got, want)
		}
		// The same through the spool, from a file.
		if err := os.WriteFile(logPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fromFile, err := s.ReadLog(LogDefer, id)
		if err != nil && !errors.Is(err, ErrLogTooLarge) {
			t.Fatalf("ReadLog: %v", err)
		}
		if !reflect.DeepEqual(fromFile, got) {
			t.Fatalf("ReadLog and ReadLogFrom differ on %q", b)
		}
	})
}

// A sparse logfile far larger than any Postfix writes is read streaming:
// bounded time and memory, the entries before the bound kept, and an error
// saying so.
func TestReadLogSparseHuge(t *testing.T) {
	root := copyFixture(t)
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const id = "FFFFFABCDF"
	p := filepath.Join(root, s.LogPath(LogDefer, id))
	os.MkdirAll(filepath.Dir(p), 0o700)
	if err := os.WriteFile(p, []byte("recipient=a@example.com\nreason=first\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 10<<30); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadLog(LogDefer, id)
	if !errors.Is(err, ErrLogTooLarge) {
		t.Errorf("ReadLog of a 10 GB log: err %v, want ErrLogTooLarge", err)
	}
	if len(got) != 1 || got[0].Reason != "first" {
		t.Errorf("entries before the bound: %+v", got)
	}
}

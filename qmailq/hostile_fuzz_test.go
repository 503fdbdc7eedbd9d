package qmailq

// Fuzzers for the qmail files a hostile qmail group member (or a disk error)
// controls besides mess: info (the sender) and local/remote (the channel
// recipients), read through the Queue as every command reads them, not only
// through the parsers: an open of whatever is there, a bounded read, and
// assembly into a queue.Message. Seeded from the real fixture's files.

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/qsurgeon/qsurgeon/queue"
)

// fuzzQueue extracts the fixture once per fuzz target and returns it with
// one message that has info and remote parts.
func fuzzQueue(f *testing.F) (q *Queue, id uint64, info, remote string) {
	root := extract(f, "queue.tar.gz")
	for rel := range fixtureFiles(f, root, "remote") {
		n, err := strconv.ParseUint(filepath.Base(rel), 10, 64)
		if err != nil {
			continue
		}
		dir := filepath.Base(filepath.Dir(rel))
		i := filepath.Join(root, "info", dir, filepath.Base(rel))
		if _, err := os.Stat(i); err == nil {
			id, info, remote = n, i, filepath.Join(root, rel)
			break
		}
	}
	if info == "" {
		f.Fatal("no fixture message with info and remote")
	}
	q, err := Open(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { q.Close() })
	return q, id, info, remote
}

func FuzzInfoFile(f *testing.F) {
	q, id, info, _ := fuzzQueue(f)
	for _, b := range fixtureFiles(f, filepath.Dir(filepath.Dir(filepath.Dir(info))), "info") {
		f.Add(b)
	}
	f.Add([]byte("F"))
	f.Add([]byte("F\x00F\x00"))
	f.Add([]byte("Fa@b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(info, b, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := q.Read(queue.Ref{ID: strconv.FormatUint(id, 10)})
		if err != nil {
			return // reported as an error naming the file: fine
		}
		in, perr := ParseInfo("info", b)
		if perr == nil && !m.NullSender && m.Sender != in.Sender {
			t.Fatalf("info %q: message sender %q, parser says %q", b, m.Sender, in.Sender)
		}
		if perr == nil {
			in2, err := ParseInfo("x", in.Bytes())
			if err != nil || in2.Sender != in.Sender {
				t.Fatalf("info round trip %q: %+v -> %+v (%v)", b, in, in2, err)
			}
		}
	})
}

func FuzzChannelFile(f *testing.F) {
	q, id, _, remote := fuzzQueue(f)
	for _, b := range fixtureFiles(f, filepath.Dir(filepath.Dir(filepath.Dir(remote))), "remote") {
		f.Add(b)
	}
	for _, b := range fixtureFiles(f, filepath.Dir(filepath.Dir(filepath.Dir(remote))), "local") {
		f.Add(b)
	}
	f.Add([]byte("T"))
	f.Add([]byte("Ta@b\x00Dc@d\x00X\x00Te@f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(remote, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, perr := ParseChannel("remote", b)
		for _, r := range c.Recipients {
			if r.Offset < 0 || r.Offset >= int64(len(b)) {
				t.Fatalf("offset %d out of range of %d bytes", r.Offset, len(b))
			}
		}
		if perr == nil {
			c2, err := ParseChannel("x", c.Bytes())
			if err != nil || len(c2.Recipients) != len(c.Recipients) {
				t.Fatalf("channel round trip %q: %v", b, err)
			}
			for i := range c.Recipients {
				if c2.Recipients[i].Addr != c.Recipients[i].Addr || c2.Recipients[i].Done != c.Recipients[i].Done {
					t.Fatalf("channel round trip %q: %+v vs %+v", b, c.Recipients[i], c2.Recipients[i])
				}
			}
		}
		m, err := q.Read(queue.Ref{ID: strconv.FormatUint(id, 10)})
		if err != nil {
			return
		}
		// Every remote recipient the message shows comes from the file.
		n := 0
		for _, r := range m.Recipients {
			if r.Channel == "remote" {
				n++
			}
		}
		if perr == nil && n > len(c.Recipients) {
			t.Fatalf("remote %q: message has %d remote recipients, the file %d", b, n, len(c.Recipients))
		}
	})
}

package qmailq

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixtureFiles returns the contents of every file under dir/<part> of the
// extracted clean fixture queue.
func fixtureFiles(t testing.TB, root, part string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(filepath.Join(root, part), func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = b
		return nil
	})
	if len(out) == 0 {
		t.Fatalf("no %s files in the fixture", part)
	}
	return out
}

// Every real envelope file parses cleanly and formats back byte for byte.
func TestEnvelopeFixtureRoundTrip(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	for rel, b := range fixtureFiles(t, root, "info") {
		in, err := ParseInfo(rel, b)
		if err != nil || in.TrailingNUL || !bytes.Equal(in.Bytes(), b) {
			t.Errorf("%s: %v %+v", rel, err, in)
		}
	}
	for _, part := range []string{"local", "remote"} {
		for rel, b := range fixtureFiles(t, root, part) {
			c, err := ParseChannel(rel, b)
			if err != nil || c.TrailingNUL || len(c.Recipients) == 0 || !bytes.Equal(c.Bytes(), b) {
				t.Errorf("%s: %v %+v", rel, err, c)
			}
			var off int64
			for _, r := range c.Recipients {
				if r.Offset != off || b[off] != "TD"[boolInt(r.Done)] {
					t.Errorf("%s: recipient %q at offset %d, want %d", rel, r.Addr, r.Offset, off)
				}
				off += int64(len(r.Addr)) + 2
			}
		}
	}
	for _, part := range []string{"todo", "intd"} {
		for rel, b := range fixtureFiles(t, root, part) {
			e, err := ParseEnvelope(rel, b)
			if err != nil || !e.HasUID || !e.HasPID || !e.HasSender || len(e.Recipients) == 0 || !bytes.Equal(e.Bytes(), b) {
				t.Errorf("%s: %v %+v", rel, err, e)
			}
		}
	}
	for rel, b := range fixtureFiles(t, root, "bounce") {
		es, err := ParseBounce(rel, b)
		if err != nil || len(es) == 0 {
			t.Errorf("%s: %v %+v", rel, err, es)
		}
		for _, e := range es {
			if e.Addr == "" || strings.ContainsAny(e.Addr, "<>\n") || e.Reason == "" {
				t.Errorf("%s: entry %+v", rel, e)
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Cut every real channel and todo file at every byte: the parsers never
// fail to say so, the error names the file and the offset, and the records
// before the cut survive.
func TestEnvelopeTruncation(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	files := fixtureFiles(t, root, "todo")
	for rel, b := range fixtureFiles(t, root, "remote") {
		files[rel] = b
		if len(files) > 40 {
			break
		}
	}
	for rel, b := range files {
		isTodo := strings.HasPrefix(rel, "todo")
		for cut := 1; cut < len(b); cut++ {
			data := b[:cut]
			var err error
			var nrec int
			if isTodo {
				var e Envelope
				e, err = ParseEnvelope(rel, data)
				nrec = len(e.Recipients)
			} else {
				var c Channel
				c, err = ParseChannel(rel, data)
				nrec = len(c.Recipients)
			}
			complete := bytes.Count(data, []byte{0})
			if data[cut-1] == 0 {
				// cut on a record boundary: a valid shorter file (an
				// envelope may lack its F record: then an error too)
				if !isTodo && err != nil {
					t.Errorf("%s cut at %d (boundary): %v", rel, cut, err)
				}
				continue
			}
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, io.ErrUnexpectedEOF) || ce.Path != rel {
				t.Fatalf("%s cut at %d: error %v", rel, cut, err)
			}
			if last := int64(bytes.LastIndexByte(data, 0) + 1); ce.Offset != last {
				t.Errorf("%s cut at %d: offset %d, want %d", rel, cut, ce.Offset, last)
			}
			if !isTodo && nrec != complete {
				t.Errorf("%s cut at %d: %d records kept, %d complete", rel, cut, nrec, complete)
			}
		}
	}
}

func TestEnvelopeCases(t *testing.T) {
	// info: null sender, double bounce, trailing NUL tolerated, junk refused
	for _, c := range []struct {
		in      string
		sender  string
		trail   bool
		wantErr bool
	}{
		{"F\x00", "", false, false},
		{"F#@[]\x00", "#@[]", false, false},
		{"Fa@b\x00\x00", "a@b", true, false},
		{"", "", false, true},
		{"Ta@b\x00", "", false, true},
		{"Fa@b", "a@b", false, true},
		{"Fa@b\x00Tx\x00", "a@b", false, true},
		{"Fa@b\x00\x00\x00", "a@b", false, true},
	} {
		in, err := ParseInfo("info/0/1", []byte(c.in))
		if in.Sender != c.sender || in.TrailingNUL != c.trail || (err != nil) != c.wantErr {
			t.Errorf("ParseInfo(%q) = %+v, %v", c.in, in, err)
		}
	}
	ch, err := ParseChannel("remote/1/1", []byte("Ta@x\x00Db@x\x00Xc@x\x00Td@x\x00\x00"))
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Offset != 10 || ce.Path != "remote/1/1" || !strings.Contains(err.Error(), "remote/1/1: offset 0xa") {
		t.Errorf("unknown record: %v", err)
	}
	want := []ChanRecipient{{"a@x", false, 0}, {"b@x", true, 5}, {"d@x", false, 15}}
	if !reflect.DeepEqual(ch.Recipients, want) || !ch.TrailingNUL {
		t.Errorf("records around a bad one: %+v", ch)
	}
	if _, err := ParseChannel("local/1/1", []byte("Ta@x\x00\x00Tb@x\x00")); !errors.Is(err, errEmptyRecord) {
		t.Errorf("stray NUL in the middle: %v", err)
	}
	e, err := ParseEnvelope("todo/1", []byte("u995\x00p123\x00F\x00Ta@x\x00Tb@y\x00\x00"))
	if err != nil || e.UID != 995 || e.PID != 123 || e.Sender != "" || !e.HasSender || len(e.Recipients) != 2 || !e.TrailingNUL {
		t.Errorf("envelope with extra NUL: %+v %v", e, err)
	}
	if _, err := ParseEnvelope("todo/1", []byte("uX\x00Fa\x00")); !errors.Is(err, errBadNumber) {
		t.Errorf("bad uid: %v", err)
	}
	if _, err := ParseEnvelope("todo/1", []byte("u1\x00p2\x00Ta\x00")); !errors.Is(err, errNoSender) {
		t.Errorf("no F: %v", err)
	}
	bs, err := ParseBounce("bounce/1", []byte("<a@x>:\nline one\n/\nline two\n\n<b@y>:\nr\n\n"))
	if err != nil || len(bs) != 2 || bs[0].Addr != "a@x" || bs[0].Reason != "line one\n/\nline two" || bs[1].Addr != "b@y" {
		t.Errorf("bounce: %+v %v", bs, err)
	}
	if _, err := ParseBounce("bounce/1", []byte("<a@x>:\nhalf")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated bounce: %v", err)
	}
}

// The parsers never panic, keep records in bounds, and what they accept
// formats back to the same records.
func FuzzEnvelope(f *testing.F) {
	root := extract(f, "queue.tar.gz")
	for _, part := range []string{"info", "local", "remote", "todo", "bounce"} {
		n := 0
		for _, b := range fixtureFiles(f, root, part) {
			f.Add(b)
			if n++; n > 10 {
				break
			}
		}
	}
	f.Add([]byte("F\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if in, err := ParseInfo("info/0/1", b); err == nil {
			in2, err2 := ParseInfo("x", in.Bytes())
			if err2 != nil || in2.Sender != in.Sender {
				t.Fatalf("info round trip: %q -> %q (%v)", b, in.Bytes(), err2)
			}
		}
		c, err := ParseChannel("remote/0/1", b)
		for _, r := range c.Recipients {
			if r.Offset < 0 || r.Offset >= int64(len(b)) {
				t.Fatalf("offset %d out of range", r.Offset)
			}
		}
		if err == nil {
			c2, err2 := ParseChannel("x", c.Bytes())
			if err2 != nil || len(c2.Recipients) != len(c.Recipients) {
				t.Fatalf("channel round trip: %q (%v)", b, err2)
			}
			for i := range c.Recipients {
				if c2.Recipients[i].Addr != c.Recipients[i].Addr || c2.Recipients[i].Done != c.Recipients[i].Done {
					t.Fatalf("channel round trip: %q", b)
				}
			}
		}
		if e, err := ParseEnvelope("todo/1", b); err == nil {
			e2, err2 := ParseEnvelope("x", e.Bytes())
			e2.TrailingNUL = e.TrailingNUL
			if err2 != nil || !reflect.DeepEqual(e, e2) {
				t.Fatalf("envelope round trip: %+v vs %+v (%v)", e, e2, err2)
			}
		}
		ParseBounce("bounce/1", b)
	})
}

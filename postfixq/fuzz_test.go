package postfixq

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/qsurgeon/qsurgeon/queue"
)

// seedFixture adds real queue files to a fuzz corpus: every file up to
// 16 KB and two large ones with pointer records into the heap after E
// (large seeds make minimization slow, so only a few).
func seedFixture(f *testing.F, add func(data []byte)) {
	root := fixtureRoot(f)
	large := 0
	for _, m := range loadTruth(f).Messages {
		data := readFixtureFile(f, root, m.Path)
		if len(data) > 16<<10 {
			if !m.HasNonzeroPointer || large >= 2 {
				continue
			}
			large++
		}
		add(data)
	}
}

// FuzzReader: no input panics; whatever the logical reader returns writes
// back (with Writer) to a file whose logical records are the same; the
// envelope and content parsers never panic either.
func FuzzReader(f *testing.F) {
	seedFixture(f, func(d []byte) { f.Add(d) })
	f.Add([]byte{'p', 15, ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', '0'})
	f.Add([]byte{'E', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		size := int64(len(data))
		rd := NewReader(bytes.NewReader(data), size)
		var recs []Record
		var err error
		for {
			var r Record
			r, err = rd.Next()
			if err != nil {
				break
			}
			if r.Type == RecTypePtr || r.Type == RecTypeDText {
				t.Fatalf("logical reader returned a %c record", r.Type)
			}
			if int64(len(r.Data)) > size {
				t.Fatalf("record longer than the input")
			}
			recs = append(recs, r)
		}
		if err != io.EOF {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CorruptError", err)
			}
			_ = ce.Error()
		} else if len(recs) == 0 || recs[len(recs)-1].Type != RecTypeEnd {
			t.Fatalf("clean end without an E record")
		}
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for _, r := range recs {
			if err := w.WriteRecord(r.Type, r.Data); err != nil {
				t.Fatal(err)
			}
		}
		rd2 := NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		for i, want := range recs {
			got, err := rd2.Next()
			if err != nil || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("rewrite: record %d = %c %q %v, want %c %q", i, got.Type, got.Data, err, want.Type, want.Data)
			}
		}
		// Physical reading and the parsers must not panic either.
		prd := NewPhysicalReader(bytes.NewReader(data), size)
		for {
			if _, err := prd.Next(); err != nil {
				break
			}
		}
		m, _ := ParseEnvelope(bytes.NewReader(data), size, "deferred/0/0123456789")
		if m == nil {
			t.Fatal("nil message")
		}
		ReadContent(bytes.NewReader(data), size, "x", queue.ContentOptions{Body: true})
		WriteRaw(io.Discard, bytes.NewReader(data), size, "x")
	})
}

// FuzzParseID: no panic; a parsed ID formats to a canonical name that
// parses to the same ID; HashDir
// never panics and has the requested depth.
func FuzzParseID(f *testing.F) {
	for _, rel := range fixtureFiles(f) {
		f.Add(rel[len(rel)-10:])
	}
	for _, s := range []string{"4jXYNS51ffz5fnf", "00000z0003z9", "FFFFF1", "z", "zzzzzzzzzzzz", "ABCDEF0123456789ABCDEF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err == nil {
			if !ValidName(s) {
				t.Fatalf("%q parsed but is not a valid name", s)
			}
			// Leading zeros in the inode (or extra seconds padding) parse,
			// as strtoul would; String gives Postfix's canonical form.
			again, err := ParseID(id.String())
			if err != nil || again != id {
				t.Fatalf("ParseID(%q) = %+v; its String %q parses as %+v, %v", s, id, id.String(), again, err)
			}
		}
		for depth := 0; depth < 3; depth++ {
			d := HashDir(s, depth)
			if s != "" && len(d) != 2*depth {
				t.Fatalf("HashDir(%q, %d) = %q", s, depth, d)
			}
		}
	})
}

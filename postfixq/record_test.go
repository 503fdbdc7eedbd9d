package postfixq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func readFixtureFile(t testing.TB, root, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func logicalRecords(t testing.TB, data []byte, rel string) []Record {
	t.Helper()
	rd := NewReader(bytes.NewReader(data), int64(len(data)))
	rd.SetPath(rel)
	var out []Record
	for {
		r, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		out = append(out, r)
	}
}

var postcatLine = regexp.MustCompile(`^ *([0-9]+) (.*)$`)

func ctime(sec int64) string {
	return time.Unix(sec, 0).UTC().Format("Mon Jan _2 15:04:05 2006")
}

// postcatText renders a logical record the way `postcat -o -v` prints it
// (postcat/postcat.c), for comparison with the real tool.
func postcatText(r Record, name string) string {
	switch r.Type {
	case RecTypeMesg:
		return "*** MESSAGE CONTENTS " + name + " ***"
	case RecTypeXtra:
		return "*** HEADER EXTRACTED " + name + " ***"
	case RecTypeEnd:
		return "*** MESSAGE FILE END " + name + " ***"
	case RecTypeTime:
		sec, _ := strconv.ParseInt(strings.Fields(string(r.Data))[0], 10, 64)
		return "message_arrival_time: " + ctime(sec)
	case RecTypeAttr:
		if v, ok := strings.CutPrefix(string(r.Data), "create_time="); ok {
			sec, _ := strconv.ParseInt(v, 10, 64)
			return "create_time: " + ctime(sec)
		}
	}
	return r.Type.String() + ": " + string(r.Data)
}

// TestReaderMatchesPostcat runs the real postcat -o -v over a sample of
// fixture files (all of those with non-zero pointer records) and checks
// that the logical reader yields the same records at the same offsets.
func TestReaderMatchesPostcat(t *testing.T) {
	root := fixtureRoot(t)
	cfg := postcatConfig(t)
	checked := 0
	for _, rel := range samplePaths(t) {
		data := readFixtureFile(t, root, rel)
		var want []string
		for _, line := range strings.Split(string(postcat(t, cfg, filepath.Join(root, rel), "-o", "-v")), "\n") {
			m := postcatLine.FindStringSubmatch(line)
			if m == nil || strings.HasPrefix(m[2], "pointer_record: ") {
				continue
			}
			want = append(want, m[1]+" "+m[2])
		}
		var got []string
		for _, r := range logicalRecords(t, data, rel) {
			got = append(got, fmt.Sprintf("%d %s", r.Offset, postcatText(r, filepath.Join(root, rel))))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			for i := 0; i < len(got) || i < len(want); i++ {
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Errorf("%s: record %d: got %q, postcat %q", rel, i, g, w)
					break
				}
			}
		}
		checked++
	}
	if checked < 40 {
		t.Errorf("only %d files checked", checked)
	}
}

// TestPhysicalRoundTrip re-writes every record of every fixture file with
// Writer: files without overwritten records come back byte for byte
// (Postfix writes the shortest length form, record.c:rec_put). Files with
// non-zero pointers hold dead bytes after an overwritten header, which a
// physical read cannot frame; for those the logical records must survive a
// rewrite instead.
func TestPhysicalRoundTrip(t *testing.T) {
	root := fixtureRoot(t)
	tf := loadTruth(t)
	identical := 0
	for _, m := range tf.Messages {
		data := readFixtureFile(t, root, m.Path)
		if !m.HasNonzeroPointer {
			rd := NewPhysicalReader(bytes.NewReader(data), int64(len(data)))
			var buf bytes.Buffer
			w := NewWriter(&buf)
			for {
				r, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", m.Path, err)
				}
				if r.Offset != w.Offset() {
					t.Fatalf("%s: record at %d, writer at %d", m.Path, r.Offset, w.Offset())
				}
				if err := w.WriteRecord(r.Type, r.Data); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(buf.Bytes(), data) {
				t.Errorf("%s: physical rewrite differs", m.Path)
			}
			identical++
		}
		recs := logicalRecords(t, data, m.Path)
		var buf bytes.Buffer
		w := NewWriter(&buf)
		for _, r := range recs {
			w.WriteRecord(r.Type, r.Data)
		}
		again := logicalRecords(t, buf.Bytes(), m.Path)
		if !sameRecords(recs, again) {
			t.Errorf("%s: logical records changed in a rewrite", m.Path)
		}
		// The logical record type counts match truth.json (which counts
		// pointer records too).
		counts := map[string]int{}
		for _, r := range recs {
			counts[string(rune(r.Type))]++
		}
		for typ, n := range m.RecordTypesLogical {
			if typ == "p" || typ == "w" {
				continue
			}
			if counts[typ] != n {
				t.Errorf("%s: %d %q records, truth %d", m.Path, counts[typ], typ, n)
			}
		}
	}
	if identical < 200 {
		t.Errorf("only %d files compared byte for byte", identical)
	}
}

func sameRecords(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}

// TestSizeRecordRoundTrip parses every fixture C record and formats it
// back to the same 95 bytes.
func TestSizeRecordRoundTrip(t *testing.T) {
	root := fixtureRoot(t)
	n := 0
	for _, rel := range fixtureFiles(t) {
		data := readFixtureFile(t, root, rel)
		rd := NewPhysicalReader(bytes.NewReader(data), int64(len(data)))
		r, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if r.Type != RecTypeSize {
			continue
		}
		s, fields, err := ParseSizeRecord(r.Data)
		if err != nil || fields != 6 {
			t.Fatalf("%s: %v (%d fields)", rel, err, fields)
		}
		out, err := s.Format()
		if err != nil || !bytes.Equal(out, r.Data) || len(out) != SizeRecordLen {
			t.Errorf("%s: Format = %q, file has %q", rel, out, r.Data)
		}
		n++
	}
	if n != 296 {
		t.Errorf("%d size records, truth says 296", n)
	}
	if _, err := (SizeRecord{DataSize: 1e15}).Format(); err == nil {
		t.Error("a 16-digit field formatted without error")
	}
	for _, bad := range []string{"", "x", "1 2", "0 10 1 0 0 0", "10 0 1 0 0 0", "10 10 1 64 0 0", "10 10 1 0 -1 0"} {
		if _, n, err := ParseSizeRecord([]byte(bad)); err == nil && n != 1 {
			t.Errorf("ParseSizeRecord(%q) accepted", bad)
		} else if err != nil && !errors.Is(err, errBadSize) {
			t.Errorf("ParseSizeRecord(%q) = %v", bad, err)
		}
	}
}

func TestPointerFormat(t *testing.T) {
	for _, v := range []int64{0, 1, 875, 53960, 999999999999999} {
		b, err := FormatPointer(v)
		if err != nil || len(b) != 15 {
			t.Fatalf("FormatPointer(%d) = %q, %v", v, b, err)
		}
		got, err := ParsePointer(b)
		if err != nil || got != v {
			t.Errorf("ParsePointer(%q) = %d, %v", b, got, err)
		}
	}
	if _, err := FormatPointer(1e15); err == nil {
		t.Error("16-digit pointer accepted")
	}
	for _, bad := range []string{"", "   ", "12x", "-5", " 1 2"} {
		if _, err := ParsePointer([]byte(bad)); !errors.Is(err, errBadPointer) {
			t.Errorf("ParsePointer(%q) = %v", bad, err)
		}
	}
}

// TestLengthEncoding checks the varint against the examples observed in
// real files (shared doc §1.1) and record.c's limits.
func TestLengthEncoding(t *testing.T) {
	for n, want := range map[int]string{15: "0f", 200: "c801", 2048: "8010", 904: "8807", 0: "00"} {
		got := fmt.Sprintf("%x", AppendRecord(nil, 'N', make([]byte, n))[1:1+len(want)/2])
		if got != want {
			t.Errorf("length %d encoded %s, want %s", n, got, want)
		}
	}
	// Five length bytes are read (shift 28 < 32) when the value fits.
	rec := []byte{'N', 0x81, 0x80, 0x80, 0x80, 0x00, 'x'}
	rd := NewPhysicalReader(bytes.NewReader(rec), int64(len(rec)))
	if r, err := rd.Next(); err != nil || string(r.Data) != "x" {
		t.Errorf("non-minimal 5-byte length: %v %q", err, r.Data)
	}
	// A sixth length byte is "too many length bits".
	rec = []byte{'R', 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}
	_, err := NewPhysicalReader(bytes.NewReader(rec), int64(len(rec))).Next()
	if !errors.Is(err, errLengthBits) {
		t.Errorf("6 length bytes: %v", err)
	}
	// Bit 31 set: negative as a C int, "illegal length".
	rec = []byte{'R', 0x80, 0x80, 0x80, 0x80, 0x08}
	_, err = NewPhysicalReader(bytes.NewReader(rec), int64(len(rec))).Next()
	if !errors.Is(err, errLengthOverflow) {
		t.Errorf("2^31 length: %v", err)
	}
}

// TestCorruptErrors damages real fixture files in the ways qmgr and
// record.c complain about and checks the typed error, its place and its
// text.
func TestCorruptErrors(t *testing.T) {
	root := fixtureRoot(t)
	const rel = "deferred/0/0D487BE2ED" // has pointers into the heap after E
	orig := readFixtureFile(t, root, rel)
	recs := physicalRecords(t, orig)
	find := func(typ RecType, data string) Record {
		for _, r := range recs {
			if r.Type == typ && (data == "" || strings.Contains(string(r.Data), data)) {
				return r
			}
		}
		t.Fatalf("no %c record %q", typ, data)
		return Record{}
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), orig...)) }
	firstRcpt := find(RecTypeRcpt, "")
	ptr := find(RecTypePtr, "53960")
	maildrop := "maildrop/AFFF7BE527"
	md := readFixtureFile(t, root, maildrop)
	for _, tc := range []struct {
		name   string
		rel    string
		data   []byte
		cause  error
		offset int64
		typ    int
		text   string
	}{
		{"length bits", "", mutate(func(b []byte) []byte {
			copy(b[firstRcpt.Offset+1:], []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80})
			return b
		}), errLengthBits, firstRcpt.Offset, 'R', "postfixq: " + rel + ": record 'R' at offset 0x33e: too many length bits"},
		{"length overflow", "", mutate(func(b []byte) []byte {
			copy(b[firstRcpt.Offset+1:], []byte{0xff, 0xff, 0xff, 0xff, 0x7f})
			return b
		}), errLengthOverflow, firstRcpt.Offset, 'R', "record 'R' at offset 0x33e: length overflows"},
		{"pointer past end", "", mutate(func(b []byte) []byte {
			p, _ := FormatPointer(int64(len(orig)) + 10)
			copy(b[ptr.Offset+2:], p)
			return b
		}), errBadPointer, ptr.Offset, 'p', "bad pointer record"},
		{"pointer loop", "", mutate(func(b []byte) []byte {
			p, _ := FormatPointer(ptr.Offset) // points at itself
			copy(b[ptr.Offset+2:], p)
			return b
		}), errPointerLoop, ptr.Offset, 'p', "pointer record loop"},
		{"malformed pointer", "", mutate(func(b []byte) []byte {
			b[ptr.Offset+10] = 'x'
			return b
		}), errBadPointer, ptr.Offset, 'p', "malformed value"},
		{"bad type in envelope", "", mutate(func(b []byte) []byte {
			b[firstRcpt.Offset] = 'N'
			return b
		}), errRecordType, firstRcpt.Offset, 'N', "record type not allowed"},
		{"bad size record", "", mutate(func(b []byte) []byte {
			b[2+9] = '-' // data_size becomes -52988
			return b
		}), errBadSize, 0, 'C', "bad size record"},
		{"size points elsewhere", "", mutate(func(b []byte) []byte {
			s, _, _ := ParseSizeRecord(orig[2:97])
			s.DataSize -= 2
			f, _ := s.Format()
			copy(b[2:], f)
			return b
		}), errBadContentPointer, -1, -1, "size record does not point"},
		{"missing end", maildrop, md[:len(md)-2], errMissingEnd, int64(len(md) - 2), -1, "postfixq: maildrop/AFFF7BE527: offset 0x1bf: missing end record"},
		{"bad attribute", "", mutate(func(b []byte) []byte {
			a := find(RecTypeAttr, "log_ident=")
			i := bytes.IndexByte(b[a.Offset:], '=')
			b[a.Offset+int64(i)] = ':'
			return b
		}), errBadAttr, find(RecTypeAttr, "log_ident=").Offset, 'A', "bad attribute record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel := rel
			if tc.rel != "" {
				rel = tc.rel
			}
			m, _ := ParseEnvelope(bytes.NewReader(tc.data), int64(len(tc.data)), rel)
			if m.Err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(m.Err, tc.cause) {
				t.Fatalf("err = %v, want cause %v", m.Err, tc.cause)
			}
			var ce *CorruptError
			if !errors.As(m.Err, &ce) {
				t.Fatalf("%v is not a *CorruptError", m.Err)
			}
			if ce.Path != rel || (tc.offset >= 0 && ce.Offset != tc.offset) || (tc.typ != -1 && ce.Type != tc.typ) {
				t.Errorf("error place = %q %d %d, want %d %d", ce.Path, ce.Offset, ce.Type, tc.offset, tc.typ)
			}
			if !strings.Contains(m.Err.Error(), tc.text) {
				t.Errorf("error text %q lacks %q", m.Err, tc.text)
			}
			// What was read before the damage is kept.
			if m.ID != path.Base(rel) || m.Arrival.IsZero() || m.Sender == "" {
				t.Errorf("salvaged message lost its identity: %+v", m)
			}
		})
	}
	if errors.Is(corrupt(rel, 0, -1, errMissingEnd), io.ErrUnexpectedEOF) != true {
		t.Error("missing end does not wrap io.ErrUnexpectedEOF")
	}
}

func physicalRecords(t testing.TB, data []byte) []Record {
	var out []Record
	rd := NewPhysicalReader(bytes.NewReader(data), int64(len(data)))
	for {
		r, err := rd.Next()
		if err != nil {
			return out // dead bytes after an overwritten header end the list
		}
		out = append(out, r)
	}
}

// TestTruncation cuts every fixture file at every logical and physical
// record boundary and inside some records: the envelope parser and the
// logical reader must report a typed error (never panic, never succeed).
func TestTruncation(t *testing.T) {
	root := fixtureRoot(t)
	cuts := 0
	for _, rel := range fixtureFiles(t) {
		data := readFixtureFile(t, root, rel)
		offs := map[int64]bool{0: true, 1: true, int64(len(data)) - 1: true}
		for _, r := range logicalRecords(t, data, rel) {
			offs[r.Offset] = true
			offs[r.Offset+1] = true
			offs[r.Offset+2+int64(len(r.Data))/2] = true
		}
		for _, r := range physicalRecords(t, data) {
			offs[r.Offset] = true
		}
		for off := range offs {
			if off < 0 || off >= int64(len(data)) {
				continue
			}
			cut := data[:off]
			cuts++
			m, env := ParseEnvelope(bytes.NewReader(cut), off, rel)
			if m.Err == nil {
				// The envelope read jumps over the content like qmgr, so a
				// cut that only damages records reached from the content
				// (milter-added headers in the heap after E) is found by
				// the content reader instead.
				if env.EndOffset == 0 || off < env.EndOffset+2 {
					t.Fatalf("%s cut at %d: envelope parsed cleanly", rel, off)
				}
				checkTruncErr(t, rel, off, WriteRaw(io.Discard, bytes.NewReader(cut), off, rel))
			} else {
				checkTruncErr(t, rel, off, m.Err)
			}
			rd := NewReader(bytes.NewReader(cut), off)
			rd.SetPath(rel)
			var err error
			for err == nil {
				_, err = rd.Next()
			}
			checkTruncErr(t, rel, off, err)
			if _, err2 := rd.Next(); err2 != err {
				t.Errorf("%s cut at %d: error not sticky: %v then %v", rel, off, err, err2)
			}
		}
	}
	if cuts < 10000 {
		t.Errorf("only %d cuts", cuts)
	}
}

func checkTruncErr(t *testing.T, rel string, off int64, err error) {
	t.Helper()
	var ce *CorruptError
	if err == nil || err == io.EOF || !errors.As(err, &ce) || ce.Path != rel {
		t.Fatalf("%s cut at %d: err = %v, want a *CorruptError naming the file", rel, off, err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errBadPointer) && !errors.Is(err, errBadContentPointer) {
		t.Fatalf("%s cut at %d: unexpected cause %v", rel, off, err)
	}
}

package postfixq

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/queue"
)

// TestFixtureContent checks headers and decoded Subject/From of every
// fixture message against truth.json.
func TestFixtureContent(t *testing.T) {
	root := fixtureRoot(t)
	tf := loadTruth(t)
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	decodedDiffers := 0
	for _, want := range tf.Messages {
		m, err := s.Read(queue.Ref{Queue: want.Queue, ID: want.QueueID, Path: want.Path})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.ReadContent(m, queue.ContentOptions{})
		if err != nil {
			t.Fatalf("%s: %v", want.Path, err)
		}
		if len(c.Headers) != want.HeaderCount {
			t.Errorf("%s: %d headers, want %d", want.Path, len(c.Headers), want.HeaderCount)
		}
		if c.Body != nil {
			t.Errorf("%s: body read without being asked", want.Path)
		}
		if c.Subject != strp(want.SubjectDecoded) {
			t.Errorf("%s: subject %q, want %q", want.Path, c.Subject, strp(want.SubjectDecoded))
		}
		if c.From != strp(want.FromDecoded) {
			t.Errorf("%s: from %q, want %q", want.Path, c.From, strp(want.FromDecoded))
		}
		if raw := want.Headers["subject"]; len(raw) > 0 && raw[0] != c.Subject {
			decodedDiffers++
		}
		for name, vals := range want.Headers {
			var got []string
			for _, h := range c.Headers {
				if strings.EqualFold(h.Name, name) {
					got = append(got, h.Value)
				}
			}
			// truth.json keeps the folded form; Headers are unfolded
			// (RFC 5322 2.2.3: remove the line breaks only).
			if strings.Join(got, "\x00") != strings.ReplaceAll(strings.Join(vals, "\x00"), "\n", "") {
				t.Errorf("%s: header %s = %q, want %q", want.Path, name, got, vals)
			}
		}
		// With the body: headers + separator + body lines = every content line.
		cb, err := s.ReadContent(m, queue.ContentOptions{Body: true})
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		if err := s.WriteRaw(&raw, m); err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(raw.Bytes(), []byte("\n")); n != want.ContentLines {
			t.Errorf("%s: WriteRaw wrote %d lines, want %d", want.Path, n, want.ContentLines)
		}
		if !bytes.HasSuffix(raw.Bytes(), cb.Body) || len(cb.Body) == 0 {
			t.Errorf("%s: body is not the tail of the raw message", want.Path)
		}
	}
	if decodedDiffers < 50 {
		t.Errorf("only %d subjects needed decoding; the fixture has ISO-2022-JP and UTF-8 words", decodedDiffers)
	}
}

// postcatConfig makes a throwaway config directory for the real postcat.
func postcatConfig(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("postcat"); err != nil {
		if _, err := os.Stat("/usr/sbin/postcat"); err != nil {
			t.Fatal("postcat is not installed (needed to cross-check the reader)")
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func postcat(t *testing.T, cfg, file string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("/usr/sbin/postcat", append([]string{"-c", cfg}, append(args, file)...)...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("postcat %v %s: %v: %s", args, file, err, errb.String())
	}
	return out.Bytes()
}

// samplePaths picks every 7th fixture file plus every file with a
// non-zero pointer record, the maildrop files and the NDRs' first.
func samplePaths(t *testing.T) []string {
	tf := loadTruth(t)
	var out []string
	ndr := false
	for i, m := range tf.Messages {
		pick := i%7 == 0 || m.HasNonzeroPointer || m.Queue == queue.Maildrop || m.HasBounceLog
		if m.Kind == "ndr" && !ndr {
			pick, ndr = true, true
		}
		if pick {
			out = append(out, m.Path)
		}
	}
	return out
}

// TestWriteRawMatchesPostcat compares WriteRaw with `postcat -bh`.
func TestWriteRawMatchesPostcat(t *testing.T) {
	root := fixtureRoot(t)
	cfg := postcatConfig(t)
	for _, rel := range samplePaths(t) {
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := WriteRaw(&got, bytes.NewReader(data), int64(len(data)), rel); err != nil {
			t.Fatal(err)
		}
		want := postcat(t, cfg, filepath.Join(root, rel), "-bh")
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: WriteRaw differs from postcat -bh (%d vs %d bytes)", rel, got.Len(), len(want))
		}
	}
}

func TestDecodeHeader(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"=?iso-2022-jp?b?GyRCJCoyWUoqJCpGTyQxJE4kKkNOJGkkOxsoQg==?=", "お荷物お届けのお知らせ"},
		{"=?utf-8?q?Ganhe_dinheiro_r=C3=A1pido?=", "Ganhe dinheiro rápido"},
		{"=?koi8-r?b?8NLJ18XU?=", "Привет"},
		{"=?iso-8859-1?q?caf=E9?=", "café"},
		{"=?windows-1251?b?z/Do4uX0?=", "Привеф"},
		{"=?shift_jis?b?g2WDWINn?=", "テスト"},
		{"=?euc-jp?b?pcaluaXI?=", "テスト"},
		{"=?gb2312?b?1tDOxA==?=", "中文"},
		{"=?big5?b?pKSk5Q==?=", "中文"},
		{"=?gb18030?b?1tDOxA==?=", "中文"},
		{"\x1b$B%F%9%H\x1b(B mail", "テスト mail"},
		{"raw UTF-8 – ✓", "raw UTF-8 – ✓"},
		{"bad \xff byte", "bad \u00ff byte"}, // not UTF-8: read as Windows-1252 (internal/mimeword)
		{"=?x-unknown?q?abc?=", "abc"},       // unknown charset: the bytes, as raw text
	} {
		if got := DecodeHeader(tc.in); got != tc.want {
			t.Errorf("DecodeHeader(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

package maillog

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LineTexts reads back the lines the reader numbered: in plain and
// gzipped files, CRLF ends trimmed, standard input and missing lines left
// out, an unreadable file named.
func TestLineTexts(t *testing.T) {
	src, err := os.ReadFile("../testdata/queues/postfix-incident/maillog.txt")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "maillog")
	crlf := filepath.Join(dir, "maillog.1")
	gz := filepath.Join(dir, "maillog.2.gz")
	os.WriteFile(plain, src, 0o644)
	os.WriteFile(crlf, bytes.ReplaceAll(src, []byte("\n"), []byte("\r\n")), 0o644)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(src)
	zw.Close()
	os.WriteFile(gz, z.Bytes(), 0o644)

	// the sources the analyzer itself gives: every tie line of the log
	a := NewAnalyzer()
	ReadAll([]string{plain}, Options{}, a)
	srcs := a.TieSources()
	if len(srcs) < 10 {
		t.Fatalf("only %d tie lines", len(srcs))
	}
	lines := strings.Split(string(src), "\n")
	var all []Source
	for _, s := range srcs {
		all = append(all, s, Source{crlf, s.Line}, Source{gz, s.Line})
	}
	all = append(all, Source{"-", 1}, Source{plain, int64(len(lines) + 5)}, Source{filepath.Join(dir, "gone"), 1})
	texts, problems := LineTexts(all)
	if len(problems) != 1 || !strings.Contains(problems[0], "gone") {
		t.Errorf("problems: %q", problems)
	}
	for _, s := range srcs {
		want := lines[s.Line-1]
		if !strings.Contains(want, "sasl_username=") {
			t.Errorf("%v is not a client= line with a user: %q", s, want)
		}
		for _, f := range []string{plain, crlf, gz} {
			if got := texts[Source{f, s.Line}]; got != want {
				t.Errorf("%s:%d: %q, want %q", f, s.Line, got, want)
			}
		}
	}
	if len(texts) != 3*len(srcs) {
		t.Errorf("%d texts for %d wanted lines (standard input and lines past the end must be left out)", len(texts), 3*len(srcs))
	}
}

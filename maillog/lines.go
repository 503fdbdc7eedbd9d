package maillog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
)

// TieSources returns the log lines that may tie a message to its account:
// the Via line of every message left open that has a user, and every
// successful login kept for the qmail join. LineTexts fetches their text.
func (a *Analyzer) TieSources() []Source {
	var out []Source
	for _, m := range a.msgs {
		if m.User != "" && m.Via.File != "" {
			out = append(out, m.Via)
		}
	}
	for _, ls := range a.logins {
		for _, l := range ls {
			out = append(out, l.src)
		}
	}
	return out
}

// LineTexts reads the lines srcs name back from their files (a second
// pass, for --explain: the Analyzer keeps a line's place, not its text)
// and returns each line's text as it is in the file, cut at the length the
// reader reads, passwords not yet redacted (see RedactSecrets). Lines of
// standard input ("-") cannot be read again and are left out; so are
// files that cannot be read, each named in problems.
func LineTexts(srcs []Source) (texts map[Source]string, problems []string) {
	want := map[string]map[int64]bool{}
	for _, s := range srcs {
		if s.File == "" || s.File == "-" {
			continue
		}
		if want[s.File] == nil {
			want[s.File] = map[int64]bool{}
		}
		want[s.File][s.Line] = true
	}
	files := make([]string, 0, len(want))
	for f := range want {
		files = append(files, f)
	}
	sort.Strings(files)
	texts = map[Source]string{}
	for _, name := range files {
		if err := linesOf(name, want[name], texts); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return texts, problems
}

// linesOf reads the wanted line numbers of one file into texts, counting
// lines as the Reader does (each '\n' ends one).
func linesOf(name string, want map[int64]bool, texts map[Source]string) error {
	var last int64
	for n := range want {
		last = max(last, n)
	}
	f, err := openLog(name)
	if err != nil {
		return err
	}
	defer f.Close()
	src, err := decompress(f)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	br := bufio.NewReaderSize(src, 256<<10)
	var line []byte
	for n := int64(1); n <= last; n++ {
		line = line[:0]
		for {
			part, err := br.ReadSlice('\n')
			if len(line) < maxLine {
				line = append(line, part[:min(len(part), maxLine-len(line))]...)
			}
			if err == nil {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if want[n] && len(line) > 0 {
				texts[Source{name, n}] = string(bytes.TrimRight(line, "\r\n"))
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: line %d: %v", name, n, err)
		}
		if want[n] {
			texts[Source{name, n}] = string(bytes.TrimRight(line, "\r\n"))
		}
	}
	return nil
}

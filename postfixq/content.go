package postfixq

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/qsurgeon/qsurgeon/internal/mimeword"
	"github.com/qsurgeon/qsurgeon/queue"
)

// contentWindow is the read size while walking message content.
const contentWindow = 32 << 10

// contentReader walks the content segment of a queue file line by line:
// N records end a line, L records (REC_TYPE_CONT) are chunks of a longer
// line without a newline (cleanup splits lines at line_length_limit).
type contentReader struct {
	rd   *Reader
	line []byte
	path string
}

// openContent positions a logical reader at the first content record: at C
// field 2 when the file has a usable size record, else after the M record.
func openContent(r io.ReaderAt, size int64, rel string) (*contentReader, error) {
	rd := NewReader(r, size)
	rd.SetPath(rel)
	rd.window = contentWindow
	typ, off, data, err := rd.next()
	if err != nil {
		return nil, err
	}
	if typ == RecTypeSize {
		if s, n, err := ParseSizeRecord(data); err == nil && n >= 3 && s.DataOffset < size {
			// Check that the record before DataOffset is really M is not
			// possible without reading the envelope; qmgr and postcat trust
			// the size record, and so do we, but verify the first content
			// record type below.
			if err := rd.Jump(s.DataOffset); err != nil {
				return nil, err
			}
			return &contentReader{rd: rd, path: rel}, nil
		}
	}
	for {
		if !outsideContent[typ] {
			return nil, corrupt(rel, off, int(typ), errRecordType)
		}
		if typ == RecTypeMesg {
			return &contentReader{rd: rd, path: rel}, nil
		}
		if typ == RecTypeEnd {
			return nil, corrupt(rel, off, int(typ), errEarlyEnd)
		}
		if typ, off, _, err = rd.next(); err != nil {
			return nil, err
		}
	}
}

// nextLine returns the next content line without its newline (valid until
// the next call), or io.EOF at the X record.
func (c *contentReader) nextLine() ([]byte, error) {
	c.line = c.line[:0]
	for {
		typ, off, data, err := c.rd.next()
		if err != nil {
			return nil, err
		}
		switch typ {
		case RecTypeNorm:
			if len(c.line) == 0 {
				return data, nil
			}
			c.line = append(c.line, data...)
			return c.line, nil
		case RecTypeCont:
			c.line = append(c.line, data...)
		case RecTypeXtra:
			if len(c.line) > 0 {
				// A last partial line (L without a final N).
				c.rd.pos = off // re-read X next time
				return c.line, nil
			}
			return nil, io.EOF
		default:
			return nil, corrupt(c.path, off, int(typ), errRecordType)
		}
	}
}

// ReadContent reads the headers (and, when opt.Body is set, the body) of
// the queue file of size bytes behind r. Header fields are unfolded and
// kept raw; Subject, From and Message-ID are also decoded (RFC 2047 in any
// charset golang.org/x/text knows, raw ISO-2022-JP, raw UTF-8). Body lines
// end in "\n". rel names the file in errors.
func ReadContent(r io.ReaderAt, size int64, rel string, opt queue.ContentOptions) (*queue.Content, error) {
	cr, err := openContent(r, size, rel)
	if err != nil {
		return nil, err
	}
	c := &queue.Content{}
	inHeaders := true
	var cur []byte // the header being unfolded
	flush := func() {
		if cur == nil {
			return
		}
		name, value, _ := bytes.Cut(cur, []byte{':'})
		c.Headers = append(c.Headers, queue.Header{
			Name:  string(bytes.TrimRight(name, " \t")),
			Value: string(bytes.TrimLeft(value, " \t")),
		})
		cur = nil
	}
	var body bytes.Buffer
lines:
	for {
		line, err := cr.nextLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			flush()
			fillDecoded(c)
			return c, err
		}
		if inHeaders {
			switch {
			case len(line) > 0 && (line[0] == ' ' || line[0] == '\t') && cur != nil:
				// RFC 5322 unfolding: drop the line break, keep the blank.
				cur = append(cur, line...)
				continue
			case isHeader(line):
				flush()
				cur = append([]byte(nil), line...)
				continue
			}
			flush()
			inHeaders = false
			if !opt.Body {
				break lines
			}
			if len(line) == 0 {
				continue // the header/body separator
			}
		}
		body.Write(line)
		body.WriteByte('\n')
	}
	flush()
	fillDecoded(c)
	if opt.Body {
		c.Body = body.Bytes()
		if c.Body == nil {
			c.Body = []byte{}
		}
	}
	return c, nil
}

// isHeader is global/is_header.c:is_header_buf: a name of printable
// non-blank characters other than ':', optional blanks, then ':'.
func isHeader(line []byte) bool {
	n := 0
	for i, c := range line {
		switch {
		case c == ':':
			return n > 0
		case c == ' ' || c == '\t':
			// Blanks may only follow the name, up to the colon.
			if n == 0 {
				return false
			}
			for _, d := range line[i:] {
				if d == ':' {
					return true
				}
				if d != ' ' && d != '\t' {
					return false
				}
			}
			return false
		case c > 32 && c < 127:
			n++
		default:
			return false
		}
	}
	return false
}

func fillDecoded(c *queue.Content) {
	for _, h := range c.Headers {
		switch strings.ToLower(h.Name) {
		case "subject":
			if c.Subject == "" {
				c.Subject = DecodeHeader(h.Value)
			}
		case "from":
			if c.From == "" {
				c.From = DecodeHeader(h.Value)
			}
		case "message-id":
			if c.MessageID == "" {
				c.MessageID = DecodeHeader(h.Value)
			}
		}
	}
}

// DecodeHeader returns a header value as text: RFC 2047 encoded words in
// any charset, raw ISO-2022-JP, raw UTF-8, else Windows-1252 (see
// internal/mimeword, shared with qmailq). Folding white space is kept.
func DecodeHeader(v string) string { return mimeword.DecodeHeader(v) }

// WriteRaw writes the message content of a queue file as RFC 5322 text,
// one "\n"-terminated line per content line (L chunks joined), exactly as
// `postcat -bh` prints it: the headers, the blank line and the body. It
// reads the content only; the envelope is not part of the output.
func WriteRaw(w io.Writer, r io.ReaderAt, size int64, rel string) error {
	cr, err := openContent(r, size, rel)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	for {
		line, err := cr.nextLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			bw.Flush()
			return err
		}
		bw.Write(line)
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
	}
	return bw.Flush()
}

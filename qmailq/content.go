package qmailq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

// MaxHeaderSize caps the header block ReadContent reads before giving up on
// finding its end; MaxBodySize caps the body it returns.
const (
	MaxHeaderSize = 4 << 20
	MaxBodySize   = 1 << 30
)

var errHeaderTooLong = fmt.Errorf("header block longer than %d bytes", MaxHeaderSize)

// ReadContent reads the headers (and, if asked, the body) of a message's
// mess file: the message as received, with qmail-queue's Received line on
// top (qmail-queue.c:main()). Subject, From and Message-ID are decoded
// (RFC 2047 in any charset golang.org/x/text knows, raw ISO-2022-JP, raw
// UTF-8). The content is also stored in m.Content.
func (q *Queue) ReadContent(m *queue.Message, opt queue.ContentOptions) (*queue.Content, error) {
	if m.Path == "" {
		return nil, fmt.Errorf("qmailq: message %s has no mess file: %w", m.ID, os.ErrNotExist)
	}
	id, ok := ParseID(m.ID)
	if !ok {
		return nil, fmt.Errorf("qmailq: %q is not a qmail message id", m.ID)
	}
	rel, err := cleanRel(m.Path)
	if err != nil {
		return nil, err
	}
	dir, _ := splitDir(rel)
	dfd, err := q.dirFD(dir)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	if !q.noNoatime.Load() {
		flags |= unix.O_NOATIME
	}
	fd, err := openatRetry(dfd, strconv.FormatUint(id, 10), flags, 0)
	if err == unix.EPERM && flags&unix.O_NOATIME != 0 {
		q.noNoatime.Store(true)
		fd, err = openatRetry(dfd, strconv.FormatUint(id, 10), flags&^unix.O_NOATIME, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &os.PathError{Op: "open", Path: rel, Err: errors.New("not a regular file")}
	}
	c, err := readContent(rel, f, st.Size, opt)
	if c != nil {
		m.Content = c
	}
	return c, err
}

func splitDir(rel string) (string, string) {
	i := bytes.LastIndexByte([]byte(rel), '/')
	if i < 0 {
		return ".", rel
	}
	return rel[:i], rel[i+1:]
}

// readContent reads the header block from r (size is the file size, a hint
// for the body buffer) and optionally the body.
func readContent(path string, r io.Reader, size int64, opt queue.ContentOptions) (*queue.Content, error) {
	var head []byte
	buf := make([]byte, 16<<10)
	end := -1
	bodyStart := 0
	var rerr error
	for end < 0 {
		n, err := r.Read(buf)
		if n > 0 {
			from := len(head) - 1
			if from < 0 {
				from = 0
			}
			head = append(head, buf[:n]...)
			if i := bytes.Index(head[from:], []byte("\n\n")); i >= 0 {
				end, bodyStart = from+i+1, from+i+2
			} else if i := bytes.Index(head[max(0, from-2):], []byte("\n\r\n")); i >= 0 {
				base := max(0, from-2)
				end, bodyStart = base+i+1, base+i+3
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
		if end < 0 && len(head) > MaxHeaderSize {
			rerr = &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: int64(len(head)), Err: errHeaderTooLong}
			break
		}
	}
	hdr := head
	if end >= 0 {
		hdr = head[:end]
	}
	c := &queue.Content{Headers: ParseHeaders(hdr)}
	for _, h := range c.Headers {
		switch {
		case c.Subject == "" && equalFold(h.Name, "Subject"):
			c.Subject = DecodeHeader(h.Value)
		case c.From == "" && equalFold(h.Name, "From"):
			c.From = DecodeHeader(h.Value)
		case c.MessageID == "" && (equalFold(h.Name, "Message-ID")):
			c.MessageID = DecodeHeader(h.Value)
		}
	}
	if rerr != nil {
		return c, rerr
	}
	if opt.Body {
		var body []byte
		if end >= 0 {
			body = append(body, head[bodyStart:]...)
		}
		hint := size - int64(len(head))
		if hint > 0 && hint < MaxBodySize {
			body = append(make([]byte, 0, int64(len(body))+hint+1), body...)
		}
		lr := io.LimitReader(r, MaxBodySize-int64(len(body))+1)
		rest, err := io.ReadAll(lr)
		body = append(body, rest...)
		if len(body) > MaxBodySize {
			body = body[:MaxBodySize]
			c.Body = body
			return c, &CorruptError{Format: pkgName, Type: -1, Path: path, Offset: MaxBodySize, Err: fmt.Errorf("body larger than %d bytes: truncated", MaxBodySize)}
		}
		c.Body = body
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ParseHeaders splits a header block into fields, unfolding continuation
// lines (the line break is removed, the leading white space kept: RFC 5322
// 2.2.3). Values keep their raw bytes. Lines that are neither a field nor a
// continuation (no colon) are skipped.
func ParseHeaders(block []byte) []queue.Header {
	var out []queue.Header
	var name string
	var val []byte
	have := false
	flush := func() {
		if have {
			out = append(out, queue.Header{Name: name, Value: string(bytes.TrimSpace(val))})
		}
		have = false
	}
	for len(block) > 0 {
		nl := bytes.IndexByte(block, '\n')
		var line []byte
		if nl < 0 {
			line, block = block, nil
		} else {
			line, block = block[:nl], block[nl+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if have {
				val = append(val, line...)
			}
			continue
		}
		flush()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name = string(bytes.TrimRight(line[:colon], " \t"))
		val = append(val[:0:0], line[colon+1:]...)
		have = true
	}
	flush()
	return out
}

// WriteRaw copies a message's mess file — the message exactly as qmail
// stored it, qmail-queue's own Received line included — to w. The file is
// opened without following symbolic links.
func (q *Queue) WriteRaw(w io.Writer, m *queue.Message) error {
	if m.Path == "" {
		return fmt.Errorf("qmailq: message %s has no mess file: %w", m.ID, os.ErrNotExist)
	}
	id, ok := ParseID(m.ID)
	if !ok {
		return fmt.Errorf("qmailq: %q is not a qmail message id", m.ID)
	}
	rel, err := cleanRel(m.Path)
	if err != nil {
		return err
	}
	dir, _ := splitDir(rel)
	dfd, err := q.dirFD(dir)
	if err != nil {
		return &os.PathError{Op: "open", Path: rel, Err: err}
	}
	fd, err := openatRetry(dfd, strconv.FormatUint(id, 10), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("qmailq: %s: not a regular file", rel)
	}
	if st.Size > MaxBodySize {
		// What ReadContent reads at most: a larger mess is refused before
		// a byte is copied (a sparse 10 GB file costs nothing to plant).
		return &CorruptError{Format: pkgName, Type: -1, Path: rel, Offset: MaxBodySize, Err: fmt.Errorf("mess file of %d bytes, larger than %d", st.Size, int64(MaxBodySize))}
	}
	_, err = io.Copy(w, io.LimitReader(f, MaxBodySize))
	return err
}

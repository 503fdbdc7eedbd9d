// Package mimeword decodes header values the way an admin wants to read
// them, whatever the sender's mailer did: RFC 2047 encoded words in any
// charset golang.org/x/text knows, raw ISO-2022-JP, raw UTF-8 and, failing
// all that, Windows-1252. postfixq and qmailq share it; filter takes its
// CharsetReader for --header values.
package mimeword

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// DecodeHeader turns a raw header value into readable UTF-8:
//
//   - RFC 2047 encoded words (B and Q, any charset golang.org/x/text knows,
//     ISO-2022-JP included); adjacent words of one charset are decoded
//     together, so a character split across two words survives, and the
//     white space between encoded words is dropped;
//   - raw ISO-2022-JP (escape sequences in an unencoded header);
//   - raw UTF-8, kept as is;
//   - anything else that is not UTF-8 is read as Windows-1252 so every
//     byte shows as something.
//
// A malformed encoded word is kept literally. It never fails.
func DecodeHeader(raw string) string {
	if !strings.Contains(raw, "=?") {
		return decodeRaw([]byte(raw))
	}
	var out strings.Builder
	var pend []byte   // decoded bytes of consecutive encoded words
	var pendCS string // their charset
	flush := func() {
		if pend != nil {
			out.WriteString(convertCharset(pendCS, pend))
			pend, pendCS = nil, ""
		}
	}
	s := raw
	for {
		i := strings.Index(s, "=?")
		if i < 0 {
			break
		}
		cs, enc, text, n, ok := parseEncodedWord(s[i:])
		var data []byte
		if ok {
			data, ok = decodeWordText(enc, text)
		}
		if !ok {
			// Not an encoded word: keep "=?" literally and go on after it.
			flush()
			out.WriteString(decodeRaw([]byte(s[:i+2])))
			s = s[i+2:]
			continue
		}
		before := s[:i]
		blank := strings.Trim(before, " \t\r\n") == ""
		if pend != nil && blank {
			if strings.EqualFold(cs, pendCS) {
				pend = append(pend, data...)
				s = s[i+n:]
				continue
			}
			flush() // white space between encoded words is dropped
		} else {
			flush()
			out.WriteString(decodeRaw([]byte(before)))
		}
		pend, pendCS = append([]byte{}, data...), cs
		s = s[i+n:]
	}
	flush()
	out.WriteString(decodeRaw([]byte(s)))
	return out.String()
}

// parseEncodedWord parses "=?charset?enc?text?=" at the start of s and
// returns its parts and length.
func parseEncodedWord(s string) (charset, enc, text string, n int, ok bool) {
	if !strings.HasPrefix(s, "=?") {
		return
	}
	rest := s[2:]
	q1 := strings.IndexByte(rest, '?')
	if q1 <= 0 {
		return
	}
	charset = rest[:q1]
	if strings.ContainsAny(charset, " \t\r\n") {
		return
	}
	if star := strings.IndexByte(charset, '*'); star >= 0 { // RFC 2231 language
		charset = charset[:star]
	}
	rest = rest[q1+1:]
	if len(rest) < 2 || rest[1] != '?' {
		return
	}
	enc = rest[:1]
	rest = rest[2:]
	end := strings.Index(rest, "?=")
	if end < 0 {
		return
	}
	text = rest[:end]
	if strings.ContainsAny(text, " \t\r\n") {
		return
	}
	n = 2 + q1 + 1 + 2 + end + 2
	return charset, enc, text, n, true
}

func decodeWordText(enc, text string) ([]byte, bool) {
	switch enc {
	case "B", "b":
		t := strings.TrimRight(text, "=")
		b, err := base64.RawStdEncoding.DecodeString(t)
		if err != nil {
			return nil, false
		}
		return b, true
	case "Q", "q":
		var out []byte
		for i := 0; i < len(text); i++ {
			c := text[i]
			switch {
			case c == '_':
				out = append(out, ' ')
			case c == '=' && i+2 < len(text) && isHex(text[i+1]) && isHex(text[i+2]):
				out = append(out, unhex(text[i+1])<<4|unhex(text[i+2]))
				i += 2
			default:
				out = append(out, c)
			}
		}
		return out, true
	}
	return nil, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// lookupCharset finds an encoding by MIME charset name.
func lookupCharset(name string) encoding.Encoding {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "utf-8", "utf8", "us-ascii", "ascii", "":
		return unicode.UTF8
	case "iso-2022-jp", "iso2022jp", "csiso2022jp":
		return japanese.ISO2022JP
	}
	if e, err := htmlindex.Get(n); err == nil && e != nil {
		return e
	}
	if e, err := ianaindex.MIME.Encoding(n); err == nil && e != nil {
		return e
	}
	return nil
}

// convertCharset converts b from charset to UTF-8; an unknown charset or
// undecodable bytes fall back to decodeRaw.
func convertCharset(charset string, b []byte) string {
	e := lookupCharset(charset)
	if e == nil || e == unicode.UTF8 {
		return decodeRaw(b)
	}
	out, err := e.NewDecoder().Bytes(b)
	if err != nil {
		return decodeRaw(b)
	}
	return string(out)
}

// decodeRaw decodes unencoded header bytes: ISO-2022-JP if it has escape
// sequences, UTF-8 if valid, else Windows-1252.
func decodeRaw(b []byte) string {
	if bytes.IndexByte(b, 0x1b) >= 0 {
		if out, err := japanese.ISO2022JP.NewDecoder().Bytes(b); err == nil && utf8.Valid(out) {
			return string(out)
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	if e, err := htmlindex.Get("windows-1252"); err == nil {
		if out, err := e.NewDecoder().Bytes(b); err == nil {
			return string(out)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// CharsetReader converts input in the named charset to UTF-8, for
// mime.WordDecoder.CharsetReader.
func CharsetReader(charset string, input io.Reader) (io.Reader, error) {
	e := lookupCharset(charset)
	if e == nil {
		return nil, fmt.Errorf("mimeword: unknown charset %q", charset)
	}
	return transform.NewReader(input, e.NewDecoder()), nil
}

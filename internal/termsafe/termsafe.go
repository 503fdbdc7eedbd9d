// Package termsafe makes text from a queue or a log safe to print on a
// terminal. Anything a queue or log holds is attacker-controlled (any remote
// sender writes qmail's headers; the postfix user names files), and a
// terminal obeys control sequences: ESC (C0), DEL, the 8-bit C1 controls
// U+0080–U+009F (U+009B is a one-character CSI on many terminals), the bidi
// formatting characters (which reorder what is shown) and bytes
// that are not UTF-8 (which a terminal in another charset may read as C1).
// Every place qsurgeon prints such text for a person goes through String
// (one line) or Text (several lines); JSON goes through JSON.
package termsafe

import (
	"strings"
	"unicode/utf8"
)

// unsafeRune: C0 controls, DEL, C1 controls and the bidirectional
// formatting characters.
func unsafeRune(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || bidi(r)
}

// bidi reports the Unicode bidirectional formatting characters (ALM, LRM,
// RLM, the embeddings and overrides U+202A–U+202E, the isolates
// U+2066–U+2069): printed raw they reorder what the terminal shows, so a
// forged name can read as another ("Trojan Source", CVE-2021-42574).
func bidi(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// clean reports whether s needs no escaping (keep: runes allowed as is).
func clean(s string, keep func(rune) bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			continue
		}
		if c < 0x80 {
			if keep != nil && keep(rune(c)) {
				continue
			}
			return false
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 || unsafeRune(r) {
			return false
		}
		i += n - 1
	}
	return true
}

func escape(s string, keep func(rune) bool) string {
	if clean(s, keep) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case keep != nil && keep(r):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case r >= 0x80 && r <= 0x9f:
			b.WriteString(`\u00`)
			b.WriteString(hex2(byte(r)))
		case bidi(r):
			b.WriteString(`\u`)
			b.WriteString(hex2(byte(r >> 8)))
			b.WriteString(hex2(byte(r)))
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// String returns s for printing on one line: C0 controls (tab and newline
// included), DEL, C1 controls and bidi formatting characters are shown
// escaped (\x1b, \n, \u009b, \u202e), and
// each byte that is not part of valid UTF-8 as \xNN. Printable text, UTF-8
// included, is unchanged, and a string needing nothing is returned as is
// without allocating.
func String(s string) string { return escape(s, nil) }

// Text is String for several lines (a message body, a header block):
// newline and tab are kept, a carriage return directly before a newline
// too; everything else String escapes is escaped.
func Text(s string) string {
	if clean(s, textKeep) {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return escape(s, textKeep)
}

func textKeep(r rune) bool { return r == '\n' || r == '\t' }

// JSON escapes in an encoded JSON text the characters encoding/json leaves
// raw but a terminal obeys: DEL and the C1 controls become \u007f and
// \u0080–\u009f. They can only occur inside JSON strings, where the escape
// decodes to the same character, so the result is the same JSON value.
// encoding/json already escapes C0 and replaces invalid UTF-8.
func JSON(b []byte) []byte {
	need := false
	for i := 0; i < len(b); i++ {
		if b[i] == 0x7f || b[i] == 0xc2 && i+1 < len(b) && b[i+1] >= 0x80 && b[i+1] <= 0x9f {
			need = true
			break
		}
	}
	if !need {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == 0x7f:
			out = append(out, `\u007f`...)
		case b[i] == 0xc2 && i+1 < len(b) && b[i+1] >= 0x80 && b[i+1] <= 0x9f:
			out = append(out, `\u00`...)
			out = append(out, hex2(b[i+1])...)
			i++
		default:
			out = append(out, b[i])
		}
	}
	return out
}

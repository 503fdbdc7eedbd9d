package filter

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// patKind says how a pattern compares with a value.
type patKind uint8

const (
	patEmpty  patKind = iota // matches only the empty value (null sender, no SASL user, ...)
	patExact                 // whole value, case-insensitive
	patDomain                // "@domain": the part after the last '@', case-insensitive
	patGlob                  // * and ?, case-insensitive
	patRegexp                // /regex/, Go RE2 syntax, as given
)

// strPattern is one compiled address or name pattern. Matching never
// allocates.
type strPattern struct {
	src  string // as the user wrote it, for --explain
	kind patKind
	lit  string         // patExact, patDomain (without '@')
	glob []rune         // patGlob, lower-cased
	re   *regexp.Regexp // patRegexp
}

// isRegexpForm reports whether s is written /regex/.
func isRegexpForm(s string) bool {
	return len(s) >= 2 && s[0] == '/' && s[len(s)-1] == '/'
}

func hasGlob(s string) bool { return strings.ContainsAny(s, "*?") }

// compileAddress compiles a sender/recipient/SASL user pattern. nullOK
// allows "" and "<>" to name the empty value.
func compileAddress(s string) (strPattern, error) {
	p := strPattern{src: s}
	switch {
	case s == "" || s == "<>":
		p.kind = patEmpty
	case isRegexpForm(s):
		return regexpPattern(s)
	case hasGlob(s):
		g := s
		if g[0] == '@' {
			// "@*.example.com" means any local part at a matching domain.
			g = "*" + g
		}
		p.kind, p.glob = patGlob, lowerRunes(g)
	case s[0] == '@':
		if len(s) == 1 || strings.IndexByte(s[1:], '@') >= 0 {
			return p, fmt.Errorf("want @domain")
		}
		p.kind, p.lit = patDomain, s[1:]
	default:
		lit := s
		if len(lit) >= 2 && lit[0] == '<' && lit[len(lit)-1] == '>' {
			lit = lit[1 : len(lit)-1]
		}
		p.kind, p.lit = patExact, lit
	}
	return p, nil
}

// regexpPattern compiles the /regex/ form of a pattern.
func regexpPattern(s string) (strPattern, error) {
	p := strPattern{src: s}
	re, err := regexp.Compile(s[1 : len(s)-1])
	if err != nil {
		return p, fmt.Errorf("bad regular expression: %w", err)
	}
	p.kind, p.re = patRegexp, re
	return p, nil
}

// compileName compiles a HELO or host name pattern: exact (case-insensitive),
// glob or /regex/. The empty pattern matches only the empty value.
func compileName(s string) (strPattern, error) {
	p := strPattern{src: s}
	switch {
	case s == "":
		p.kind = patEmpty
	case isRegexpForm(s):
		return regexpPattern(s)
	case hasGlob(s):
		p.kind, p.glob = patGlob, lowerRunes(s)
	default:
		p.kind, p.lit = patExact, s
	}
	return p, nil
}

// match reports whether v matches. An empty value is matched only by the
// empty pattern, so "--sender '*'" means "any sender but the null sender"
// and "--sasl-user '*'" means "authenticated".
func (p *strPattern) match(v string) bool {
	if v == "" {
		return p.kind == patEmpty
	}
	switch p.kind {
	case patExact:
		return strings.EqualFold(v, p.lit)
	case patDomain:
		at := strings.LastIndexByte(v, '@')
		return at >= 0 && strings.EqualFold(v[at+1:], p.lit)
	case patGlob:
		return globMatch(p.glob, v)
	case patRegexp:
		return p.re.MatchString(v)
	}
	return false
}

// exact reports whether a match says nothing more than the value itself.
func (p *strPattern) exact() bool { return p.kind == patExact || p.kind == patEmpty }

func lowerRunes(s string) []rune {
	r := []rune(s)
	for i := range r {
		r[i] = unicode.ToLower(r[i])
	}
	return r
}

// globMatch matches s against a lower-cased pattern of runes where '*'
// matches any run of characters and '?' exactly one, comparing letters
// case-insensitively. It backtracks only to the last star, so it runs in
// O(len(pat)*len(s)) and never allocates.
func globMatch(pat []rune, s string) bool {
	px, sx := 0, 0
	starP, starS := -1, 0
	for px < len(pat) || sx < len(s) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				starP, starS = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					_, w := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += w
					continue
				}
			default:
				if sx < len(s) {
					r, w := utf8.DecodeRuneInString(s[sx:])
					if r == c || unicode.ToLower(r) == c {
						px++
						sx += w
						continue
					}
				}
			}
		}
		if starP >= 0 && starS < len(s) {
			_, w := utf8.DecodeRuneInString(s[starS:])
			starS += w
			px, sx = starP+1, starS
			continue
		}
		return false
	}
	return true
}

// clientPattern is one --client value: an address, a network, or a host
// name pattern (exact, glob or /regex/) matched against the client's name
// and the textual address.
type clientPattern struct {
	src    string
	isAddr bool
	addr   netip.Addr
	isNet  bool
	prefix netip.Prefix
	name   strPattern
}

func compileClient(s string) (clientPattern, error) {
	p := clientPattern{src: s}
	if s != "" && !isRegexpForm(s) && strings.IndexByte(s, '/') >= 0 {
		pr, err := netip.ParsePrefix(trimAddr(s))
		if err != nil {
			return p, fmt.Errorf("bad CIDR: %w", err)
		}
		p.isNet, p.prefix = true, pr.Masked()
		if p.prefix.Addr().Is4In6() && p.prefix.Bits() >= 96 {
			p.prefix = netip.PrefixFrom(p.prefix.Addr().Unmap(), p.prefix.Bits()-96)
		}
		return p, nil
	}
	if s != "" && !isRegexpForm(s) && !hasGlob(s) {
		if a, err := parseAddr(s); err == nil {
			p.isAddr, p.addr = true, a
			return p, nil
		} else if looksLikeAddr(s) {
			return p, fmt.Errorf("bad IP address: %w", err)
		}
	}
	n, err := compileName(s)
	if err != nil {
		return p, err
	}
	p.name = n
	return p, nil
}

// looksLikeAddr reports whether s can only have been meant as an IP
// address: digits and dots only (no host name is all digits), or a colon.
func looksLikeAddr(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// trimAddr removes the decorations client addresses come with: "[...]"
// (Received headers, address literals) and an "IPv6:" prefix (RFC 5321).
func trimAddr(s string) string {
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	if len(s) > 5 && strings.EqualFold(s[:5], "ipv6:") {
		s = s[5:]
	}
	return s
}

// parseAddr parses a client address in any of its usual spellings and
// returns it in canonical form (IPv4-mapped IPv6 as IPv4, no zone).
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(trimAddr(s))
	if err != nil {
		return a, err
	}
	return a.Unmap().WithZone(""), nil
}

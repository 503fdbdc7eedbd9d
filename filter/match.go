package filter

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Flag names used in errors and --explain output. cmd/qsurgeon should name
// its filter flags the same way.
const (
	FlagID            = "--id"
	FlagQueueName     = "--queue-name"
	FlagSender        = "--sender"
	FlagRecipient     = "--recipient"
	FlagSASLUser      = "--sasl-user"
	FlagClient        = "--client"
	FlagHELO          = "--helo"
	FlagNotSender     = "--not-sender"
	FlagNotRecipient  = "--not-recipient"
	FlagNotSASLUser   = "--not-sasl-user"
	FlagNotClient     = "--not-client"
	FlagOlderThan     = "--older-than"
	FlagNewerThan     = "--newer-than"
	FlagMinSize       = "--min-size"
	FlagMaxSize       = "--max-size"
	FlagNullSender    = "--null-sender"
	FlagNotNullSender = "--not-null-sender"
	FlagBouncing      = "--bouncing"
	FlagCorrupt       = "--corrupt"
	FlagReason        = "--reason"
	FlagHeader        = "--header"
	FlagSubject       = "--subject"
	FlagBody          = "--body"
)

// SpecError is a Spec value Compile refuses.
type SpecError struct {
	Flag  string // e.g. "--client"
	Value string // the value as given
	Err   error
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("filter: %s %q: %v", e.Flag, e.Value, e.Err)
}

func (e *SpecError) Unwrap() error { return e.Err }

// knownQueues are the queue names a Source reports.
var knownQueues = []string{
	queue.Maildrop, queue.Incoming, queue.Active, queue.Deferred, queue.Hold,
	queue.Corrupt, queue.Saved, queue.QmailTodo, queue.QmailQueue,
}

type namedRegexp struct {
	src string
	re  *regexp.Regexp
}

type headerPattern struct {
	src  string // "Name: REGEX" as given
	name string
	re   *regexp.Regexp
}

// Matcher is a compiled Spec. It is safe for concurrent use by the engine's
// workers once compiled (SetCharsetReader must be called before that).
type Matcher struct {
	spec Spec
	now  time.Time

	// env and cont are the criteria the spec sets, in Criteria's order:
	// those tested on the envelope (and logs), and those needing content.
	env, cont []*Criterion

	ids     map[string]struct{}
	senders []strPattern
	rcpts   []strPattern
	sasl    []strPattern
	clients []clientPattern
	helos   []strPattern

	notSenders []strPattern
	notRcpts   []strPattern
	notSASL    []strPattern
	notClients []clientPattern

	reasons  []namedRegexp
	headers  []headerPattern
	subjects []namedRegexp
	bodies   []namedRegexp

	dec mime.WordDecoder

	// staged are the only fields the criteria test, when a
	// queue.StagedSource may be asked for them first (0: read everything).
	staged queue.Fields
}

// Compile checks a Spec and compiles it into a Matcher. Every refused
// value is reported as a *SpecError naming the flag and the value.
//
// Pattern syntax:
//
//   - Senders, Recipients, SASLUsers and their Not* forms take an exact
//     address (case-insensitive; "<a@b>" is the same as "a@b"), "@domain"
//     (exactly that domain, case-insensitive, subdomains excluded), a glob
//     with * and ? (case-insensitive; "@*.example.com" means
//     "*@*.example.com"), or /regex/ (Go RE2 syntax, as given: case-sensitive
//     unless it starts with (?i); unanchored). The empty pattern, or "<>",
//     matches only the empty value: the null sender, an unauthenticated
//     message, a message without a client. Conversely no other pattern ever
//     matches an empty value, so "--sender '*'" excludes the null sender.
//   - Clients take an IP address (v4 or v6, optionally "[...]" or "IPv6:",
//     compared canonically), a CIDR network, or a host name (exact, glob or
//     /regex/) matched against the client's name and textual address.
//   - HELOs take an exact name (case-insensitive), a glob or /regex/.
//   - Reasons, Subjects and Bodies are Go regular expressions as given
//     (no slashes; unanchored, so a plain word is a substring search).
//     Headers are "Name: REGEX".
//
// Recipient patterns look at pending recipients only (neither done nor
// canceled); Reasons at the reason of every recipient. A Not* field
// excludes a message when any value matches (for recipients: any pending
// recipient). Age checks are against Arrival; a message whose arrival
// time is unknown never satisfies OlderThan or NewerThan.
func Compile(spec Spec) (*Matcher, error) {
	m := &Matcher{spec: spec, now: spec.Now}
	if m.now.IsZero() {
		m.now = clock.Now()
	}
	for i := range Criteria {
		c := &Criteria[i]
		if !c.IsSet(&m.spec) {
			continue
		}
		if c.compile != nil {
			if err := c.compile(m); err != nil {
				return nil, err
			}
		}
		if c.Cost >= CostHeaders {
			m.cont = append(m.cont, c)
		} else {
			m.env = append(m.env, c)
		}
	}
	m.staged = stagedFields(spec)
	return m, nil
}

// stagedFields returns the fields a selection by spec tests when they are
// SASL users and senders only, without --invert (which selects what does
// not match, so needs every message whole); 0 otherwise.
func stagedFields(spec Spec) queue.Fields {
	if spec.Invert {
		return 0
	}
	var f queue.Fields
	if len(spec.SASLUsers)+len(spec.NotSASLUsers) > 0 {
		f |= queue.FieldSASLUser
	}
	if len(spec.Senders)+len(spec.NotSenders) > 0 {
		f |= queue.FieldSender
	}
	spec.SASLUsers, spec.NotSASLUsers, spec.Senders, spec.NotSenders = nil, nil, nil, nil
	if !spec.Empty() {
		return 0
	}
	return f
}

func compileHeader(s string) (headerPattern, error) {
	h := headerPattern{src: s}
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return h, errors.New(`want "Name: REGEX"`)
	}
	h.name = strings.TrimSpace(s[:i])
	if h.name == "" {
		return h, errors.New(`want "Name: REGEX": empty header name`)
	}
	for j := 0; j < len(h.name); j++ {
		// RFC 5322 section 3.6.8: ftext is printable US-ASCII except ':'.
		if c := h.name[j]; c < 33 || c > 126 {
			return h, fmt.Errorf(`want "Name: REGEX": bad character %q in header name`, c)
		}
	}
	re, err := regexp.Compile(strings.TrimLeft(s[i+1:], " \t"))
	if err != nil {
		return h, fmt.Errorf("bad regular expression: %w", err)
	}
	h.re = re
	return h, nil
}

// SetCharsetReader installs the charset converter used to decode RFC 2047
// encoded words in header values for Headers (the standard library alone
// knows UTF-8, US-ASCII and ISO-8859-1). Call it before matching starts.
// The Subject, From and Message-ID values the reader decoded are matched as
// well, whatever this is set to.
func (mt *Matcher) SetCharsetReader(f func(charset string, input io.Reader) (io.Reader, error)) {
	mt.dec.CharsetReader = f
}

// Spec returns the Spec the Matcher was compiled from.
func (mt *Matcher) Spec() Spec { return mt.spec }

// Now returns the reference time age checks use.
func (mt *Matcher) Now() time.Time { return mt.now }

// NeedsContent reports whether a decision needs the message content (the
// spec has a criterion that costs headers or more).
func (mt *Matcher) NeedsContent() bool { return len(mt.cont) > 0 }

// NeedsBody reports whether content must include the body.
func (mt *Matcher) NeedsBody() bool {
	for _, c := range mt.cont {
		if c.Cost >= CostBody {
			return true
		}
	}
	return false
}

// MatchEnvelope applies every criterion that needs no content. It does not
// apply Invert (see Match). why lists the criteria that matched, for
// --explain; it is nil unless ok.
func (mt *Matcher) MatchEnvelope(m *queue.Message) (ok bool, why []string) {
	if ok, _ = mt.envelope(m, nil); !ok {
		return false, nil
	}
	mt.envelope(m, &why)
	return true, why
}

// MatchContent applies the Headers, Subjects and Bodies criteria to c (or
// to m.Content when c is nil). It does not apply Invert. Without content it
// reports false when the spec needs content and true otherwise.
func (mt *Matcher) MatchContent(m *queue.Message, c *queue.Content) (ok bool, why []string) {
	if c == nil {
		c = m.Content
	}
	if ok, _ = mt.content(c, nil); !ok {
		return false, nil
	}
	mt.content(c, &why)
	return true, why
}

// Match is the whole decision for one message, Invert included: the
// envelope criteria, then (when they hold and the spec needs content) the
// content criteria against c or m.Content. For an inverted selection why
// names the first criterion that did not hold.
func (mt *Matcher) Match(m *queue.Message, c *queue.Content) (ok bool, why []string) {
	if c == nil {
		c = m.Content
	}
	env, failed := mt.envelope(m, nil)
	cont := env
	if env && mt.NeedsContent() {
		cont, failed = mt.content(c, nil)
	}
	return mt.decide(m, c, env && cont, failed)
}

// decide applies Invert to a decision and builds its explanation.
func (mt *Matcher) decide(m *queue.Message, c *queue.Content, matched bool, failed string) (bool, []string) {
	if matched == mt.spec.Invert {
		return false, nil
	}
	if mt.spec.Invert {
		return true, []string{"invert: " + failed + " does not hold"}
	}
	var why []string
	mt.envelope(m, &why)
	if mt.NeedsContent() {
		mt.content(c, &why)
	}
	return true, why
}

// envelope evaluates the envelope criteria, in Criteria's order. With why
// == nil it does not allocate; it returns the flag of the first criterion
// that failed. With why != nil it appends an explanation of each criterion
// that held.
func (mt *Matcher) envelope(m *queue.Message, why *[]string) (bool, string) {
	for _, c := range mt.env {
		if !c.test(mt, m, nil, why) {
			return false, c.Flag
		}
	}
	// The caller's own criteria (Spec.Extra) run after the table's
	// envelope criteria, without the message content.
	for _, c := range mt.spec.Extra {
		ok, w := c.Match(m)
		if !ok {
			return false, c.Flag
		}
		if why != nil && w != "" {
			*why = append(*why, w)
		}
	}
	return true, ""
}

// content evaluates the content criteria like envelope does. Without
// content (c == nil) they cannot hold.
func (mt *Matcher) content(c *queue.Content, why *[]string) (bool, string) {
	for _, cr := range mt.cont {
		if c == nil || !cr.test(mt, nil, c, why) {
			return false, cr.Flag
		}
	}
	return true, ""
}

// matchHeader reports whether any field named h.name matches, trying the
// raw value, its RFC 2047 decoding, and the reader's decoded Subject, From
// and Message-ID.
func (mt *Matcher) matchHeader(h *headerPattern, c *queue.Content) (string, bool) {
	for _, f := range c.Headers {
		if !strings.EqualFold(f.Name, h.name) {
			continue
		}
		v := trimValue(f.Value)
		if h.re.MatchString(v) {
			return v, true
		}
		if strings.Contains(v, "=?") {
			if d := mt.decode(v); d != v && h.re.MatchString(d) {
				return d, true
			}
		}
	}
	var dv string
	switch {
	case strings.EqualFold(h.name, "Subject"):
		dv = c.Subject
	case strings.EqualFold(h.name, "From"):
		dv = c.From
	case strings.EqualFold(h.name, "Message-ID"):
		dv = c.MessageID
	}
	if dv != "" && h.re.MatchString(dv) {
		return dv, true
	}
	return "", false
}

func (mt *Matcher) decode(v string) string {
	d, err := mt.dec.DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

func trimValue(v string) string { return strings.TrimLeft(v, " \t") }

func firstMatch(ps []strPattern, v string) *strPattern {
	for i := range ps {
		if ps[i].match(v) {
			return &ps[i]
		}
	}
	return nil
}

func firstRegexp(rs []namedRegexp, v string) *namedRegexp {
	for i := range rs {
		if rs[i].re.MatchString(v) {
			return &rs[i]
		}
	}
	return nil
}

func firstClient(ps []clientPattern, m *queue.Message, addr netip.Addr, hasAddr bool) *clientPattern {
	for i := range ps {
		p := &ps[i]
		switch {
		case p.isAddr:
			if hasAddr && addr == p.addr {
				return p
			}
		case p.isNet:
			if hasAddr && p.prefix.Contains(addr) {
				return p
			}
		case p.name.kind == patEmpty:
			if m.ClientAddr == "" && m.ClientName == "" {
				return p
			}
		default:
			if p.name.match(m.ClientName) || p.name.match(m.ClientAddr) {
				return p
			}
		}
	}
	return nil
}

func describe(field, v string, p *strPattern) string {
	if field == "sender" {
		v = orNull(v)
	}
	if p.exact() {
		return field + "=" + v
	}
	return field + "=" + v + " matches " + p.src
}

func describeClient(p *clientPattern, m *queue.Message, addr netip.Addr) string {
	switch {
	case p.isAddr:
		return "client=" + addr.String()
	case p.isNet:
		return "client " + addr.String() + " in " + p.prefix.String()
	case p.name.kind == patEmpty:
		return "no client (local submission)"
	case p.name.match(m.ClientName):
		return describe("client_name", m.ClientName, &p.name)
	default:
		return describe("client", m.ClientAddr, &p.name)
	}
}

func clientText(m *queue.Message) string {
	switch {
	case m.ClientName != "" && m.ClientAddr != "":
		return m.ClientName + "[" + m.ClientAddr + "]"
	case m.ClientAddr != "":
		return m.ClientAddr
	case m.ClientName != "":
		return m.ClientName
	}
	return "(none)"
}

func orNull(sender string) string {
	if sender == "" {
		return "<>"
	}
	return sender
}

// clip shortens long reason and header texts in explanations.
func clip(s string) string {
	const max = 120
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && s[i]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		i--
	}
	return s[:i] + "..."
}

package filter

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/netip"
	"regexp"
	"strconv"
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

	ids     map[string]struct{}
	queues  []string
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
	var err error
	bad := func(flag, value string, e error) error {
		return &SpecError{Flag: flag, Value: value, Err: e}
	}

	if len(spec.IDs) > 0 {
		m.ids = make(map[string]struct{}, len(spec.IDs))
		for _, id := range spec.IDs {
			if id == "" {
				return nil, bad(FlagID, id, errors.New("empty queue ID"))
			}
			m.ids[id] = struct{}{}
		}
	}
	for _, q := range spec.Queues {
		known := false
		for _, k := range knownQueues {
			known = known || q == k
		}
		if !known {
			return nil, bad(FlagQueueName, q, fmt.Errorf("unknown queue name (want one of %s)", strings.Join(knownQueues, ", ")))
		}
		m.queues = append(m.queues, q)
	}

	addrs := func(flag string, in []string) ([]strPattern, error) {
		var out []strPattern
		for _, s := range in {
			p, err := compileAddress(s)
			if err != nil {
				return nil, bad(flag, s, err)
			}
			out = append(out, p)
		}
		return out, nil
	}
	clients := func(flag string, in []string) ([]clientPattern, error) {
		var out []clientPattern
		for _, s := range in {
			p, err := compileClient(s)
			if err != nil {
				return nil, bad(flag, s, err)
			}
			out = append(out, p)
		}
		return out, nil
	}
	regexps := func(flag string, in []string) ([]namedRegexp, error) {
		var out []namedRegexp
		for _, s := range in {
			re, err := regexp.Compile(s)
			if err != nil {
				return nil, bad(flag, s, fmt.Errorf("bad regular expression: %w", err))
			}
			out = append(out, namedRegexp{src: s, re: re})
		}
		return out, nil
	}
	if m.senders, err = addrs(FlagSender, spec.Senders); err != nil {
		return nil, err
	}
	if m.rcpts, err = addrs(FlagRecipient, spec.Recipients); err != nil {
		return nil, err
	}
	if m.sasl, err = addrs(FlagSASLUser, spec.SASLUsers); err != nil {
		return nil, err
	}
	if m.notSenders, err = addrs(FlagNotSender, spec.NotSenders); err != nil {
		return nil, err
	}
	if m.notRcpts, err = addrs(FlagNotRecipient, spec.NotRecipients); err != nil {
		return nil, err
	}
	if m.notSASL, err = addrs(FlagNotSASLUser, spec.NotSASLUsers); err != nil {
		return nil, err
	}
	if m.clients, err = clients(FlagClient, spec.Clients); err != nil {
		return nil, err
	}
	if m.notClients, err = clients(FlagNotClient, spec.NotClients); err != nil {
		return nil, err
	}
	for _, s := range spec.HELOs {
		p, err := compileName(s)
		if err != nil {
			return nil, bad(FlagHELO, s, err)
		}
		m.helos = append(m.helos, p)
	}

	if spec.OlderThan < 0 {
		return nil, bad(FlagOlderThan, spec.OlderThan.String(), errors.New("negative age"))
	}
	if spec.NewerThan < 0 {
		return nil, bad(FlagNewerThan, spec.NewerThan.String(), errors.New("negative age"))
	}
	if spec.MinSize < 0 {
		return nil, bad(FlagMinSize, strconv.FormatInt(spec.MinSize, 10), errors.New("negative size"))
	}
	if spec.MaxSize < 0 {
		return nil, bad(FlagMaxSize, strconv.FormatInt(spec.MaxSize, 10), errors.New("negative size"))
	}
	if spec.MaxSize > 0 && spec.MinSize > spec.MaxSize {
		return nil, bad(FlagMinSize, strconv.FormatInt(spec.MinSize, 10),
			fmt.Errorf("larger than %s %d: selects nothing", FlagMaxSize, spec.MaxSize))
	}
	if spec.NullSender && spec.NotNullSender {
		return nil, bad(FlagNullSender, "", fmt.Errorf("contradicts %s: selects nothing", FlagNotNullSender))
	}

	if m.reasons, err = regexps(FlagReason, spec.Reasons); err != nil {
		return nil, err
	}
	if m.subjects, err = regexps(FlagSubject, spec.Subjects); err != nil {
		return nil, err
	}
	if m.bodies, err = regexps(FlagBody, spec.Bodies); err != nil {
		return nil, err
	}
	for _, s := range spec.Headers {
		h, err := compileHeader(s)
		if err != nil {
			return nil, bad(FlagHeader, s, err)
		}
		m.headers = append(m.headers, h)
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
// spec has Headers, Subjects or Bodies).
func (mt *Matcher) NeedsContent() bool {
	return len(mt.headers) > 0 || len(mt.subjects) > 0 || len(mt.bodies) > 0
}

// NeedsBody reports whether content must include the body.
func (mt *Matcher) NeedsBody() bool { return len(mt.bodies) > 0 }

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

// envelope evaluates the envelope criteria. With why == nil it does not
// allocate; it returns the flag of the first criterion that failed.
// With why != nil it appends an explanation of each criterion that held.
func (mt *Matcher) envelope(m *queue.Message, why *[]string) (bool, string) {
	s := &mt.spec
	explain := why != nil
	add := func(format string, a ...any) { *why = append(*why, fmt.Sprintf(format, a...)) }

	if mt.ids != nil {
		if _, ok := mt.ids[m.ID]; !ok {
			return false, FlagID
		}
		if explain {
			add("id=%s", m.ID)
		}
	}
	if len(mt.queues) > 0 {
		ok := false
		for _, q := range mt.queues {
			if q == m.Queue {
				ok = true
				break
			}
		}
		if !ok {
			return false, FlagQueueName
		}
		if explain {
			add("queue=%s", m.Queue)
		}
	}
	if s.Corrupt {
		if !m.Damaged() {
			return false, FlagCorrupt
		}
		if explain {
			if m.Err != nil {
				add("corrupt: %v", m.Err)
			}
			for _, p := range m.Problems {
				add("problem: %s", p)
			}
		}
	}
	// A qmail double bounce (sender #@[]) is a bounce too: an admin
	// cleaning backscatter with --null-sender must reach it.
	if s.NullSender {
		if !m.NullSender && !m.DoubleBounce {
			return false, FlagNullSender
		}
		if explain {
			if m.DoubleBounce {
				add("null_sender (qmail double bounce, sender #@[])")
			} else {
				add("null_sender")
			}
		}
	}
	if s.NotNullSender {
		if m.NullSender || m.DoubleBounce {
			return false, FlagNotNullSender
		}
		if explain {
			add("not null_sender (sender=%s)", m.Sender)
		}
	}
	if s.Bouncing {
		if !m.Bouncing {
			return false, FlagBouncing
		}
		if explain {
			add("bouncing")
		}
	}
	if s.MinSize > 0 {
		if m.Size < s.MinSize {
			return false, FlagMinSize
		}
		if explain {
			add("size=%d >= %d", m.Size, s.MinSize)
		}
	}
	if s.MaxSize > 0 {
		if m.Size > s.MaxSize {
			return false, FlagMaxSize
		}
		if explain {
			add("size=%d <= %d", m.Size, s.MaxSize)
		}
	}
	if s.OlderThan > 0 {
		if m.Arrival.IsZero() || !m.Arrival.Before(mt.now.Add(-s.OlderThan)) {
			return false, FlagOlderThan
		}
		if explain {
			add("age=%s older than %s", mt.now.Sub(m.Arrival).Truncate(time.Second), s.OlderThan)
		}
	}
	if s.NewerThan > 0 {
		if m.Arrival.IsZero() || !m.Arrival.After(mt.now.Add(-s.NewerThan)) {
			return false, FlagNewerThan
		}
		if explain {
			add("age=%s newer than %s", mt.now.Sub(m.Arrival).Truncate(time.Second), s.NewerThan)
		}
	}

	sender := m.Sender
	if m.NullSender {
		sender = ""
	}
	if len(mt.senders) > 0 {
		p := firstMatch(mt.senders, sender)
		if p == nil {
			return false, FlagSender
		}
		if explain {
			add("%s", describe("sender", sender, p))
		}
	}
	if len(mt.notSenders) > 0 {
		if firstMatch(mt.notSenders, sender) != nil {
			return false, FlagNotSender
		}
		if explain {
			add("sender=%s matches no %s", orNull(sender), FlagNotSender)
		}
	}
	if len(mt.sasl) > 0 {
		p := firstMatch(mt.sasl, m.SASLUser)
		if p == nil {
			return false, FlagSASLUser
		}
		if explain {
			add("%s", describe("sasl_user", m.SASLUser, p))
		}
	}
	if len(mt.notSASL) > 0 {
		if firstMatch(mt.notSASL, m.SASLUser) != nil {
			return false, FlagNotSASLUser
		}
		if explain {
			add("sasl_user=%s matches no %s", m.SASLUser, FlagNotSASLUser)
		}
	}
	if len(mt.clients) > 0 || len(mt.notClients) > 0 {
		// Parse the client address once; netip does not allocate.
		addr, aerr := parseAddr(m.ClientAddr)
		hasAddr := aerr == nil
		if len(mt.clients) > 0 {
			p := firstClient(mt.clients, m, addr, hasAddr)
			if p == nil {
				return false, FlagClient
			}
			if explain {
				add("%s", describeClient(p, m, addr))
			}
		}
		if len(mt.notClients) > 0 {
			if firstClient(mt.notClients, m, addr, hasAddr) != nil {
				return false, FlagNotClient
			}
			if explain {
				add("client %s matches no %s", clientText(m), FlagNotClient)
			}
		}
	}
	if len(mt.helos) > 0 {
		p := firstMatch(mt.helos, m.HELO)
		if p == nil {
			return false, FlagHELO
		}
		if explain {
			add("%s", describe("helo", m.HELO, p))
		}
	}
	if len(mt.rcpts) > 0 {
		var hit *strPattern
		var addr string
		for i := range m.Recipients {
			r := &m.Recipients[i]
			if r.Done || r.Canceled {
				continue
			}
			if p := firstMatch(mt.rcpts, r.Address); p != nil {
				hit, addr = p, r.Address
				break
			}
		}
		if hit == nil {
			return false, FlagRecipient
		}
		if explain {
			add("%s", describe("recipient", addr, hit))
		}
	}
	if len(mt.notRcpts) > 0 {
		for i := range m.Recipients {
			r := &m.Recipients[i]
			if r.Done || r.Canceled {
				continue
			}
			if firstMatch(mt.notRcpts, r.Address) != nil {
				return false, FlagNotRecipient
			}
		}
		if explain {
			add("no pending recipient matches %s", FlagNotRecipient)
		}
	}
	if len(mt.reasons) > 0 {
		ok := false
		for i := range m.Recipients {
			r := &m.Recipients[i]
			if r.Reason == "" {
				continue
			}
			for _, re := range mt.reasons {
				if re.re.MatchString(r.Reason) {
					ok = true
					if explain {
						add("reason of %s %q matches %s", r.Address, clip(r.Reason), re.src)
					}
					break
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			return false, FlagReason
		}
	}
	for _, c := range s.Extra {
		ok, w := c.Match(m)
		if !ok {
			return false, c.Flag
		}
		if explain && w != "" {
			add("%s", w)
		}
	}
	return true, ""
}

// content evaluates the content criteria like envelope does. Without
// content (c == nil) they cannot hold.
func (mt *Matcher) content(c *queue.Content, why *[]string) (bool, string) {
	explain := why != nil
	add := func(format string, a ...any) { *why = append(*why, fmt.Sprintf(format, a...)) }
	if c == nil {
		switch {
		case len(mt.headers) > 0:
			return false, FlagHeader
		case len(mt.subjects) > 0:
			return false, FlagSubject
		case len(mt.bodies) > 0:
			return false, FlagBody
		}
		return true, ""
	}
	if len(mt.headers) > 0 {
		ok := false
		for i := range mt.headers {
			h := &mt.headers[i]
			if v, hit := mt.matchHeader(h, c); hit {
				ok = true
				if explain {
					add("header %s: %q matches %s", h.name, clip(v), h.re)
				}
				break
			}
		}
		if !ok {
			return false, FlagHeader
		}
	}
	if len(mt.subjects) > 0 {
		subj := c.Subject
		if subj == "" {
			// A reader that did not decode the subject: decode it here.
			for _, h := range c.Headers {
				if strings.EqualFold(h.Name, "Subject") {
					subj = mt.decode(trimValue(h.Value))
					break
				}
			}
		}
		p := firstRegexp(mt.subjects, subj)
		if p == nil {
			return false, FlagSubject
		}
		if explain {
			add("subject %q matches %s", clip(subj), p.src)
		}
	}
	if len(mt.bodies) > 0 {
		var p *namedRegexp
		if c.Body != nil {
			for i := range mt.bodies {
				if mt.bodies[i].re.Match(c.Body) {
					p = &mt.bodies[i]
					break
				}
			}
		}
		if p == nil {
			return false, FlagBody
		}
		if explain {
			add("body matches %s", p.src)
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

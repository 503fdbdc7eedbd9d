package filter

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Cost is what a criterion needs read of a message. A selection reads
// only what its most expensive criterion needs.
type Cost int

const (
	// CostEnvelope: the queue file's envelope (qmail: info, local, remote).
	CostEnvelope Cost = iota
	// CostLog: Postfix's defer and bounce logs, qmail's bounce/ file.
	CostLog
	// CostHeaders: the message header.
	CostHeaders
	// CostBody: the whole message.
	CostBody
)

func (c Cost) String() string {
	switch c {
	case CostLog:
		return "log"
	case CostHeaders:
		return "headers"
	case CostBody:
		return "body"
	}
	return "envelope"
}

// Kind is the shape of a criterion's value.
type Kind int

const (
	// List: repeatable values, ORed together.
	List Kind = iota
	// Value: one value, parsed (an age, a size).
	Value
	// Switch: on or off.
	Switch
)

// Criterion is one way of selecting messages: its flag and usage text,
// the Spec field it fills, what it costs to test, how it compiles and how
// it tests a message. Criteria is the one table of them; the command
// line's flags, the predicates (in table order: cheapest first), --explain
// and the generated docs all come from it. Adding a criterion is one entry
// (and its test).
type Criterion struct {
	Flag  string // e.g. "--sender"
	Usage string
	Field string // the Spec field it fills
	Kind  Kind
	Cost  Cost

	list    func(*Spec) *[]string
	swtch   func(*Spec) *bool
	parse   func(*Spec, string) error // Value: the flag's text into the Spec
	isSet   func(*Spec) bool          // Value: whether the Spec sets it
	compile func(*Matcher) error      // the Spec's values into the Matcher
	// test reports whether m (or content c, for header and body
	// criteria) satisfies the criterion and, when why is not nil,
	// appends the explanation of a match.
	test func(mt *Matcher, m *queue.Message, c *queue.Content, why *[]string) bool
}

// Strings returns the Spec field of a List criterion (nil for others).
func (c *Criterion) Strings(s *Spec) *[]string {
	if c.list == nil {
		return nil
	}
	return c.list(s)
}

// Bool returns the Spec field of a Switch criterion (nil for others).
func (c *Criterion) Bool(s *Spec) *bool {
	if c.swtch == nil {
		return nil
	}
	return c.swtch(s)
}

// Parse sets a Value criterion from its text ("" leaves it unset).
func (c *Criterion) Parse(s *Spec, v string) error {
	if c.parse == nil || v == "" {
		return nil
	}
	return c.parse(s, v)
}

// IsSet reports whether s sets the criterion.
func (c *Criterion) IsSet(s *Spec) bool {
	switch c.Kind {
	case List:
		return len(*c.list(s)) > 0
	case Switch:
		return *c.swtch(s)
	}
	return c.isSet(s)
}

// explainf appends one explanation. Callers test why != nil first, so
// that a decision without explanation allocates nothing.
func explainf(why *[]string, format string, a ...any) {
	*why = append(*why, fmt.Sprintf(format, a...))
}

// Criteria is the table of every selection criterion, cheapest test first.
var Criteria = []Criterion{
	{Flag: FlagID, Field: "IDs", Kind: List, Cost: CostEnvelope,
		Usage: "queue ID (repeatable); '-' reads IDs from standard input, one per line",
		list:  func(s *Spec) *[]string { return &s.IDs },
		compile: func(mt *Matcher) error {
			mt.ids = make(map[string]struct{}, len(mt.spec.IDs))
			for _, id := range mt.spec.IDs {
				if id == "" {
					return &SpecError{Flag: FlagID, Value: id, Err: errors.New("empty queue ID")}
				}
				mt.ids[id] = struct{}{}
			}
			return nil
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if _, ok := mt.ids[m.ID]; !ok {
				return false
			}
			if why != nil {
				explainf(why, "id=%s", m.ID)
			}
			return true
		}},
	{Flag: FlagQueueName, Field: "Queues", Kind: List, Cost: CostEnvelope,
		Usage: "queue: maildrop, incoming, active, deferred, hold, corrupt (Postfix); queue, todo (qmail)",
		list:  func(s *Spec) *[]string { return &s.Queues },
		compile: func(mt *Matcher) error {
			for _, q := range mt.spec.Queues {
				known := false
				for _, k := range knownQueues {
					known = known || q == k
				}
				if !known {
					return &SpecError{Flag: FlagQueueName, Value: q, Err: fmt.Errorf("unknown queue name (want one of %s)", strings.Join(knownQueues, ", "))}
				}
			}
			return nil
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			for _, q := range mt.spec.Queues {
				if q == m.Queue {
					if why != nil {
						explainf(why, "queue=%s", m.Queue)
					}
					return true
				}
			}
			return false
		}},
	{Flag: FlagCorrupt, Field: "Corrupt", Kind: Switch, Cost: CostEnvelope,
		Usage: "only messages that could not be read cleanly",
		swtch: func(s *Spec) *bool { return &s.Corrupt },
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if !m.Damaged() {
				return false
			}
			if m.Err != nil {
				if why != nil {
					explainf(why, "corrupt: %v", m.Err)
				}
			}
			for _, p := range m.Problems {
				if why != nil {
					explainf(why, "problem: %s", p)
				}
			}
			return true
		}},
	{Flag: FlagNullSender, Field: "NullSender", Kind: Switch, Cost: CostEnvelope,
		Usage: "only bounces: null-sender mail (MAILER-DAEMON), and on qmail double bounces too (sender #@[])",
		swtch: func(s *Spec) *bool { return &s.NullSender },
		compile: func(mt *Matcher) error {
			if mt.spec.NotNullSender {
				return &SpecError{Flag: FlagNullSender, Value: "", Err: fmt.Errorf("contradicts %s: selects nothing", FlagNotNullSender)}
			}
			return nil
		},
		// A qmail double bounce (sender #@[]) is a bounce too: an admin
		// cleaning backscatter with --null-sender must reach it.
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if !m.NullSender && !m.DoubleBounce {
				return false
			}
			if why != nil {
				if m.DoubleBounce {
					explainf(why, "null_sender (qmail double bounce, sender #@[])")
				} else {
					explainf(why, "null_sender")
				}
			}
			return true
		}},
	{Flag: FlagNotNullSender, Field: "NotNullSender", Kind: Switch, Cost: CostEnvelope,
		Usage: "exclude bounces (null sender; qmail double bounces, sender #@[])",
		swtch: func(s *Spec) *bool { return &s.NotNullSender },
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if m.NullSender || m.DoubleBounce {
				return false
			}
			if why != nil {
				explainf(why, "not null_sender (sender=%s)", m.Sender)
			}
			return true
		}},
	{Flag: FlagBouncing, Field: "Bouncing", Kind: Switch, Cost: CostLog,
		Usage: "only messages with a pending bounce (Postfix bounce log, qmail bounce/N)",
		swtch: func(s *Spec) *bool { return &s.Bouncing },
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if !m.Bouncing {
				return false
			}
			if why != nil {
				explainf(why, "bouncing")
			}
			return true
		}},
	{Flag: FlagMinSize, Field: "MinSize", Kind: Value, Cost: CostEnvelope,
		Usage: "message size at least this (bytes, or with K/M/G)",
		parse: func(s *Spec, v string) (err error) { s.MinSize, err = ParseSize(FlagMinSize, v); return err },
		isSet: func(s *Spec) bool { return s.MinSize != 0 },
		compile: func(mt *Matcher) error {
			s := &mt.spec
			if s.MinSize < 0 {
				return &SpecError{Flag: FlagMinSize, Value: strconv.FormatInt(s.MinSize, 10), Err: errors.New("negative size")}
			}
			if s.MaxSize > 0 && s.MinSize > s.MaxSize {
				return &SpecError{Flag: FlagMinSize, Value: strconv.FormatInt(s.MinSize, 10),
					Err: fmt.Errorf("larger than %s %d: selects nothing", FlagMaxSize, s.MaxSize)}
			}
			return nil
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if m.Size < mt.spec.MinSize {
				return false
			}
			if why != nil {
				explainf(why, "size=%d >= %d", m.Size, mt.spec.MinSize)
			}
			return true
		}},
	{Flag: FlagMaxSize, Field: "MaxSize", Kind: Value, Cost: CostEnvelope,
		Usage: "message size at most this (bytes, or with K/M/G)",
		parse: func(s *Spec, v string) (err error) { s.MaxSize, err = ParseSize(FlagMaxSize, v); return err },
		isSet: func(s *Spec) bool { return s.MaxSize != 0 },
		compile: func(mt *Matcher) error {
			if mt.spec.MaxSize < 0 {
				return &SpecError{Flag: FlagMaxSize, Value: strconv.FormatInt(mt.spec.MaxSize, 10), Err: errors.New("negative size")}
			}
			return nil
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if m.Size > mt.spec.MaxSize {
				return false
			}
			if why != nil {
				explainf(why, "size=%d <= %d", m.Size, mt.spec.MaxSize)
			}
			return true
		}},
	{Flag: FlagOlderThan, Field: "OlderThan", Kind: Value, Cost: CostEnvelope,
		Usage: "arrived longer ago than this: 90m, 12h, 3d, 1w",
		parse: func(s *Spec, v string) (err error) { s.OlderThan, err = ParseAge(FlagOlderThan, v); return err },
		isSet: func(s *Spec) bool { return s.OlderThan != 0 },
		compile: func(mt *Matcher) error {
			if mt.spec.OlderThan < 0 {
				return &SpecError{Flag: FlagOlderThan, Value: mt.spec.OlderThan.String(), Err: errors.New("negative age")}
			}
			return nil
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if m.Arrival.IsZero() || !m.Arrival.Before(mt.now.Add(-mt.spec.OlderThan)) {
				return false
			}
			if why != nil {
				explainf(why, "age=%s older than %s", mt.now.Sub(m.Arrival).Truncate(time.Second), mt.spec.OlderThan)
			}
			return true
		}},
	{Flag: FlagNewerThan, Field: "NewerThan", Kind: Value, Cost: CostEnvelope,
		Usage: "arrived more recently than this: 90m, 12h, 3d, 1w",
		parse: func(s *Spec, v string) (err error) { s.NewerThan, err = ParseAge(FlagNewerThan, v); return err },
		isSet: func(s *Spec) bool { return s.NewerThan != 0 },
		compile: func(mt *Matcher) error {
			if mt.spec.NewerThan < 0 {
				return &SpecError{Flag: FlagNewerThan, Value: mt.spec.NewerThan.String(), Err: errors.New("negative age")}
			}
			return nil
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if m.Arrival.IsZero() || !m.Arrival.After(mt.now.Add(-mt.spec.NewerThan)) {
				return false
			}
			if why != nil {
				explainf(why, "age=%s newer than %s", mt.now.Sub(m.Arrival).Truncate(time.Second), mt.spec.NewerThan)
			}
			return true
		}},
	{Flag: FlagSender, Field: "Senders", Kind: List, Cost: CostEnvelope,
		Usage:   "envelope sender: address, @domain, glob (*@example.com) or /regex/; '<>' is the null sender",
		list:    func(s *Spec) *[]string { return &s.Senders },
		compile: func(mt *Matcher) (err error) { mt.senders, err = addresses(FlagSender, mt.spec.Senders); return err },
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			p := firstMatch(mt.senders, senderOf(m))
			if p == nil {
				return false
			}
			if why != nil {
				explainf(why, "%s", describe("sender", senderOf(m), p))
			}
			return true
		}},
	{Flag: FlagNotSender, Field: "NotSenders", Kind: List, Cost: CostEnvelope,
		Usage: "exclude this sender (same forms as --sender)",
		list:  func(s *Spec) *[]string { return &s.NotSenders },
		compile: func(mt *Matcher) (err error) {
			mt.notSenders, err = addresses(FlagNotSender, mt.spec.NotSenders)
			return err
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if firstMatch(mt.notSenders, senderOf(m)) != nil {
				return false
			}
			if why != nil {
				explainf(why, "sender=%s matches no %s", orNull(senderOf(m)), FlagNotSender)
			}
			return true
		}},
	{Flag: FlagSASLUser, Field: "SASLUsers", Kind: List, Cost: CostEnvelope,
		Usage:   "SMTP AUTH user (Postfix sasl_username; qmail: the ESMTPA Received header)",
		list:    func(s *Spec) *[]string { return &s.SASLUsers },
		compile: func(mt *Matcher) (err error) { mt.sasl, err = addresses(FlagSASLUser, mt.spec.SASLUsers); return err },
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			p := firstMatch(mt.sasl, m.SASLUser)
			if p == nil {
				return false
			}
			if why != nil {
				explainf(why, "%s", describe("sasl_user", m.SASLUser, p))
			}
			return true
		}},
	{Flag: FlagNotSASLUser, Field: "NotSASLUsers", Kind: List, Cost: CostEnvelope,
		Usage: "exclude this SASL user",
		list:  func(s *Spec) *[]string { return &s.NotSASLUsers },
		compile: func(mt *Matcher) (err error) {
			mt.notSASL, err = addresses(FlagNotSASLUser, mt.spec.NotSASLUsers)
			return err
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			if firstMatch(mt.notSASL, m.SASLUser) != nil {
				return false
			}
			if why != nil {
				explainf(why, "sasl_user=%s matches no %s", m.SASLUser, FlagNotSASLUser)
			}
			return true
		}},
	{Flag: FlagClient, Field: "Clients", Kind: List, Cost: CostEnvelope,
		Usage: "SMTP client: IP address, CIDR (203.0.113.0/24, 2001:db8::/32) or host name glob",
		list:  func(s *Spec) *[]string { return &s.Clients },
		compile: func(mt *Matcher) (err error) {
			mt.clients, err = clientPatterns(FlagClient, mt.spec.Clients)
			return err
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			// netip does not allocate.
			addr, aerr := parseAddr(m.ClientAddr)
			p := firstClient(mt.clients, m, addr, aerr == nil)
			if p == nil {
				return false
			}
			if why != nil {
				explainf(why, "%s", describeClient(p, m, addr))
			}
			return true
		}},
	{Flag: FlagNotClient, Field: "NotClients", Kind: List, Cost: CostEnvelope,
		Usage: "exclude this client IP, CIDR or host name",
		list:  func(s *Spec) *[]string { return &s.NotClients },
		compile: func(mt *Matcher) (err error) {
			mt.notClients, err = clientPatterns(FlagNotClient, mt.spec.NotClients)
			return err
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			addr, aerr := parseAddr(m.ClientAddr)
			if firstClient(mt.notClients, m, addr, aerr == nil) != nil {
				return false
			}
			if why != nil {
				explainf(why, "client %s matches no %s", clientText(m), FlagNotClient)
			}
			return true
		}},
	{Flag: FlagHELO, Field: "HELOs", Kind: List, Cost: CostEnvelope,
		Usage: "HELO/EHLO name: glob or /regex/",
		list:  func(s *Spec) *[]string { return &s.HELOs },
		compile: func(mt *Matcher) error {
			for _, s := range mt.spec.HELOs {
				p, err := compileName(s)
				if err != nil {
					return &SpecError{Flag: FlagHELO, Value: s, Err: err}
				}
				mt.helos = append(mt.helos, p)
			}
			return nil
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			p := firstMatch(mt.helos, m.HELO)
			if p == nil {
				return false
			}
			if why != nil {
				explainf(why, "%s", describe("helo", m.HELO, p))
			}
			return true
		}},
	{Flag: FlagRecipient, Field: "Recipients", Kind: List, Cost: CostEnvelope,
		Usage: "a pending recipient: address, @domain, glob or /regex/",
		list:  func(s *Spec) *[]string { return &s.Recipients },
		compile: func(mt *Matcher) (err error) {
			mt.rcpts, err = addresses(FlagRecipient, mt.spec.Recipients)
			return err
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			for i := range m.Recipients {
				r := &m.Recipients[i]
				if r.Done || r.Canceled {
					continue
				}
				if p := firstMatch(mt.rcpts, r.Address); p != nil {
					if why != nil {
						explainf(why, "%s", describe("recipient", r.Address, p))
					}
					return true
				}
			}
			return false
		}},
	{Flag: FlagNotRecipient, Field: "NotRecipients", Kind: List, Cost: CostEnvelope,
		Usage: "exclude messages with this pending recipient",
		list:  func(s *Spec) *[]string { return &s.NotRecipients },
		compile: func(mt *Matcher) (err error) {
			mt.notRcpts, err = addresses(FlagNotRecipient, mt.spec.NotRecipients)
			return err
		},
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			for i := range m.Recipients {
				r := &m.Recipients[i]
				if !r.Done && !r.Canceled && firstMatch(mt.notRcpts, r.Address) != nil {
					return false
				}
			}
			if why != nil {
				explainf(why, "no pending recipient matches %s", FlagNotRecipient)
			}
			return true
		}},
	{Flag: FlagReason, Field: "Reasons", Kind: List, Cost: CostLog,
		Usage:   "REGEX over the delay/bounce reason Postfix logs for the message (e.g. 'Connection refused'); a queued NDR's reason is in its body: --body 'mail forwarding loop'",
		list:    func(s *Spec) *[]string { return &s.Reasons },
		compile: func(mt *Matcher) (err error) { mt.reasons, err = regexps(FlagReason, mt.spec.Reasons); return err },
		test: func(mt *Matcher, m *queue.Message, _ *queue.Content, why *[]string) bool {
			for i := range m.Recipients {
				r := &m.Recipients[i]
				if r.Reason == "" {
					continue
				}
				for _, re := range mt.reasons {
					if re.re.MatchString(r.Reason) {
						if why != nil {
							explainf(why, "reason of %s %q matches %s", r.Address, clip(r.Reason), re.src)
						}
						return true
					}
				}
			}
			return false
		}},
	{Flag: FlagHeader, Field: "Headers", Kind: List, Cost: CostHeaders,
		Usage: "'Name: REGEX' over the decoded value of that header (reads headers)",
		list:  func(s *Spec) *[]string { return &s.Headers },
		compile: func(mt *Matcher) error {
			for _, s := range mt.spec.Headers {
				h, err := compileHeader(s)
				if err != nil {
					return &SpecError{Flag: FlagHeader, Value: s, Err: err}
				}
				mt.headers = append(mt.headers, h)
			}
			return nil
		},
		test: func(mt *Matcher, _ *queue.Message, c *queue.Content, why *[]string) bool {
			for i := range mt.headers {
				h := &mt.headers[i]
				if v, hit := mt.matchHeader(h, c); hit {
					if why != nil {
						explainf(why, "header %s: %q matches %s", h.name, clip(v), h.re)
					}
					return true
				}
			}
			return false
		}},
	{Flag: FlagSubject, Field: "Subjects", Kind: List, Cost: CostHeaders,
		Usage:   "REGEX over the decoded Subject (reads headers)",
		list:    func(s *Spec) *[]string { return &s.Subjects },
		compile: func(mt *Matcher) (err error) { mt.subjects, err = regexps(FlagSubject, mt.spec.Subjects); return err },
		test: func(mt *Matcher, _ *queue.Message, c *queue.Content, why *[]string) bool {
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
				return false
			}
			if why != nil {
				explainf(why, "subject %q matches %s", clip(subj), p.src)
			}
			return true
		}},
	{Flag: FlagBody, Field: "Bodies", Kind: List, Cost: CostBody,
		Usage:   "REGEX over the raw body (reads whole messages: slow)",
		list:    func(s *Spec) *[]string { return &s.Bodies },
		compile: func(mt *Matcher) (err error) { mt.bodies, err = regexps(FlagBody, mt.spec.Bodies); return err },
		test: func(mt *Matcher, _ *queue.Message, c *queue.Content, why *[]string) bool {
			if c.Body == nil {
				return false
			}
			for i := range mt.bodies {
				if mt.bodies[i].re.Match(c.Body) {
					if why != nil {
						explainf(why, "body matches %s", mt.bodies[i].src)
					}
					return true
				}
			}
			return false
		}},
}

// senderOf is the sender criteria's view of m: "" for the null sender.
func senderOf(m *queue.Message) string {
	if m.NullSender {
		return ""
	}
	return m.Sender
}

func addresses(flag string, in []string) ([]strPattern, error) {
	var out []strPattern
	for _, s := range in {
		p, err := compileAddress(s)
		if err != nil {
			return nil, &SpecError{Flag: flag, Value: s, Err: err}
		}
		out = append(out, p)
	}
	return out, nil
}

func clientPatterns(flag string, in []string) ([]clientPattern, error) {
	var out []clientPattern
	for _, s := range in {
		p, err := compileClient(s)
		if err != nil {
			return nil, &SpecError{Flag: flag, Value: s, Err: err}
		}
		out = append(out, p)
	}
	return out, nil
}

func regexps(flag string, in []string) ([]namedRegexp, error) {
	var out []namedRegexp
	for _, s := range in {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, &SpecError{Flag: flag, Value: s, Err: fmt.Errorf("bad regular expression: %w", err)}
		}
		out = append(out, namedRegexp{src: s, re: re})
	}
	return out, nil
}

// ParseAge parses 90s, 90m, 12h, 3d, 1w, or any Go duration, for flag.
func ParseAge(flag, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	if n, err := strconv.ParseFloat(v[:len(v)-1], 64); err == nil && n >= 0 {
		if u, ok := unit[v[len(v)-1]]; ok {
			return time.Duration(n * float64(u)), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, nil
	}
	return 0, fmt.Errorf("%s %q: want a duration such as 90m, 12h, 3d or 1w", flag, v)
}

// ParseSize parses a byte count with an optional K, M or G suffix (powers
// of 1024, as qshape and mailq count Kbytes), for flag.
func ParseSize(flag, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	s := strings.ToUpper(strings.TrimSpace(v))
	s = strings.TrimSuffix(s, "B")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: want a size such as 5000, 100K or 2M", flag, v)
	}
	return int64(n * float64(mult)), nil
}

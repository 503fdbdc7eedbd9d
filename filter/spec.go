// Package filter turns one selection, Spec, into a predicate over
// queue.Message and runs it in parallel over any queue.Source. It imports
// only the queue package, so its tests need no fixtures.
package filter

import (
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Spec is the one selection type every command uses. The zero Spec selects
// every message. Different fields AND together; the values of one
// repeatable field OR together. Each Not* field excludes messages matching
// any of its values.
//
// Address patterns (Senders, Recipients, SASLUsers) accept an exact address
// (case-insensitive), "@domain" (that domain and its subdomains are not
// included: exact domain), a glob with * and ? (case-insensitive), or
// /regex/ (Go RE2, as given: add (?i) for case-insensitive). The empty
// pattern (or "<>") matches only the empty value: the null sender, no SASL
// user, no client. Reasons, Headers, Subjects and Bodies are plain regexes
// without slashes. Compile documents every rule.
type Spec struct {
	IDs        []string // queue IDs (exact)
	Queues     []string // queue names: deferred, hold, ..., qmail: queue, todo
	Senders    []string
	Recipients []string // matches pending recipients
	SASLUsers  []string
	Clients    []string // IP, CIDR, or hostname (glob) of the SMTP client
	HELOs      []string // glob or /regex/

	NotSenders    []string
	NotRecipients []string
	NotSASLUsers  []string
	NotClients    []string

	OlderThan time.Duration // arrival older than now-OlderThan
	NewerThan time.Duration // arrival newer than now-NewerThan
	MinSize   int64         // message_size >= MinSize (0: no bound)
	MaxSize   int64         // message_size <= MaxSize (0: no bound)

	NullSender    bool // only null-sender (bounce) messages
	NotNullSender bool // exclude null-sender messages
	Bouncing      bool // a bounce log / bounce/N exists
	Corrupt       bool // only damaged messages (queue.Message.Damaged)

	Reasons []string // regexes over delay/bounce reason text
	// Headers are "Name: REGEX" pairs; the regex runs over the decoded
	// value of every header field of that name.
	Headers  []string
	Subjects []string // regexes over the decoded Subject
	Bodies   []string // regexes over the raw body

	// Extra are criteria the caller decides itself, such as what the mail
	// logs say about a message (--logged-sasl-user); each must hold. They
	// run after the envelope criteria, without the message content.
	Extra []Custom

	// Invert selects every message the rest of the spec does not select.
	Invert bool

	// Now is the reference time for age checks; zero means clock.Now().
	Now time.Time
}

// Custom is one caller-decided selection criterion (Spec.Extra), such as
// what the mail logs say about a message; unlike the entries of Criteria it
// has no flag of its own here. Match must be safe for concurrent use; why
// explains a match for --explain.
type Custom struct {
	Flag  string // the flag it comes from, named when it is the one that failed
	Match func(m *queue.Message) (ok bool, why string)
}

// Empty reports whether the Spec sets no criterion at all (see Criteria,
// and Extra), so that it selects every message, or none with Invert
// (Invert and Now are not criteria). Destructive commands refuse an empty
// Spec unless told --all.
func (s *Spec) Empty() bool {
	for i := range Criteria {
		if Criteria[i].IsSet(s) {
			return false
		}
	}
	return len(s.Extra) == 0
}

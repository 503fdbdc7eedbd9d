// Package logjoin ties queued messages to what the mail logs say about
// them: which SASL account submitted each, through which log line, and
// where logs and queue disagree. It sits between maillog (which knows no
// queue) and the queue readers (which know no logs).
package logjoin

import (
	"fmt"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/qsurgeon/qsurgeon/queue"
)

// LoginWindow is how long before a qmail message's arrival a vchkpw (or
// dovecot) login from its client address may lie to count as the login
// that sent it. qmail-smtpd runs the checkpassword program during AUTH and
// queues the message seconds later; ten minutes covers a slow client.
const LoginWindow = 10 * time.Minute

// Tie is the log evidence for one message.
type Tie struct {
	User string
	// Via is the log line that names the user (Postfix smtpd's client=
	// line, or the vchkpw/dovecot login), and How says how the message was
	// matched to it.
	Via maillog.Source
	How string
}

// Join holds the log side of the join.
type Join struct {
	A    *maillog.Analyzer
	open map[string]*maillog.Message

	// Seen counts the queue messages looked up; NoLog those the logs say
	// nothing about (arrived before the logs begin, or logs missing).
	Seen, NoLog int
	seen        map[string]bool
}

// New prepares a join over what a has read.
func New(a *maillog.Analyzer) *Join {
	return &Join{A: a, open: a.Open(), seen: map[string]bool{}}
}

// Lookup returns the log evidence for m: ok false (with the reason) when
// the logs do not tie it to an account.
func (j *Join) Lookup(m *queue.Message) (Tie, bool, string) {
	lm := j.open[m.ID]
	switch m.MTA {
	case queue.Postfix:
		if lm == nil {
			return Tie{}, false, "no log line for queue ID " + m.ID
		}
		if lm.User == "" {
			return Tie{}, false, "the logs show no SASL login for " + m.ID
		}
		return Tie{User: lm.User, Via: lm.Via, How: fmt.Sprintf("queue ID %s in smtpd's client= line", m.ID)}, true, ""
	case queue.Qmail:
		// The log's msg number is the queue's inode: the same message when
		// the sender agrees (an inode is reused once a message leaves).
		if lm != nil && lm.HasSender && !strings.EqualFold(lm.Sender, m.Sender) {
			lm = nil
		}
		// Only the logs: the Received header's AUTH user is --sasl-user's.
		user, src, ok, why := j.A.LoginBefore(m.ClientAddr, m.Arrival, LoginWindow)
		if !ok {
			return Tie{}, false, why
		}
		how := fmt.Sprintf("login from its client %s at most %v before it arrived", m.ClientAddr, LoginWindow)
		if lm != nil {
			how += fmt.Sprintf(" (msg %s: info line at %v)", m.ID, lm.Via)
		}
		return Tie{User: user, Via: src, How: how}, true, ""
	}
	return Tie{}, false, "unknown MTA"
}

// Note records that m was looked at, for the disagreement report.
func (j *Join) Note(m *queue.Message) {
	j.Seen++
	j.seen[m.ID] = true
	if j.open[m.ID] == nil {
		j.NoLog++
	}
}

// LogOnly counts the messages the logs leave open (never removed) that
// the queue does not hold: removed without a log line, or logs of another
// host.
func (j *Join) LogOnly() int {
	n := 0
	for id := range j.open {
		if !j.seen[id] {
			n++
		}
	}
	return n
}

// User is the account a queue message counts for in the accounts table:
// the log's when the logs tie it, else the queue file's own SASL user.
func (j *Join) User(m *queue.Message) string {
	if t, ok, _ := j.Lookup(m); ok {
		return strings.ToLower(t.User)
	}
	return strings.ToLower(m.SASLUser)
}

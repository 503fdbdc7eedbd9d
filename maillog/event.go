// Package maillog reads mail-server logs as typed events: SMTP AUTH logins
// and failures, acceptances, deliveries and bounces of Postfix, qmail-send,
// vpopmail's vchkpw, dovecot, saslauthd and courier's authdaemond, with
// every time-stamp form syslog, journald and multilog write. It streams
// (memory grows with the accounts, addresses and messages still open, not
// with lines), counts the lines it does not understand instead of failing,
// and never hands out a password a line carries.
//
// It knows no queue format: the join with a queue is the caller's.
package maillog

import (
	"time"
)

// Kind is what a line says.
type Kind uint8

// The kinds of line understood. Each names the program and the source
// format it comes from.
const (
	Unknown Kind = iota
	// Other is a line of a known program that carries nothing this package
	// uses (qmail "status:", Postfix "disconnect from", statistics).
	Other

	Connect      // Postfix smtpd "connect from NAME[ADDR]"
	Client       // Postfix smtpd "QID: client=NAME[ADDR][, sasl_method=M, sasl_username=U]"
	AuthFailed   // Postfix smtpd "warning: NAME[ADDR]: SASL M authentication failed: ..."
	Reject       // Postfix "NOQUEUE: reject: ..." or "QID: reject: ..." (smtpd, cleanup)
	MessageID    // Postfix cleanup "QID: message-id=<...>"
	Pickup       // Postfix pickup "QID: uid=N from=<S>"
	Queued       // Postfix qmgr "QID: from=<S>, size=N, nrcpt=N (queue active)"
	Expired      // Postfix qmgr "QID: from=<S>, status=expired, returned to sender"
	Removed      // Postfix qmgr/postsuper "QID: removed"
	Held         // Postfix postsuper/cleanup "QID: placed on hold" / "hold: ..."
	Delivery     // Postfix smtp/lmtp/local/virtual/pipe/error/retry/discard "QID: to=<R>, relay=..., dsn=..., status=S (...)"; qmail "delivery D: success|deferral|failure"
	BounceNotice // Postfix bounce "QID: sender non-delivery notification: NEWQID"
	QmailNew     // qmail-send "new msg N"
	QmailInfo    // qmail-send "info msg N: bytes B from <S> qp P uid U"
	QmailStart   // qmail-send "starting delivery D: msg N to local|remote R"
	QmailBounce  // qmail-send "bounce msg N qp P"
	QmailEnd     // qmail-send "end msg N"
	Login        // a successful login: vchkpw, dovecot, saslauthd
	LoginFailed  // a failed login: vchkpw, dovecot, saslauthd, authdaemond/courier
	nKinds
)

var kindNames = [...]string{"unknown", "other", "connect", "client", "auth-failed", "reject", "message-id", "pickup",
	"queued", "expired", "removed", "held", "delivery", "bounce-notice", "qmail-new", "qmail-info", "qmail-start",
	"qmail-bounce", "qmail-end", "login", "login-failed"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind?"
}

// Event is one understood line. Its strings point into the Reader's
// buffer: valid until the next call to Next; strings.Clone what you keep.
type Event struct {
	Kind Kind
	Time time.Time // zero when the line has no stamp (qmail-send without a logger)
	Host string
	// Program is the syslog tag without the pid: "postfix/smtpd",
	// "postfix/submission/smtpd", "postfix-out/smtp", "vpopmail", "qmail",
	// "dovecot". Empty for lines without a tag (multilog, bare qmail-send).
	Program string
	PID     string

	QueueID string // Postfix queue ID; qmail message number (the inode)

	User       string // SASL username / login name
	Method     string // SASL mechanism (PLAIN, LOGIN, CRAM-MD5, ...)
	Service    string // vchkpw-submission, imap-login, smtp, ...
	ClientName string
	ClientAddr string // IP address of the SMTP/IMAP/POP client

	Sender    string // envelope sender ("" is the null sender)
	Recipient string
	OrigTo    string
	Relay     string
	DSN       string
	Status    string // sent, deferred, bounced, expired, ...; qmail: success, deferral, failure
	Text      string // the status or reject text (never a password)

	Size  int64
	Nrcpt int

	Delivery string // qmail delivery number
	Channel  string // qmail local|remote
	QP       string // qmail-queue's pid (info msg, bounce msg)
	UID      string
	NewID    string // the queue ID of the non-delivery notification

	// Source is where the line was read: file name and line number.
	File string
	Line int64
}

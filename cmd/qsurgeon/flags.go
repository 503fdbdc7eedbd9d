package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/urfave/cli/v2"
)

// filterFlags holds the raw values of the selection flags every command
// shares. Slices use cli.StringSlice destinations (never look-ups by name:
// a typo there silently gives an empty value).
type filterFlags struct {
	ids, queues, senders, recipients, saslUsers, clients, helos cli.StringSlice
	notSenders, notRecipients, notSASLUsers, notClients         cli.StringSlice
	reasons, headers, subjects, bodies                          cli.StringSlice
	logFiles, loggedSASLUsers                                   cli.StringSlice   // what the mail logs say (logfilter.go)
	logs                                                        *maillog.Analyzer // the --log files once read
	logMisses                                                   atomic.Int64      // messages --logged-sasl-user found no log line for

	olderThan, newerThan string
	minSize, maxSize     string
	nullSender           bool
	notNullSender        bool
	bouncing             bool
	corrupt              bool
	invert               bool
	explain              bool
}

// addFilterFlags returns the selection flags, the same on every command
// (mox's flagFilterSort).
func (f *filterFlags) flags() []cli.Flag {
	cat := "Selection (different flags AND together; repeating a flag ORs its values):"
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "id", Category: cat, Destination: &f.ids, Usage: "queue ID (repeatable); '-' reads IDs from standard input, one per line"},
		&cli.StringSliceFlag{Name: "queue-name", Category: cat, Destination: &f.queues, Usage: "queue: maildrop, incoming, active, deferred, hold, corrupt (Postfix); queue, todo (qmail)"},
		&cli.StringSliceFlag{Name: "sender", Category: cat, Destination: &f.senders, Usage: "envelope sender: address, @domain, glob (*@example.com) or /regex/; '<>' is the null sender"},
		&cli.StringSliceFlag{Name: "recipient", Category: cat, Destination: &f.recipients, Usage: "a pending recipient: address, @domain, glob or /regex/"},
		&cli.StringSliceFlag{Name: "sasl-user", Category: cat, Destination: &f.saslUsers, Usage: "SMTP AUTH user (Postfix sasl_username; qmail: the ESMTPA Received header)"},
		&cli.StringSliceFlag{Name: "client", Category: cat, Destination: &f.clients, Usage: "SMTP client: IP address, CIDR (203.0.113.0/24, 2001:db8::/32) or host name glob"},
		&cli.StringSliceFlag{Name: "helo", Category: cat, Destination: &f.helos, Usage: "HELO/EHLO name: glob or /regex/"},
		&cli.StringFlag{Name: "older-than", Category: cat, Destination: &f.olderThan, Usage: "arrived longer ago than this: 90m, 12h, 3d, 1w"},
		&cli.StringFlag{Name: "newer-than", Category: cat, Destination: &f.newerThan, Usage: "arrived more recently than this: 90m, 12h, 3d, 1w"},
		&cli.StringFlag{Name: "min-size", Category: cat, Destination: &f.minSize, Usage: "message size at least this (bytes, or with K/M/G)"},
		&cli.StringFlag{Name: "max-size", Category: cat, Destination: &f.maxSize, Usage: "message size at most this (bytes, or with K/M/G)"},
		&cli.BoolFlag{Name: "null-sender", Category: cat, Destination: &f.nullSender, Usage: "only bounces: null-sender mail (MAILER-DAEMON), and on qmail double bounces too (sender #@[])"},
		&cli.BoolFlag{Name: "not-null-sender", Category: cat, Destination: &f.notNullSender, Usage: "exclude bounces (null sender; qmail double bounces, sender #@[])"},
		&cli.BoolFlag{Name: "bouncing", Category: cat, Destination: &f.bouncing, Usage: "only messages with a pending bounce (Postfix bounce log, qmail bounce/N)"},
		&cli.BoolFlag{Name: "corrupt", Category: cat, Destination: &f.corrupt, Usage: "only messages that could not be read cleanly"},
		&cli.StringSliceFlag{Name: "reason", Category: cat, Destination: &f.reasons, Usage: "REGEX over the delay/bounce reason Postfix logs for the message (e.g. 'Connection refused'); a queued NDR's reason is in its body: --body 'mail forwarding loop'"},
		&cli.StringSliceFlag{Name: "header", Category: cat, Destination: &f.headers, Usage: "'Name: REGEX' over the decoded value of that header (reads headers)"},
		&cli.StringSliceFlag{Name: "subject", Category: cat, Destination: &f.subjects, Usage: "REGEX over the decoded Subject (reads headers)"},
		&cli.StringSliceFlag{Name: "body", Category: cat, Destination: &f.bodies, Usage: "REGEX over the raw body (reads whole messages: slow)"},
		&cli.StringSliceFlag{Name: "not-sender", Category: cat, Destination: &f.notSenders, Usage: "exclude this sender (same forms as --sender)"},
		&cli.StringSliceFlag{Name: "not-recipient", Category: cat, Destination: &f.notRecipients, Usage: "exclude messages with this pending recipient"},
		&cli.StringSliceFlag{Name: "not-sasl-user", Category: cat, Destination: &f.notSASLUsers, Usage: "exclude this SASL user"},
		&cli.StringSliceFlag{Name: "not-client", Category: cat, Destination: &f.notClients, Usage: "exclude this client IP, CIDR or host name"},
		&cli.StringSliceFlag{Name: "log", Category: cat, Destination: &f.logFiles, Usage: "mail log for --logged-sasl-user (repeatable; plain, .gz or '-'; rotated sets read oldest first); summary shows its accounts"},
		&cli.StringSliceFlag{Name: "logged-sasl-user", Category: cat, Destination: &f.loggedSASLUsers, Usage: "the SASL user the --log lines tie the message to (Postfix: queue ID in smtpd's client= line; qmail: the vchkpw/dovecot login from its client just before it arrived); same forms as --sasl-user"},
		&cli.BoolFlag{Name: "invert", Category: cat, Destination: &f.invert, Usage: "select every message the other flags do not select"},
		&cli.BoolFlag{Name: "explain", Category: cat, Destination: &f.explain, Usage: "say, per message, which criteria matched"},
	}
}

// spec converts the flag values into the one selection type.
func (f *filterFlags) spec(stdin io.Reader, now time.Time) (filter.Spec, error) {
	s := filter.Spec{
		Queues:        f.queues.Value(),
		Senders:       f.senders.Value(),
		Recipients:    f.recipients.Value(),
		SASLUsers:     f.saslUsers.Value(),
		Clients:       f.clients.Value(),
		HELOs:         f.helos.Value(),
		NotSenders:    f.notSenders.Value(),
		NotRecipients: f.notRecipients.Value(),
		NotSASLUsers:  f.notSASLUsers.Value(),
		NotClients:    f.notClients.Value(),
		Reasons:       f.reasons.Value(),
		Headers:       f.headers.Value(),
		Subjects:      f.subjects.Value(),
		Bodies:        f.bodies.Value(),
		NullSender:    f.nullSender,
		NotNullSender: f.notNullSender,
		Bouncing:      f.bouncing,
		Corrupt:       f.corrupt,
		Invert:        f.invert,
		Now:           now,
	}
	for _, id := range f.ids.Value() {
		if id != "-" {
			s.IDs = append(s.IDs, id)
			continue
		}
		ids, err := readIDs(stdin)
		if err != nil {
			return s, err
		}
		if len(ids) == 0 {
			return s, usageErr("--id -: no queue IDs on standard input")
		}
		s.IDs = append(s.IDs, ids...)
	}
	var err error
	if s.OlderThan, err = parseAge("--older-than", f.olderThan); err != nil {
		return s, err
	}
	if s.NewerThan, err = parseAge("--newer-than", f.newerThan); err != nil {
		return s, err
	}
	if s.MinSize, err = parseSize("--min-size", f.minSize); err != nil {
		return s, err
	}
	if s.MaxSize, err = parseSize("--max-size", f.maxSize); err != nil {
		return s, err
	}
	return s, nil
}

// needsLogs reports whether the selection looks at delay/bounce reasons
// or the bounce state, which live in Postfix's defer and bounce logs.
func (f *filterFlags) needsLogs() bool {
	return len(f.reasons.Value()) > 0 || f.bouncing
}

// empty reports whether the spec selects everything (no criteria given).
func (f *filterFlags) empty() bool {
	for _, v := range []*cli.StringSlice{&f.ids, &f.queues, &f.senders, &f.recipients, &f.saslUsers, &f.clients, &f.helos,
		&f.notSenders, &f.notRecipients, &f.notSASLUsers, &f.notClients, &f.reasons, &f.headers, &f.subjects, &f.bodies, &f.loggedSASLUsers} {
		if len(v.Value()) > 0 {
			return false
		}
	}
	return f.olderThan == "" && f.newerThan == "" && f.minSize == "" && f.maxSize == "" &&
		!f.nullSender && !f.notNullSender && !f.bouncing && !f.corrupt && !f.invert
}

// readIDs reads queue IDs one per line, tolerating the decorations mailq
// prints after an ID (* active, ! hold, # forced expire) and blank lines.
func readIDs(r io.Reader) ([]string, error) {
	var ids []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimRight(line, "*!#")
		if line != "" {
			ids = append(ids, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading queue IDs from standard input: %w", err)
	}
	return ids, nil
}

// parseAge parses 90s, 90m, 12h, 3d, 1w, or any Go duration.
func parseAge(flag, v string) (time.Duration, error) {
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
	return 0, usageErr("%s %q: want a duration such as 90m, 12h, 3d or 1w", flag, v)
}

// parseSize parses a byte count with an optional K, M or G suffix (powers
// of 1024, as qshape and mailq count Kbytes).
func parseSize(flag, v string) (int64, error) {
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
		return 0, usageErr("%s %q: want a size such as 5000, 100K or 2M", flag, v)
	}
	return int64(n * float64(mult)), nil
}

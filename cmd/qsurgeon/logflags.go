package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/logjoin"
	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

// logFlags are the flags of the commands that read mail logs.
type logFlags struct {
	logs         cli.StringSlice
	since, until string
}

func (l *logFlags) flags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{Name: "log", Category: "Logs:", Destination: &l.logs, Usage: "mail log to read (repeatable; plain or .gz; '-' is standard input); a rotated set is read oldest first whatever the order given"},
	}, l.windowFlags()...)
}

// windowFlags are --since and --until alone, for a command whose filter
// flags already hold --log.
func (l *logFlags) windowFlags() []cli.Flag {
	cat := "Logs:"
	return []cli.Flag{
		&cli.StringFlag{Name: "since", Category: cat, Destination: &l.since, Usage: "only log lines at or after this time: 2026-11-22T15:00, 2026-11-22, or an age such as 12h or 3d"},
		&cli.StringFlag{Name: "until", Category: cat, Destination: &l.until, Usage: "only log lines before this time (same forms as --since)"},
	}
}

// names are the logs given with --log plus the command's arguments (so
// that a shell glob after --log works: --log /var/log/mail.log*).
func (l *logFlags) names(c *cli.Context) []string {
	return append(append([]string(nil), l.logs.Value()...), c.Args().Slice()...)
}

// parseWhen reads a --since/--until value: an age back from now, or a date
// and time in the local zone (RFC 3339 with a zone is taken as written).
func parseWhen(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := filter.ParseAge(flag, v); err == nil {
		return clock.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	for _, f := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(f, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("%s %q: want 2026-11-22T15:00, 2026-11-22, RFC 3339, or an age such as 12h", flag, v)
}

// read reads the logs into a new Analyzer (sel, when set, limits the
// impact table) and reports on stderr what could not be read or
// understood.
func (l *logFlags) read(e *env, c *cli.Context, impact bool, sel func(*maillog.Message, string) bool) (*maillog.Analyzer, error) {
	names := l.names(c)
	if len(names) == 0 {
		return nil, fail(exitUsage, fmt.Errorf("no log given"), "give the mail logs with --log FILE (repeatable, .gz read as is, '-' for standard input)")
	}
	since, err := parseWhen("--since", l.since)
	if err != nil {
		return nil, err
	}
	until, err := parseWhen("--until", l.until)
	if err != nil {
		return nil, err
	}
	a := maillog.NewAnalyzer()
	a.Select = sel
	a.TrackImpact = impact
	st := maillog.ReadAll(names, maillog.Options{Since: since, Until: until, Stdin: e.stdin}, a)
	for _, p := range st.Problems {
		fmt.Fprintf(e.stderr, "qsurgeon: warning: log %s\n", printable(p))
	}
	if st.Files == 0 {
		return nil, fail(exitUsage, fmt.Errorf("no log could be read"), "")
	}
	fmt.Fprintf(e.stderr, "qsurgeon: read %d lines from %d log(s): %d not understood (skipped), %d outside the time window\n",
		st.Lines, st.Files, st.Unknown, st.Outside)
	return a, nil
}

// queueJoin reads the queue (when it is readable) and joins it with the
// logs. It returns nil without an error when no --queue was given and the
// default queue cannot be read: the log view stands without it.
func (e *env) queueJoin(c *cli.Context, o globalOpts, a *maillog.Analyzer) (*logjoin.Join, []*queue.Message, error) {
	src, err := openSource(o, e.stderr, readNeeds{})
	if err != nil {
		if o.Queue == "" {
			fmt.Fprintf(e.stderr, "qsurgeon: note: queue not read (%v): the queued column stays empty; give --queue DIR\n", err)
			return nil, nil, nil
		}
		return nil, nil, err
	}
	m, err := surgery.Compile(filter.Spec{})
	if err != nil {
		return nil, nil, err
	}
	var msgs []*queue.Message
	err = filter.Scan(context.Background(), src, m, filter.Options{Workers: o.Workers, OnError: func(err *filter.ReadError) error {
		e.warn(err)
		return nil
	}}, func(r filter.Result) error {
		msgs = append(msgs, r.Msg)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	j := logjoin.New(a)
	for _, msg := range msgs {
		j.Note(msg)
	}
	if j.NoLog > 0 || j.LogOnly() > 0 {
		fmt.Fprintf(e.stderr, "qsurgeon: note: logs and queue disagree: %d queued message(s) have no log line (arrived before the logs begin?), %d message(s) the logs leave in the queue are not there\n",
			j.NoLog, j.LogOnly())
	}
	return j, msgs, nil
}

// logMessage is the queue.Message a filter sees for a message known only
// from the logs (impact): its envelope as the logs give it.
func logMessage(m *maillog.Message, rcpt string) *queue.Message {
	q := &queue.Message{MTA: queue.MTA(m.MTA), ID: m.ID, Sender: m.Sender, NullSender: m.HasSender && m.Sender == "",
		SASLUser: m.User, SASLMethod: m.Method, ClientAddr: m.ClientAddr, ClientName: m.ClientName, Size: m.Size, Arrival: m.Time}
	if q.MTA == "" {
		q.MTA = queue.Postfix
	}
	if rcpt != "" {
		q.Recipients = []queue.Recipient{{Address: rcpt}}
	}
	return q
}

// lower is strings.ToLower, named for the maps keyed by account.
func lower(s string) string { return strings.ToLower(s) }

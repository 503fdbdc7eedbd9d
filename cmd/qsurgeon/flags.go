package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/urfave/cli/v2"
)

// filterFlags holds the raw values of the selection flags every command
// shares, one per entry of filter.Criteria, bound by Destination (never
// looked up by name: a typo there silently gives an empty value).
type filterFlags struct {
	lists   []cli.StringSlice
	values  []string
	bools   []bool
	invert  bool
	explain bool

	// What the mail logs say (logfilter.go): --log and --logged-sasl-user
	// are no entry of filter.Criteria, as their test needs the logs read
	// here; they reach the filter as a filter.Custom in Spec.Extra.
	logFiles, loggedSASLUsers cli.StringSlice
	logs                      *maillog.Analyzer // the --log files once read
	logMisses                 atomic.Int64      // messages --logged-sasl-user found no log line for

	resolved *filter.Spec // spec's answer, once (it may read stdin)
}

// flags returns the selection flags, the same on every command (mox's
// flagFilterSort), made from filter.Criteria.
func (f *filterFlags) flags() []cli.Flag {
	cat := "Selection (different flags AND together; repeating a flag ORs its values):"
	n := len(filter.Criteria)
	f.lists, f.values, f.bools = make([]cli.StringSlice, n), make([]string, n), make([]bool, n)
	var out []cli.Flag
	for i := range filter.Criteria {
		c := &filter.Criteria[i]
		name := strings.TrimPrefix(c.Flag, "--")
		switch c.Kind {
		case filter.List:
			out = append(out, &cli.StringSliceFlag{Name: name, Category: cat, Destination: &f.lists[i], Usage: c.Usage})
		case filter.Value:
			out = append(out, &cli.StringFlag{Name: name, Category: cat, Destination: &f.values[i], Usage: c.Usage})
		case filter.Switch:
			out = append(out, &cli.BoolFlag{Name: name, Category: cat, Destination: &f.bools[i], Usage: c.Usage})
		}
	}
	return append(out,
		&cli.StringSliceFlag{Name: "log", Category: cat, Destination: &f.logFiles, Usage: "mail log for --logged-sasl-user (repeatable; plain, .gz or '-'; rotated sets read oldest first); summary shows its accounts"},
		&cli.StringSliceFlag{Name: "logged-sasl-user", Category: cat, Destination: &f.loggedSASLUsers, Usage: "the SASL user the --log lines tie the message to (Postfix: queue ID in smtpd's client= line; qmail: the vchkpw/dovecot login from its client just before it arrived); same forms as --sasl-user"},
		&cli.BoolFlag{Name: "invert", Category: cat, Destination: &f.invert, Usage: "select every message the other flags do not select"},
		&cli.BoolFlag{Name: "explain", Category: cat, Destination: &f.explain, Usage: "say, per message, which criteria matched"},
	)
}

// spec converts the flag values into the one selection type (once: '--id -'
// reads standard input).
func (f *filterFlags) spec(stdin io.Reader, now time.Time) (filter.Spec, error) {
	if f.resolved != nil {
		return *f.resolved, nil
	}
	s := filter.Spec{Invert: f.invert, Now: now}
	for i := range filter.Criteria {
		c := &filter.Criteria[i]
		switch c.Kind {
		case filter.List:
			*c.Strings(&s) = f.lists[i].Value()
		case filter.Switch:
			*c.Bool(&s) = f.bools[i]
		case filter.Value:
			if err := c.Parse(&s, f.values[i]); err != nil {
				return s, usageErr("%v", err)
			}
		}
	}
	var ids []string
	for _, id := range s.IDs {
		if id != "-" {
			ids = append(ids, id)
			continue
		}
		more, err := readIDs(stdin)
		if err != nil {
			return s, err
		}
		if len(more) == 0 {
			return s, usageErr("--id -: no queue IDs on standard input")
		}
		ids = append(ids, more...)
	}
	s.IDs = ids
	f.resolved = &s
	return s, nil
}

// needsLogs reports whether the selection looks at what only the logs
// hold (delay/bounce reasons, the bounce state): Postfix's defer and
// bounce logs are then read.
func (f *filterFlags) needsLogs() bool {
	for i := range filter.Criteria {
		c := &filter.Criteria[i]
		if c.Cost == filter.CostLog && (len(f.lists[i].Value()) > 0 || f.bools[i] || f.values[i] != "") {
			return true
		}
	}
	return false
}

// ids are the --id values as given.
func (f *filterFlags) ids() []string {
	for i := range filter.Criteria {
		if filter.Criteria[i].Flag == filter.FlagID {
			return f.lists[i].Value()
		}
	}
	return nil
}

// selectsAll reports whether the selection would take every message: no
// criterion given (filter.Spec.Empty) and not inverted (an inverted empty
// selection takes none). Destructive commands refuse it without --all.
func (f *filterFlags) selectsAll(stdin io.Reader) (bool, error) {
	s, err := f.spec(stdin, clock.Now())
	if err != nil {
		return false, err
	}
	return s.Empty() && !s.Invert && len(f.loggedSASLUsers.Value()) == 0, nil
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

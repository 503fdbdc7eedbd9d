package main

import (
	"fmt"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/logjoin"
	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/qsurgeon/qsurgeon/queue"
)

// withLogs adds the criteria that select by what the mail logs say
// (--log FILE --logged-sasl-user X) to spec. The logs are read once,
// before the queue; the criterion looks each message up in what they left
// open (a message the logs show removed cannot be in the queue).
func (f *filterFlags) withLogs(e *env, spec *filter.Spec) error {
	users := f.loggedSASLUsers.Value()
	files := f.logFiles.Value()
	if len(users) == 0 {
		return nil
	}
	if len(files) == 0 {
		return fail(exitUsage, fmt.Errorf("--logged-sasl-user needs the logs"), "give them with --log FILE (repeatable, .gz read as is)")
	}
	// The user patterns have --sasl-user's forms: let the filter compile them.
	um, err := compile(filter.Spec{SASLUsers: users})
	if err != nil {
		return fail(exitUsage, fmt.Errorf("--logged-sasl-user: %w", err), "")
	}
	a := maillog.NewAnalyzer()
	st := maillog.ReadAll(files, maillog.Options{Stdin: e.stdin}, a)
	for _, p := range st.Problems {
		fmt.Fprintf(e.stderr, "qsurgeon: warning: log %s\n", printable(p))
	}
	if st.Files == 0 {
		return fail(exitUsage, fmt.Errorf("no log could be read"), "")
	}
	fmt.Fprintf(e.stderr, "qsurgeon: read %d lines from %d log(s) (%d not understood) for --logged-sasl-user\n", st.Lines, st.Files, st.Unknown)
	j := logjoin.New(a)
	spec.Extra = append(spec.Extra, filter.Criterion{Flag: "--logged-sasl-user", Match: func(m *queue.Message) (bool, string) {
		tie, ok, _ := j.Lookup(m)
		if !ok {
			return false, ""
		}
		if ok, _ := um.MatchEnvelope(&queue.Message{SASLUser: tie.User}); !ok {
			return false, ""
		}
		via := tie.Via.String()
		if via == "" {
			via = "the queue file"
		}
		return true, fmt.Sprintf("logged-sasl-user=%s: %s (%s)", printable(tie.User), printable(via), tie.How)
	}})
	return nil
}

package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/logjoin"
	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
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
	um, err := surgery.Compile(filter.Spec{SASLUsers: users})
	if err != nil {
		return fail(exitUsage, fmt.Errorf("--logged-sasl-user: %w", err), "")
	}
	a, err := f.readLogs(e)
	if err != nil {
		return err
	}
	j := logjoin.New(a)
	lineText := f.tieLineTexts(e, a)
	spec.Extra = append(spec.Extra, filter.Custom{Flag: "--logged-sasl-user", Match: func(m *queue.Message) (bool, string) {
		tie, ok, why := j.Lookup(m)
		if !ok {
			if strings.HasPrefix(why, "no log line") {
				f.logMisses.Add(1)
			}
			return false, ""
		}
		if ok, _ := um.MatchEnvelope(&queue.Message{SASLUser: tie.User}); !ok {
			return false, ""
		}
		via := tie.Via.String()
		if via == "" {
			via = "the queue file"
		}
		text := ""
		if f.explain {
			switch t, ok := lineText(tie.Via); {
			case !ok:
			case !strings.Contains(t, tie.User):
				// the line was read again from the file: a log rotated or
				// rewritten since then shows another line there
				text = " (that line no longer names the account: the log changed since it was read)"
			default:
				text = ` "` + printable(maillog.RedactSecrets(t)) + `"`
			}
		}
		return true, fmt.Sprintf("logged-sasl-user=%s: %s%s (%s)", printable(tie.User), printable(via), text, tie.How)
	}})
	return nil
}

// tieLineTexts returns a look-up of the text of the log lines that tie
// messages to accounts, for --explain: read back from the files once, at
// the first look-up (the matching runs in parallel), never without
// --explain.
func (f *filterFlags) tieLineTexts(e *env, a *maillog.Analyzer) func(maillog.Source) (string, bool) {
	var once sync.Once
	var texts map[maillog.Source]string
	return func(s maillog.Source) (string, bool) {
		once.Do(func() {
			var problems []string
			texts, problems = maillog.LineTexts(a.TieSources())
			for _, p := range problems {
				fmt.Fprintf(e.stderr, "qsurgeon: warning: --explain: log %s\n", printable(p))
			}
		})
		t, ok := texts[s]
		return t, ok
	}
}

// readLogs reads the --log files once per command.
func (f *filterFlags) readLogs(e *env) (*maillog.Analyzer, error) {
	if f.logs != nil {
		return f.logs, nil
	}
	a := maillog.NewAnalyzer()
	st := maillog.ReadAll(f.logFiles.Value(), maillog.Options{Stdin: e.stdin}, a)
	for _, p := range st.Problems {
		fmt.Fprintf(e.stderr, "qsurgeon: warning: log %s\n", printable(p))
	}
	if st.Files == 0 {
		return nil, fail(exitUsage, fmt.Errorf("no log could be read"), "")
	}
	fmt.Fprintf(e.stderr, "qsurgeon: read %d lines from %d log(s) (%d not understood)\n", st.Lines, st.Files, st.Unknown)
	f.logs = a
	return a, nil
}

// logView is summary's view of the --log files: the accounts, with their
// messages in the (selected part of the) queue counted as they are seen.
type logView struct {
	j      *logjoin.Join
	queued map[string]int
}

func (f *filterFlags) logView(e *env) (*logView, error) {
	if len(f.logFiles.Value()) == 0 {
		return nil, nil
	}
	a, err := f.readLogs(e)
	if err != nil {
		return nil, err
	}
	return &logView{j: logjoin.New(a), queued: map[string]int{}}, nil
}

func (v *logView) note(m *queue.Message) {
	if v == nil {
		return
	}
	v.j.Note(m)
	if u := v.j.User(m); u != "" {
		v.queued[u]++
	}
}

// accounts returns the top n accounts (0: all).
func (v *logView) accounts(n int) []maillog.Account {
	if v == nil {
		return nil
	}
	rows := v.j.A.Accounts(v.queued)
	if n > 0 && len(rows) > n {
		rows = rows[:n]
	}
	return rows
}

// printLogAccounts is summary's table of the log's top accounts.
func printLogAccounts(w io.Writer, rows []maillog.Account) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nTop accounts in the logs (most suspicious first)\n")
	t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t, "  ACCOUNT\tSCORE\tLOGINS OK/FAIL\tADDRS\tNETS\tMSGS\tQUEUED\tWHY")
	for _, r := range rows {
		q := "-"
		if r.Queued != nil {
			q = fmt.Sprint(*r.Queued)
		}
		fmt.Fprintf(t, "  %s\t%.1f\t%d/%d\t%d\t%d\t%d\t%s\t%s\n", clip(printable(r.User), 40), r.Score, r.LoginsOK, r.LoginsFailed,
			r.ClientAddresses, r.Networks, r.Messages, q, clip(printable(strings.Join(r.Why, "; ")), 100))
	}
	t.Flush()
}

// logNotes says where logs and queue disagreed during the selection: a
// message the logs know nothing of is never selected by them, and the
// user must know how many there were.
func (f *filterFlags) logNotes(e *env) {
	if n := f.logMisses.Load(); n > 0 {
		fmt.Fprintf(e.stderr, "qsurgeon: note: %d message(s) in the queue have no line in the --log files (earlier logs? maildrop?): --logged-sasl-user cannot select them\n", n)
	}
}

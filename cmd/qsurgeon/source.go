package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/user"
	"sort"
	"strconv"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// readNeeds says what a command needs read of every message beyond what a
// selection by envelope needs. Leaving out what nobody will look at saves
// two opens per Postfix message (the defer and bounce logs) and a map.
type readNeeds struct {
	logs  bool // delay/bounce reasons and the Bouncing flag
	attrs bool // every Postfix named attribute (show)
}

// queueDir resolves --queue (surgery.QueueDir).
func queueDir(o globalOpts) string { return surgery.QueueDir(o.Queue, o.MTA, o.ConfigDir) }

// openSource opens the queue named by the global options. Entries the
// reader leaves alone (symbolic links, bad names, files still being
// written) are reported on w as they are met, never acted on.
func openSource(o globalOpts, w io.Writer, need readNeeds) (queue.Source, error) {
	return surgery.Open(surgery.OpenOptions{
		Dir: o.Queue, MTA: o.MTA, ConfigDir: o.ConfigDir,
		Logs: need.logs, Attrs: need.attrs, TrustSMTPD: smtpdUIDs(o),
		Warn: func(msg string) { fmt.Fprintf(w, "qsurgeon: warning: %s\n", printable(msg)) },
	})
}

// selectMessages compiles the filter flags and selects with
// surgery.Select, with a progress bar on a terminal. Unreadable messages
// are warned about (and in the selection's Errs); qmail strays are
// reported. selected, when given, is SelectOptions.Selected.
func (e *env) selectMessages(c *cli.Context, o globalOpts, ff *filterFlags, src queue.Source, k surgery.Keep, selected ...func(*queue.Message)) (*surgery.Selection, error) {
	spec, err := ff.spec(e.stdin, clock.Now())
	if err != nil {
		return nil, err
	}
	if err := ff.withLogs(e, &spec); err != nil {
		return nil, err
	}
	opt := surgery.SelectOptions{Workers: o.Workers, Keep: k, Explain: ff.explain, GiveBack: true}
	if len(selected) > 0 {
		opt.Selected = selected[0]
	}
	bar := e.progress(o, "scanning "+src.Root())
	if bar != nil {
		opt.Progress = func(done, total int64) { _ = bar.Set64(done) }
	}
	sel, err := surgery.Select(c.Context, src, spec, opt)
	if bar != nil {
		_ = bar.Finish()
		_ = bar.Clear()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, fail(exitError, errors.New("interrupted"), "")
		}
		return nil, err
	}
	for _, err := range sel.Errs {
		e.warn(err)
	}
	ff.logNotes(e)
	e.strays(sel.Strays)
	if len(spec.SASLUsers) > 0 && len(sel.Results) == 0 {
		e.hintUntrustedAuth(src)
	}
	return sel, nil
}

// smtpdUIDs is --smtpd-uid, or by default the uid of the vpopmail account
// when this machine has one (vpopmail set-ups run qmail-smtpd as vpopmail
// so that vchkpw can read the accounts; qmail-queue then writes "invoked
// by uid N" instead of "invoked from network").
func smtpdUIDs(o globalOpts) []int64 {
	var out []int64
	for _, u := range o.SMTPDUIDs.Value() {
		out = append(out, int64(u))
	}
	if len(out) > 0 {
		return out
	}
	if u, err := user.Lookup("vpopmail"); err == nil {
		if n, err := strconv.ParseInt(u.Uid, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// hintUntrustedAuth says, when a selection by SASL user found nothing,
// that SMTP-AUTH headers exist after an "invoked by uid N" that is not
// trusted, and which flag would trust them.
func (e *env) hintUntrustedAuth(src queue.Source) {
	counts := surgery.UntrustedAuth(src)
	uids := make([]int64, 0, len(counts))
	for u := range counts {
		uids = append(uids, u)
	}
	sort.Slice(uids, func(i, j int) bool {
		return counts[uids[i]] > counts[uids[j]] || counts[uids[i]] == counts[uids[j]] && uids[i] < uids[j]
	})
	for _, u := range uids {
		fmt.Fprintf(e.stderr, "qsurgeon: hint: %d message(s) carry an SMTP-AUTH Received header after qmail-queue's 'invoked by uid %d', which is not trusted (a local user could have written it); if qmail-smtpd runs as uid %d (vpopmail set-ups), add --smtpd-uid %d\n", counts[u], u, u, u)
	}
}

// strays names the entries of a qmail queue that belong to no message:
// they are never selected or touched, but an admin must know.
func (e *env) strays(strays []string) {
	for _, s := range strays {
		fmt.Fprintf(e.stderr, "qsurgeon: warning: %s: left alone\n", printable(s))
	}
}

// reportStrays reports the strays of a source after a walk.
func (e *env) reportStrays(src queue.Source) { e.strays(surgery.Strays(src)) }

// warn prints a per-message warning on stderr; the command goes on.
func (e *env) warn(err error) {
	fmt.Fprintf(e.stderr, "qsurgeon: warning: %s\n", printable(err.Error()))
}

// progress returns a progress bar on stderr, or nil when stderr is not a
// terminal, the output is JSON, or --no-progress was given.
func (e *env) progress(o globalOpts, what string) *progressbar.ProgressBar {
	if o.NoProgress || o.Format == "json" || !isTerminal(e.stderr) {
		return nil
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(e.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
	)
}

// checkLayout refuses a directory that does not have the layout of the MTA
// --mta forces (surgery.CheckLayout; exit 4 through errorTable).
func checkLayout(dir, mta string) error { return surgery.CheckLayout(dir, queue.MTA(mta)) }

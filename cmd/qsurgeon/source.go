package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
		Logs: need.logs, Attrs: need.attrs,
		Warn: func(msg string) { fmt.Fprintf(w, "qsurgeon: warning: %s\n", msg) },
	})
}

// selectMessages compiles the filter flags and selects with
// surgery.Select, with a progress bar on a terminal. Unreadable messages
// are warned about (and in the selection's Errs); qmail strays are
// reported.
func (e *env) selectMessages(c *cli.Context, o globalOpts, ff *filterFlags, src queue.Source, k surgery.Keep) (*surgery.Selection, error) {
	spec, err := ff.spec(e.stdin, clock.Now())
	if err != nil {
		return nil, err
	}
	if err := ff.withLogs(e, &spec); err != nil {
		return nil, err
	}
	opt := surgery.SelectOptions{Workers: o.Workers, Keep: k, Explain: ff.explain}
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
	return sel, nil
}

// strays names the entries of a qmail queue that belong to no message:
// they are never selected or touched, but an admin must know.
func (e *env) strays(strays []string) {
	for _, s := range strays {
		fmt.Fprintf(e.stderr, "qsurgeon: warning: %s: left alone\n", s)
	}
}

// reportStrays reports the strays of a source after a walk.
func (e *env) reportStrays(src queue.Source) { e.strays(surgery.Strays(src)) }

// warn prints a per-message warning on stderr; the command goes on.
func (e *env) warn(err error) {
	fmt.Fprintf(e.stderr, "qsurgeon: warning: %v\n", err)
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

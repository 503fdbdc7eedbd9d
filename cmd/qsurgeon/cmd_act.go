package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/journal"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

// An action is one verb of queue surgery applied message by message.
type action struct {
	name    string
	usage   string
	help    string // what it means on each MTA
	example string
}

var actions = []action{
	{
		name:  "delete",
		usage: "delete the selected messages (every part: message file, logs, qmail info/local/remote/bounce)",
		help: `Postfix: what postsuper -d does: the bounce/, defer/ and trace/ logs are removed first, then the
  message file (maildrop, incoming, deferred, hold; active only while Postfix is stopped).
qmail: every part, in an order that leaves only states qmail itself tolerates if interrupted:
  bounce, local, remote, info, intd, mess (todo first for messages not yet preprocessed).
  qmail-send must be stopped; qsurgeon holds lock/sendmutex while it works.`,
		example: `   # delete everything the stolen account sent, after a preview
   qsurgeon delete --sasl-user hello@example.com
   # the backscatter: bounces to remote addresses
   qsurgeon delete --null-sender --queue-name deferred --yes`,
	},
	{
		name:  "hold",
		usage: "put the selected messages on hold (Postfix: postsuper -h; qmail has no hold queue)",
		help: `Postfix: what postsuper -h does: rename into hold/ keeping the inode (from incoming, active,
  deferred; never maildrop). Held mail is not delivered and does not expire.
qmail: qmail has no hold queue. Use 'qsurgeon quarantine DIR' (hold) and 'qsurgeon restore DIR'
  (release) instead.`,
		example: `   qsurgeon hold --sasl-user hello@example.com --yes`,
	},
	{
		name:  "release",
		usage: "release held messages back to the deferred queue (postsuper -H)",
		help: `Postfix: what postsuper -H does: hold/ID to deferred/(hash)/ID, mtime unchanged.
qmail: see 'qsurgeon restore'.`,
		example: `   qsurgeon release --queue-name hold --sender carol@example.com`,
	},
	{
		name:  "requeue",
		usage: "requeue the selected messages (Postfix: postsuper -r; qmail: retry at next start)",
		help: `Postfix: what postsuper -r does: rename into maildrop/ and set the time to now; pickup and
  cleanup then resubmit the message under a new queue ID (done recipients are dropped, the
  expiry clock restarts).
qmail: with qmail-send stopped, set the next-retry time of local/ and remote/ to now, so the
  message is retried as soon as qmail-send starts.`,
		example: `   qsurgeon requeue --queue-name deferred --recipient @contoso.test --yes
   # resend only the legitimate mail of a detached queue into the live one, 20 a second
   qsurgeon --queue /var/spool/postfix.flooded requeue --not-sasl-user hello@example.com --into /var/spool/postfix --rate 20/s`,
	},
	{
		name:  "expire",
		usage: "expire the selected messages: return them to the sender at the next attempt",
		help: `Postfix: what postsuper -e does: set the forced-expire bit (g+x); qmgr bounces the message
  with its delay reasons at the next delivery attempt.
qmail: back-date info/ID (the birth time) to now minus queuelifetime, so the next attempt is
  the last one and temporary failures bounce.`,
		example: `   qsurgeon expire --older-than 3d --not-null-sender`,
	},
}

// actCommand builds the command of one action.
func actCommand(e *env, a action) *cli.Command {
	var ff filterFlags
	var sf safetyFlags
	var inf intoFlags
	flags := append(ff.flags(), sf.flags()...)
	if a.name == "requeue" {
		cat := "Re-injection from a detached queue:"
		flags = append(flags,
			&cli.StringFlag{Name: "into", Category: cat, Destination: &inf.into, Usage: "put the selected messages into this LIVE queue directory of the same MTA, as new mail (Postfix: its maildrop/, as postsuper -r; qmail: through pid/ into todo/, as qmail-queue)"},
			&cli.StringFlag{Name: "via-qmail-queue", Category: cat, Destination: &inf.viaQmailQueue, Usage: "qmail --into: run this qmail-queue binary for each message instead (e.g. /var/qmail/bin/qmail-queue; scanners in $QMAILQUEUE wrappers then see the mail)"},
			&cli.StringFlag{Name: "rate", Category: cat, Destination: &inf.rate, Usage: "--into: at most N messages per second (e.g. 20/s, 300/m), so the live server is not flooded again"},
			&cli.StringFlag{Name: "virtualdomains", Category: cat, Destination: &inf.virtualDomains, Usage: "qmail --into: control/virtualdomains whose prefixes to strip from local recipients (default: the live queue's ../control/virtualdomains)"},
		)
	}
	return &cli.Command{
		Name:      a.name,
		Usage:     a.usage,
		ArgsUsage: " ",
		Description: a.help + `

Before acting it prints the count per queue, the total size and a sample, then asks [y/N]
(--yes skips; without a terminal and without --yes it exits with code 2 and changes nothing).
--dry-run changes nothing and prints what it would do: the file operations per kind and per
directory, then a sample (--list-ops: every one; --plan-out FILE writes the whole selection,
to act on later with 'qsurgeon apply'). An empty filter is refused
unless --all. Every change is appended to the journal.

EXAMPLES:
` + a.example,
		Flags: flags,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErr("%s takes no arguments (got %q); select messages with flags such as --id", a.name, c.Args().First())
			}
			if inf.into == "" && (inf.viaQmailQueue != "" || inf.rate != "" || inf.virtualDomains != "") {
				return usageErr("--via-qmail-queue, --rate and --virtualdomains go with --into")
			}
			var err error
			if inf.rateInterval, err = parseRate(inf.rate); err != nil {
				return err
			}
			return e.runAction(c, a.name, &ff, &sf, &inf)
		},
	}
}

// intoFlags are requeue's flags for re-injecting mail from a detached queue
// into the live queue of the same MTA (surgery.Into).
type intoFlags struct {
	into           string
	viaQmailQueue  string
	rate           string
	rateInterval   time.Duration
	virtualDomains string
}

// verb is the surgery verb of an action with its flags.
func (inf *intoFlags) verb(name string) surgery.Verb {
	v := surgery.Verb{Name: name}
	if inf.into != "" {
		v.Into = &surgery.Into{Queue: inf.into, ViaQmailQueue: inf.viaQmailQueue, Rate: inf.rateInterval, VirtualDomains: inf.virtualDomains}
	}
	return v
}

// runAction is select → execute for one action.
func (e *env) runAction(c *cli.Context, name string, ff *filterFlags, sf *safetyFlags, inf *intoFlags) error {
	o := e.opts(c)
	if all, err := ff.selectsAll(e.stdin); err != nil {
		return err
	} else if all && !sf.all {
		return fail(exitUsage, fmt.Errorf("%s with no selection would act on every message", name),
			fmt.Sprintf("select messages with filter flags (see 'qsurgeon %s --help'), or give --all to act on every message", name))
	}
	src, err := openSource(o, e.stderr, readNeeds{logs: ff.needsLogs()})
	if err != nil {
		return err
	}
	job, err := surgery.NewJob(src, inf.verb(name))
	if err != nil {
		return err
	}
	// A Postfix delete looks up the selected messages' logs while the
	// scan goes on (surgery.Job.Warmer); the rest waits for the whole
	// selection, as before.
	var sel *surgery.Selection
	if warm, stop := job.Warmer(); warm != nil {
		sel, err = e.selectMessages(c, o, ff, src, job.Keep(), warm)
		stop()
	} else {
		sel, err = e.selectMessages(c, o, ff, src, job.Keep())
	}
	if err != nil {
		return err
	}
	return e.execute(c, o, name, job, sel.Results, sf, len(sel.Errs) > 0, 0)
}

// execute acts on a selection message by message: nothing to do, --max,
// --plan-out, what is already in place, then perform (preview, confirm,
// journal, run) and the report. skipped counts messages already left alone
// before execute (apply: the message changed since the plan); they are
// reported in the final counts.
func (e *env) execute(c *cli.Context, o globalOpts, name string, job *surgery.Job, results []filter.Result, sf *safetyFlags, partial bool, skipped int) error {
	src := job.Source()
	if len(results) == 0 {
		if skipped > 0 {
			fmt.Fprintf(e.stderr, "%s: 0 done, %d skipped, 0 failed\n", name, skipped)
		} else {
			fmt.Fprintf(e.stderr, "%s: no message matches; nothing to do.\n", name)
		}
		if partial || skipped > 0 {
			return silentExit(exitPartial)
		}
		return nil
	}
	if sf.max > 0 && len(results) > sf.max {
		return fail(exitUsage, fmt.Errorf("the selection has %d messages, more than --max %d", len(results), sf.max),
			"narrow the filter, or raise --max")
	}
	if sf.planOut != "" {
		if err := surgery.WritePlan(sf.planOut, src, results); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "wrote the plan for %d message(s) to %s; act on it with: qsurgeon --queue %s apply %s %s\n",
			len(results), sf.planOut, src.Root(), sf.planOut, name)
		return nil
	}
	// What is already in place (hold on a held message, release on one
	// not held, ...) is not a failure: it is counted, never acted on.
	results, inPlace := job.Split(results)
	verb := name
	if sf.dryRun {
		verb = name + " (dry run)"
	}
	if inPlace.Total() > 0 {
		fmt.Fprintf(e.stderr, "%s: %d to %s, %s\n", verb, len(results), name, inPlace)
		if len(results) == 0 {
			fmt.Fprintf(e.stderr, "%s: nothing to do.\n", name)
			if partial {
				return silentExit(exitPartial)
			}
			return nil
		}
	}
	if len(results) <= headerAutoLimit {
		// The preview shows the Subject of its sample only; nothing
		// else of an action reads the headers (the selection held every
		// message's headers until the action ended).
		shown := results
		if sf.sample >= 0 && sf.sample < len(shown) {
			shown = shown[:sf.sample]
		}
		surgery.ReadContents(c.Context, src, shown, o.Workers)
	}
	rep, err := e.perform(c, sf, operation{
		name:       name,
		question:   fmt.Sprintf("%s %d message(s)?", name, len(results)),
		preview:    func() { preview(e.stderr, verb, results, sf.sample) },
		journalled: filterDescription(c),
		run: func(ro surgery.RunOptions) (surgery.Report, error) {
			ro.Skipped, ro.InPlace = skipped, inPlace.Total()
			if name == surgery.Delete && src.MTA() == queue.Qmail && !sf.dryRun && sf.journal != "" && sf.journal != "none" {
				// What a killed delete left half removed is ours to finish.
				unfinished, err := journal.Unfinished(sf.journal, name)
				if err != nil {
					return surgery.Report{}, fail(exitError, err, "")
				}
				ro.Unfinished = func(id string) (time.Time, bool) { t, ok := unfinished[id]; return t, ok }
			}
			defer boundActingHeap()()
			return job.Run(c.Context, results, ro)
		},
	})
	if err != nil {
		return err
	}
	return e.report(rep, len(results), sf, inPlace, partial)
}

// operation is one change the user confirms: what perform shows, asks
// and runs.
type operation struct {
	name     string // the verb, for the progress bar
	question string // the [y/N] question
	preview  func() // shows what will change
	// journalled is the selection recorded in the journal; nil: the
	// operation is not journalled.
	journalled any
	onResult   func(surgery.Outcome)
	run        func(surgery.RunOptions) (surgery.Report, error)
}

// perform is the one preview → confirm → journal → run sequence of every
// command that changes a queue; the caller reports.
func (e *env) perform(c *cli.Context, sf *safetyFlags, op operation) (surgery.Report, error) {
	op.preview()
	if !sf.yes && !sf.dryRun {
		if err := e.confirm(op.question); err != nil {
			return surgery.Report{}, err
		}
	}
	ro, done := e.runOptions(c, e.opts(c), op.name, sf, op.journalled)
	defer done()
	ro.OnResult = op.onResult
	return op.run(ro)
}

// runOptions are the options of a run: the journal when filterDesc is set
// (opened once the MTA's lock is held; one that cannot be written stops the
// action), the progress bar, the dry run. done closes both.
func (e *env) runOptions(c *cli.Context, o globalOpts, what string, sf *safetyFlags, filterDesc any) (surgery.RunOptions, func()) {
	ro := surgery.RunOptions{DryRun: sf.dryRun, Workers: o.Workers, Detached: sf.detached}
	closeJ := func() {}
	if filterDesc != nil {
		ro.Journal = e.journalOpener(c, sf, filterDesc, &closeJ)
	}
	bar := e.progress(o, what)
	if bar == nil {
		return ro, func() { closeJ() }
	}
	ro.Progress = func(done, total int64) {
		bar.ChangeMax64(total)
		_ = bar.Set64(done)
	}
	return ro, func() { _ = bar.Finish(); _ = bar.Clear(); closeJ() }
}

// journalOpener opens the journal of --journal when the run asks; *closeJ
// then closes it.
func (e *env) journalOpener(c *cli.Context, sf *safetyFlags, filterDesc any, closeJ *func()) func() (surgery.Journal, error) {
	return func() (surgery.Journal, error) {
		jr, cj, err := openJournal(sf.journal, commandLine(c), filterDesc)
		if err != nil || jr == nil {
			return nil, err
		}
		*closeJ = cj
		return jr, nil
	}
}

// report prints what a run did (a dry run: every file operation it would
// have done) and ends with the partial-failure code when a message was
// left alone or failed.
func (e *env) report(rep surgery.Report, n int, sf *safetyFlags, inPlace surgery.InPlace, partial bool) error {
	if sf.dryRun {
		printDryRun(e.stdout, rep.Verb, n, rep.Ops, sf.listOps, sf.sample)
	} else {
		already := ""
		if inPlace.Total() > 0 {
			already = inPlace.String() + ", "
		}
		fmt.Fprintf(e.stderr, "%s: %d done, %s%d skipped, %d failed\n", rep.Verb, rep.OK, already, rep.Skipped, rep.Failed)
	}
	for _, f := range rep.Failures {
		if f.Result == "skipped" {
			fmt.Fprintf(e.stderr, "qsurgeon: %s\n", printable(fmt.Sprintf("%s: skipped: %v", f.ID, f.Err)))
		} else {
			fmt.Fprintf(e.stderr, "qsurgeon: %s\n", printable(fmt.Sprintf("%s: %v", f.ID, f.Err)))
		}
	}
	if rep.Interrupted {
		fmt.Fprintln(e.stderr, "qsurgeon: interrupted: the remaining messages were not touched")
	}
	if rep.JournalErr != nil {
		done := ""
		if len(rep.Unjournaled) > 0 {
			done = "; done but not in the journal: " + strings.Join(rep.Unjournaled, " ")
		}
		return fail(exitError, fmt.Errorf("%w; stopped after %d of %d message(s)%s", rep.JournalErr, rep.Touched(), n, done),
			"free space where the journal lives (or give --journal FILE elsewhere), then run the same command again: what is done is no longer selected")
	}
	if rep.Failed > 0 || rep.Skipped > 0 || partial {
		return silentExit(exitPartial)
	}
	return nil
}

// filterDescription records the selection flags that were given.
func filterDescription(c *cli.Context) map[string]any {
	d := map[string]any{}
	for _, name := range c.FlagNames() {
		if !c.IsSet(name) {
			continue
		}
		switch v := c.Value(name).(type) {
		case *cli.StringSlice:
			d[name] = v.Value()
		default:
			d[name] = fmt.Sprint(v)
		}
	}
	return d
}

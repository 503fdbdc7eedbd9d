package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

func quarantineCommand(e *env) *cli.Command {
	var ff filterFlags
	var sf safetyFlags
	return &cli.Command{
		Name:      "quarantine",
		Usage:     "move the selected messages out of the queue, whole, into DIR with a manifest (qmail's 'hold')",
		ArgsUsage: "DIR",
		Description: `Moves every part of each selected message (Postfix: the queue file and its defer/bounce/trace
logs; qmail: mess, info, local, remote, todo, intd, bounce) into DIR by rename, so each file
keeps its inode, owner, mode and times, and appends the message to DIR/manifest.jsonl. DIR must
be outside the queue and on the same filesystem. The order of the moves leaves, after a crash
at any point, a queue the MTA accepts and every part either in the queue or in DIR;
'qsurgeon restore DIR' then finishes or undoes the job. On qmail this is how mail is held:
qmail-send must be stopped (qsurgeon holds lock/sendmutex while it works).

EXAMPLES:
   qsurgeon quarantine /var/tmp/held --sasl-user hello@example.com
   qsurgeon --queue /var/qmail/queue quarantine /var/qmail/held --sender '*@supplier.example' --yes`,
		Flags: append(ff.flags(), sf.flags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr("quarantine needs the quarantine directory DIR")
			}
			dirPath := c.Args().First()
			o := e.opts(c)
			if all, err := ff.selectsAll(e.stdin); err != nil {
				return err
			} else if all && !sf.all {
				return fail(exitUsage, errors.New("quarantine with no selection would move every message"),
					"select messages with filter flags (see 'qsurgeon quarantine --help'), or give --all to move every message")
			}
			src, err := openSource(o, e.stderr, readNeeds{logs: ff.needsLogs()})
			if err != nil {
				return err
			}
			job, err := surgery.NewJob(src, surgery.Verb{Name: surgery.Quarantine, Dir: dirPath})
			if err != nil {
				return err
			}
			sel, err := e.selectMessages(c, o, &ff, src, job.Keep())
			if err != nil {
				return err
			}
			return e.execute(c, o, "quarantine", job, sel.Results, &sf, len(sel.Errs) > 0, 0)
		},
	}
}

func restoreCommand(e *env) *cli.Command {
	var sf safetyFlags
	var into, rate string
	var idFilter cli.StringSlice
	return &cli.Command{
		Name:      "restore",
		Usage:     "put quarantined messages back into their queue (or --into a live queue); qmail's 'release'",
		ArgsUsage: "DIR",
		Description: `Reads DIR/manifest.jsonl and puts every quarantined message (or those named with --id) back:
Postfix: into the queue and path it came from (the name still matches its inode);
qmail: mess first, then bounce, local, remote and info last, named after the mess file's inode
as qmail requires (side files renamed to match). An interrupted quarantine or restore is
finished. With --into LIVE_QUEUE_DIR the messages go into another queue of the same MTA as new
mail: Postfix: a complete queue file into maildrop/ as postsuper -r does (pickup gives it a new
ID; the logs stay in DIR); qmail: into that queue under the mess inode's name. --rate N/s
spaces them out so a live server is not flooded again.

EXAMPLES:
   qsurgeon restore /var/tmp/held --id 7A6D1BE4D7
   qsurgeon restore /var/tmp/held --all --into /var/spool/postfix --rate 20/s`,
		Flags: append(sf.flags(),
			&cli.StringSliceFlag{Name: "id", Destination: &idFilter, Usage: "restore only this queue ID (repeatable)"},
			&cli.StringFlag{Name: "into", Destination: &into, Usage: "restore into this live queue directory of the same MTA, as new mail"},
			&cli.StringFlag{Name: "rate", Destination: &rate, Usage: "at most N messages per second, e.g. 20/s"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErr("restore needs the quarantine directory DIR")
			}
			dir := c.Args().First()
			if len(idFilter.Value()) == 0 && !sf.all {
				return usageErr("restore with no --id would restore every message in %s; add --all", dir)
			}
			interval, err := parseRate(rate)
			if err != nil {
				return err
			}
			o := e.opts(c)
			ropt := surgery.RestoreOptions{IDs: idFilter.Value(), Queue: into, Into: into != "", Rate: interval}
			if into == "" {
				ropt.Queue = o.Queue
			}
			r, err := surgery.NewRestore(dir, ropt)
			if err != nil {
				return err
			}
			if r.Warning != nil {
				e.warn(r.Warning)
			}
			todo := r.Entries
			if len(todo) == 0 {
				fmt.Fprintln(e.stderr, "restore: nothing quarantined matches; nothing to do.")
				return nil
			}
			if sf.max > 0 && len(todo) > sf.max {
				return fail(exitUsage, fmt.Errorf("%d messages, more than --max %d", len(todo), sf.max), "name fewer with --id, or raise --max")
			}
			mta := map[string]queue.MTA{}
			for _, en := range todo {
				mta[en.ID] = en.MTA
			}
			rep, err := e.perform(c, &sf, operation{
				name:     "restore",
				question: fmt.Sprintf("restore %d message(s)?", len(todo)),
				preview: func() {
					fmt.Fprintf(e.stderr, "restore: %d message(s) from %s\n", len(todo), dir)
					for i, en := range todo {
						if i == sf.sample {
							fmt.Fprintf(e.stderr, "  ... and %d more\n", len(todo)-sf.sample)
							break
						}
						fmt.Fprintf(e.stderr, "  %-16s %-9s %-32s %s\n", en.ID, en.QueueName, clip(printable(en.Envelope.Sender), 32), dash(printable(en.Envelope.SASLUser)))
					}
				},
				journalled: map[string]any{"restore": dir, "id": idFilter.Value(), "into": into},
				onResult: func(out surgery.Outcome) {
					switch {
					case out.Err != nil:
						fmt.Fprintf(e.stderr, "qsurgeon: %s: %s (it stays in %s)\n", out.ID, printable(out.Err.Error()), printable(dir))
						if errors.Is(out.Err, surgery.ErrOccupied) && mta[out.ID] == queue.Qmail {
							fmt.Fprintln(e.stderr, "qsurgeon: hint: on a queue copied from another filesystem, names are not inodes; run 'qsurgeon repair' on it first, then restore again")
						}
					case out.NewID != "" && !sf.dryRun:
						fmt.Fprintf(e.stderr, "restored %s as %s\n", out.ID, out.NewID)
					}
				},
				run: func(ro surgery.RunOptions) (surgery.Report, error) { return r.Run(ro) },
			})
			if err != nil {
				return err
			}
			if rep.JournalErr != nil {
				return journalStopped(rep.JournalErr, strings.Join(rep.Unjournaled, " "))
			}
			if sf.dryRun {
				for _, op := range rep.Ops {
					if op.Kind == "restore" {
						fmt.Fprintf(e.stdout, "dry run: %s\n", op.Text)
					} else {
						fmt.Fprintf(e.stdout, "  %s\n", printable(op.Text))
					}
				}
			} else {
				fmt.Fprintf(e.stderr, "restore: %d done, %d failed\n", rep.OK, rep.Failed)
			}
			if rep.Failed > 0 {
				return silentExit(exitPartial)
			}
			return nil
		},
	}
}

// parseRate parses "N/s", "N/m" or a bare N (per second) into the time
// between two messages.
func parseRate(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	num, unit, _ := strings.Cut(v, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return 0, usageErr("--rate %q: want N/s or N/m, e.g. 20/s", v)
	}
	per := time.Second
	switch unit {
	case "", "s":
	case "m", "min":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return 0, usageErr("--rate %q: want N/s or N/m, e.g. 20/s", v)
	}
	return time.Duration(float64(per) / n), nil
}

// journalStopped is the error of a restore stopped because the journal
// could not be written; id (if any) was restored but is not in the journal.
func journalStopped(err error, id string) error {
	if id != "" {
		err = fmt.Errorf("%w; stopped: %s was restored but is not in the journal, the rest was not touched", err, id)
	}
	return fail(exitError, err, "free space where the journal lives (or give --journal FILE elsewhere), then run the same restore again")
}

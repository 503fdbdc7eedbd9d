package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/quarantine"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func init() { commandFactories = append(commandFactories, quarantineCommand, restoreCommand) }

// openQuarantineDir creates (0700) and opens a quarantine directory.
func openQuarantineDir(dir string, create bool) (*safefs.FS, error) {
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	return safefs.Open(dir)
}

// checkQuarantineDir checks that dir, which may not exist yet, is outside
// the queue and on its file system (quarantine.CheckOutside), through its
// nearest existing parent when it does not exist.
func checkQuarantineDir(root, dir string) error {
	if _, err := os.Lstat(dir); err == nil {
		return quarantine.CheckOutside(root, dir)
	}
	parent, rest := dir, ""
	for {
		if _, err := os.Lstat(parent); err == nil {
			break
		}
		next := filepath.Dir(parent)
		if next == parent {
			return fmt.Errorf("%s: no existing parent directory", dir)
		}
		rest = filepath.Join(filepath.Base(parent), rest)
		parent = next
	}
	q, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	p, err := filepath.EvalSymlinks(parent)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(q, filepath.Join(p, rest)); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%w: %s and %s", quarantine.ErrInside, dir, root)
	}
	var qs, ps unix.Stat_t
	if err := unix.Stat(q, &qs); err != nil {
		return err
	}
	if err := unix.Stat(p, &ps); err != nil {
		return err
	}
	if qs.Dev != ps.Dev {
		return fmt.Errorf("%w (%s is not on the file system of %s)", safefs.ErrCrossDevice, dir, root)
	}
	return nil
}

// makeQuarantineDir creates dir 0700 (and missing parents) when it does
// not exist, checking it again once made, and returns the directories it
// made, deepest first.
func makeQuarantineDir(root, dir string) ([]string, error) {
	var made []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		made = append(made, d)
	}
	if len(made) == 0 {
		return nil, nil
	}
	undo := func() {
		for _, d := range made {
			os.Remove(d)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		undo()
		return nil, err
	}
	if err := quarantine.CheckOutside(root, dir); err != nil {
		undo()
		return nil, fail(exitUsage, err, "")
	}
	return made, nil
}

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
			if ff.empty() && !sf.all {
				return fail(exitUsage, errors.New("quarantine with no selection would move every message"),
					"select messages with filter flags (see 'qsurgeon quarantine --help'), or give --all to move every message")
			}
			src, sg, err := e.openSurgeon(o, "quarantine", readNeeds{logs: ff.needsLogs()})
			if err != nil {
				return err
			}
			abs, _ := filepath.Abs(dirPath)
			// DIR is made only once the MTA's lock is held (prepare): a
			// refused command leaves no trace. Until then it is checked
			// through its nearest existing parent.
			if err := checkQuarantineDir(src.Root(), abs); err != nil {
				return usageErr("%v", err)
			}
			sel, err := e.selectMessages(c, o, &ff, src, keepEnvelope)
			if err != nil {
				return err
			}
			return e.execute(c, o, "quarantine", &quarantineSurgeon{inner: sg, dir: abs}, sel.results, &sf, len(sel.errs) > 0, 0)
		},
	}
}

// quarantineSurgeon moves whole messages into a quarantine directory. It
// takes the MTA's lock through the inner surgeon.
type quarantineSurgeon struct {
	inner surgeon
	dir   string
	dirFS *safefs.FS
	qFS   *safefs.FS
	dry   bool
	opt   quarantine.Options
	plans []*quarantine.Plan
}

// dryRunOps is what a dry run would have moved.
func (q *quarantineSurgeon) dryRunOps() []plannedOp {
	var out []plannedOp
	for _, p := range q.plans {
		for _, s := range p.Steps {
			out = append(out, plannedOp{kind: string(s.Op), where: fmt.Sprintf("%s:%s", s.Root, firstDir(s.Path)), text: s.String()})
		}
	}
	return out
}

func (q *quarantineSurgeon) source() queue.Source  { return q.inner.source() }
func (q *quarantineSurgeon) supports(string) error { return nil }

func (q *quarantineSurgeon) prepare(action string, dryRun bool) (func(), error) {
	release, err := q.inner.prepare(action, dryRun)
	if err != nil {
		return nil, err
	}
	if ps, ok := q.inner.(*postfixSurgeon); ok {
		q.opt.MasterRunning = ps.opt.MasterRunning
	}
	q.dry = dryRun
	made, err := makeQuarantineDir(q.source().Root(), q.dir)
	if err != nil {
		release()
		return nil, err
	}
	if len(made) > 0 && dryRun {
		// Plans need the directory; a dry run leaves no trace.
		inner := release
		release = func() {
			for _, d := range made {
				os.Remove(d)
			}
			inner()
		}
	}
	if q.dirFS, err = openQuarantineDir(q.dir, false); err != nil {
		release()
		return nil, err
	}
	if q.qFS, err = safefs.Open(q.source().Root()); err != nil {
		q.dirFS.Close()
		release()
		return nil, err
	}
	return func() {
		q.qFS.Close()
		q.dirFS.Close()
		release()
	}, nil
}

// act ignores mut: the moves cross two roots, so the dry run is enforced
// here by planning without executing.
func (q *quarantineSurgeon) act(action string, m *queue.Message, _ queue.Mutator) error {
	if q.dry {
		p, err := quarantine.PlanQuarantine(q.source(), m, q.dirFS, q.qFS, q.opt)
		if err != nil {
			return err
		}
		q.plans = append(q.plans, p)
		return nil
	}
	_, err := quarantine.Quarantine(q.source(), m, q.dirFS, q.qFS, q.opt)
	if errors.Is(err, quarantine.ErrChanged) {
		return fmt.Errorf("%w: %v", errSkipped, err)
	}
	return err
}

// actBatch plans every message, then moves them with two manifest writes
// in all (quarantine.ExecuteBatch) instead of two fsyncs per message.
func (q *quarantineSurgeon) actBatch(action string, msgs []*queue.Message) []error {
	errs := make([]error, len(msgs))
	var plans []*quarantine.Plan
	var idx []int
	for i, m := range msgs {
		p, err := quarantine.PlanQuarantine(q.source(), m, q.dirFS, q.qFS, q.opt)
		if err != nil {
			errs[i] = skipIfChanged(err)
			continue
		}
		plans = append(plans, p)
		idx = append(idx, i)
	}
	for j, err := range quarantine.ExecuteBatch(plans, &quarantine.Disk{Queue: q.qFS, Dir: q.dirFS}, nil) {
		errs[idx[j]] = skipIfChanged(err)
	}
	return errs
}

func skipIfChanged(err error) error {
	if errors.Is(err, quarantine.ErrChanged) {
		return fmt.Errorf("%w: %v", errSkipped, err)
	}
	return err
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
			entries, err := quarantine.ReadManifest(filepath.Join(dir, quarantine.ManifestName))
			if err != nil && len(entries) == 0 {
				return fail(exitError, err, "DIR must be a directory written by 'qsurgeon quarantine'")
			} else if err != nil {
				e.warn(err)
			}
			want := map[string]bool{}
			for _, id := range idFilter.Value() {
				want[id] = true
			}
			var todo []quarantine.Entry
			for _, en := range entries {
				if en.State == quarantine.StateRestored || (len(want) > 0 && !want[en.ID]) {
					continue
				}
				todo = append(todo, en)
			}
			if len(todo) == 0 {
				fmt.Fprintln(e.stderr, "restore: nothing quarantined matches; nothing to do.")
				return nil
			}
			fmt.Fprintf(e.stderr, "restore: %d message(s) from %s\n", len(todo), dir)
			for i, en := range todo {
				if i == sf.sample {
					fmt.Fprintf(e.stderr, "  ... and %d more\n", len(todo)-sf.sample)
					break
				}
				fmt.Fprintf(e.stderr, "  %-16s %-9s %-32s %s\n", en.ID, en.QueueName, clip(printable(en.Envelope.Sender), 32), dash(printable(en.Envelope.SASLUser)))
			}
			if sf.max > 0 && len(todo) > sf.max {
				return usageErr("%d messages, more than --max %d", len(todo), sf.max)
			}
			if !sf.yes && !sf.dryRun {
				if err := e.confirm(fmt.Sprintf("restore %d message(s)?", len(todo))); err != nil {
					return err
				}
			}
			dirFS, err := openQuarantineDir(dir, false)
			if err != nil {
				return err
			}
			defer dirFS.Close()
			var run journalRun = nopRun{}
			if !sf.dryRun {
				jr, closeJ, err := openJournal(sf.journal, commandLine(c), map[string]any{"restore": dir, "id": idFilter.Value(), "into": into})
				if err != nil {
					return err
				}
				defer closeJ()
				if jr != nil {
					run = jr
				}
			}
			targets := map[string]*restoreTarget{}
			defer func() {
				for _, t := range targets {
					t.close()
				}
			}()
			failed := 0
			last := time.Time{}
			for _, en := range todo {
				root := en.QueueDir
				if into != "" {
					root = into
				} else if o := e.opts(c); o.Queue != "" {
					root = o.Queue
				}
				t := targets[root]
				if t == nil {
					if t, err = openRestoreTarget(root, en.MTA, sf.dryRun); err != nil {
						return err
					}
					targets[root] = t
				}
				if interval > 0 && !last.IsZero() {
					time.Sleep(time.Until(last.Add(interval)))
				}
				last = time.Now()
				opt := quarantine.RestoreOptions{Into: into != "", Layout: t.layout}
				p, err := quarantine.PlanRestore(en, dirFS, t.fs, opt)
				if err == nil && sf.dryRun {
					fmt.Fprintf(e.stdout, "dry run: restore %s:\n", en.ID)
					for _, s := range p.Steps {
						fmt.Fprintf(e.stdout, "  %s\n", printable(fmt.Sprint(s)))
					}
					continue
				}
				if err == nil {
					if jerr := run.Starting("restore", []string{en.ID}, []string{en.QueueName}); jerr != nil {
						return journalStopped(jerr, "")
					}
					_, err = p.Execute(&quarantine.Disk{Queue: t.fs, Dir: dirFS})
				}
				if err != nil {
					failed++
					fmt.Fprintf(e.stderr, "qsurgeon: %s: %s (it stays in %s)\n", en.ID, printable(err.Error()), printable(dir))
					if errors.Is(err, quarantine.ErrOccupied) && en.MTA == queue.Qmail {
						fmt.Fprintln(e.stderr, "qsurgeon: hint: on a queue copied from another filesystem, names are not inodes; run 'qsurgeon repair' on it first, then restore again")
					}
					if jerr := run.Record(en.ID, en.QueueName, "restore", "failed", err); jerr != nil {
						return journalStopped(jerr, en.ID)
					}
					continue
				}
				if jerr := run.Record(en.ID, en.QueueName, "restore", "ok", nil); jerr != nil {
					return journalStopped(jerr, en.ID)
				}
				if p.NewID != "" && p.NewID != en.ID {
					fmt.Fprintf(e.stderr, "restored %s as %s\n", en.ID, p.NewID)
				}
			}
			if err := run.End(map[string]int{"restored": len(todo) - failed, "failed": failed}); err != nil {
				return journalStopped(err, "")
			}
			if !sf.dryRun {
				fmt.Fprintf(e.stderr, "restore: %d done, %d failed\n", len(todo)-failed, failed)
			}
			if failed > 0 {
				return silentExit(exitPartial)
			}
			return nil
		},
	}
}

// restoreTarget is a queue messages are restored into, opened once, with
// the MTA's lock held.
type restoreTarget struct {
	fs     *safefs.FS
	layout *qmailq.Layout
	unlock func()
}

func (t *restoreTarget) close() {
	t.fs.Close()
	if t.unlock != nil {
		t.unlock()
	}
}

func openRestoreTarget(root string, mta queue.MTA, dryRun bool) (*restoreTarget, error) {
	t := &restoreTarget{}
	switch mta {
	case queue.Qmail:
		if !qmailq.IsQmailQueue(root) {
			return nil, fail(exitNoQueue, fmt.Errorf("%s is not a qmail queue", root), "")
		}
		l, err := qmailq.DetectLayout(root)
		if err != nil {
			return nil, err
		}
		t.layout = l
		if !dryRun {
			unlock, err := qmailq.LockSend(root)
			if err != nil {
				return nil, fail(exitLocked, err, "stop qmail-send first: svc -d /service/qmail-send, or systemctl stop qmail")
			}
			t.unlock = unlock
		}
	case queue.Postfix:
		if !postfixq.IsPostfixQueue(root) {
			return nil, fail(exitNoQueue, fmt.Errorf("%s is not a Postfix queue", root), "")
		}
	}
	fsys, err := safefs.Open(root)
	if err != nil {
		if t.unlock != nil {
			t.unlock()
		}
		return nil, err
	}
	t.fs = fsys
	return t, nil
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

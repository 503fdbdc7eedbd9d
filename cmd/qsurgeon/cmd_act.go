package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/journal"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/schollz/progressbar/v3"
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

func init() {
	for _, a := range actions {
		commandFactories = append(commandFactories, func(e *env) *cli.Command { return actCommand(e, a) })
	}
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

// runAction is plan → preview → confirm → execute for one action.
func (e *env) runAction(c *cli.Context, name string, ff *filterFlags, sf *safetyFlags, inf *intoFlags) error {
	o := e.opts(c)
	if ff.empty() && !sf.all {
		return fail(exitUsage, fmt.Errorf("%s with no selection would act on every message", name),
			fmt.Sprintf("select messages with filter flags (see 'qsurgeon %s --help'), or give --all to act on every message", name))
	}
	src, sg, err := e.openSurgeon(o, name, readNeeds{logs: ff.needsLogs()})
	if err != nil {
		return err
	}
	if inf.into != "" {
		if sg, err = newIntoSurgeon(sg, inf); err != nil {
			return err
		}
	}
	k := keepSurgery
	if inf.into != "" {
		k = keepEnvelope
	}
	sel, err := e.selectMessages(c, o, ff, src, k)
	if err != nil {
		return err
	}
	return e.execute(c, o, name, sg, sel.results, sf, len(sel.errs) > 0, 0)
}

// execute runs an action over a selection: preview, confirmation, the
// MTA's lock, the journal, and one mutation per message.
// skipped counts messages already left alone before execute (apply: the
// message changed since the plan); they are reported in the final counts.
func (e *env) execute(c *cli.Context, o globalOpts, name string, sg surgeon, results []filter.Result, sf *safetyFlags, partial bool, skipped int) error {
	src := sg.source()
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
		if err := writePlan(sf.planOut, src, results); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "wrote the plan for %d message(s) to %s; act on it with: qsurgeon --queue %s apply %s %s\n",
			len(results), sf.planOut, src.Root(), sf.planOut, name)
		return nil
	}
	// What is already in place (hold on a held message, release on one
	// not held, ...) is not a failure: it is counted, never acted on.
	results, inPlace := splitInPlace(sg, name, results)
	verb := name
	if sf.dryRun {
		verb = name + " (dry run)"
	}
	if len(inPlace.counts) > 0 {
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
		readContents(c.Context, src, results, o.Workers, func(error) {})
	}
	preview(e.stderr, verb, results, sf.sample)
	if !sf.yes && !sf.dryRun {
		if err := e.confirm(fmt.Sprintf("%s %d message(s)?", name, len(results))); err != nil {
			return err
		}
	}
	mut, dry, closeFS, err := mutatorFor(src.Root(), sf.dryRun)
	if err != nil {
		return err
	}
	defer closeFS()
	if qs, ok := sg.(*qmailSurgeon); ok {
		qs.opt.AllowYoungOrphan = sf.detached
		if name == "delete" && !sf.dryRun && sf.journal != "" && sf.journal != "none" {
			// What a killed delete left half removed is ours to finish.
			unfinished, err := journal.Unfinished(sf.journal, name)
			if err != nil {
				return fail(exitError, err, "")
			}
			qs.opt.Unfinished = func(id string) (time.Time, bool) { t, ok := unfinished[id]; return t, ok }
		}
	}
	release, err := sg.prepare(name, sf.dryRun)
	if err != nil {
		return err
	}
	defer release()
	var run journalRun = nopRun{}
	if !sf.dryRun {
		jr, closeJ, err := openJournal(sf.journal, commandLine(c), filterDescription(c))
		if err != nil {
			return err
		}
		defer closeJ()
		if jr != nil {
			run = jr
		}
	}
	out := outcome{skipped: skipped}
	var failures []string
	var mu sync.Mutex // guards out, failures and the journal order
	bar := e.progress(o, name)
	if bar != nil {
		bar.ChangeMax64(int64(len(results)))
		defer func() { _ = bar.Finish(); _ = bar.Clear() }()
	}
	// A journal that cannot be written stops the action before the next
	// message: ctx is cancelled, and the message whose record failed is
	// named in the error.
	ctx, stop := context.WithCancel(c.Context)
	defer stop()
	var jerr error
	var unjournaled []string
	record := func(m *queue.Message, err error) {
		mu.Lock()
		defer mu.Unlock()
		result := "ok"
		switch {
		case err == nil:
			out.ok++
		case errors.Is(err, errSkipped):
			out.skipped++
			result = "skipped"
			failures = append(failures, fmt.Sprintf("%s: skipped: %v", m.ID, err))
		default:
			out.failed++
			result = "failed"
			failures = append(failures, fmt.Sprintf("%s: %v", m.ID, err))
		}
		if rerr := run.Record(m.ID, m.Queue, name, result, err); rerr != nil {
			unjournaled = append(unjournaled, m.ID+" ("+result+")")
			if jerr == nil {
				jerr = rerr
				stop()
			}
		}
	}
	// starting journals the messages about to be acted on before
	// anything is done to them; false stops the action.
	starting := func(msgs []*queue.Message) bool {
		ids, qs := make([]string, len(msgs)), make([]string, len(msgs))
		for i, m := range msgs {
			ids[i], qs[i] = m.ID, m.Queue
		}
		mu.Lock()
		defer mu.Unlock()
		if jerr != nil {
			return false
		}
		if err := run.Starting(name, ids, qs); err != nil {
			jerr = err
			stop()
			return false
		}
		return true
	}
	batcher, batched := sg.(batchSurgeon)
	par, parallel := sg.(parallelSurgeon)
	parallel = parallel && !sf.dryRun && par.parallel(name)
	if batched && !sf.dryRun {
		for i := 0; i < len(results); {
			if ctx.Err() != nil {
				if jerr == nil {
					failures = append(failures, "interrupted: the remaining messages were not touched")
				}
				break
			}
			if bar != nil {
				_ = bar.Set64(int64(i))
			}
			n := min(len(results)-i, batchSize)
			msgs := make([]*queue.Message, n)
			for j := range msgs {
				msgs[j] = results[i+j].Msg
			}
			if !starting(msgs) {
				break
			}
			for j, err := range batcher.actBatch(name, msgs) {
				record(msgs[j], err)
			}
			i += n
		}
	} else {
		workers := 1 // one at a time, in the selection's order
		if parallel {
			workers = o.Workers
		}
		if !actEach(ctx, results, workers, bar, func(m *queue.Message) {
			if starting([]*queue.Message{m}) {
				record(m, sg.act(name, m, mut))
			}
		}) && jerr == nil {
			failures = append(failures, "interrupted: the remaining messages were not touched")
		}
		if parallel {
			slices.Sort(failures) // workers finish in any order; report in ID order
		}
	}
	if jerr == nil {
		jerr = run.End(map[string]int{"ok": out.ok, "failed": out.failed, "skipped": out.skipped, "in_place": inPlace.total()})
	}
	if dry != nil {
		ops := opsOf(dry.Base, dry.Ops(), "", "")
		if d, ok := sg.(interface{ dryRunOps() []plannedOp }); ok {
			ops = append(ops, d.dryRunOps()...)
		}
		printDryRun(e.stdout, name, len(results), ops, sf.listOps, sf.sample)
	} else {
		already := ""
		if len(inPlace.counts) > 0 {
			already = inPlace.String() + ", "
		}
		fmt.Fprintf(e.stderr, "%s: %d done, %s%d skipped, %d failed\n", name, out.ok, already, out.skipped, out.failed)
	}
	for _, f := range failures {
		fmt.Fprintf(e.stderr, "qsurgeon: %s\n", printable(fmt.Sprint(f)))
	}
	if jerr != nil {
		done := ""
		if len(unjournaled) > 0 {
			done = "; done but not in the journal: " + strings.Join(unjournaled, " ")
		}
		return fail(exitError, fmt.Errorf("%w; stopped after %d of %d message(s)%s", jerr, out.ok+out.failed+out.skipped, len(results), done),
			"free space where the journal lives (or give --journal FILE elsewhere), then run the same command again: what is done is no longer selected")
	}
	if out.failed > 0 || out.skipped > 0 || partial {
		return silentExit(exitPartial)
	}
	return nil
}

// inPlaceSurgeon is a surgeon that can tell, from what was read, that an
// action would change nothing on a message (hold on a held message): the
// reason, e.g. "already held", or "".
type inPlaceSurgeon interface {
	inPlace(action string, m *queue.Message) string
}

// inPlaceCounts counts the messages left as they are, per reason, in the
// order the reasons were first met.
type inPlaceCounts struct {
	reasons []string
	counts  map[string]int
}

func (p inPlaceCounts) total() int {
	n := 0
	for _, c := range p.counts {
		n += c
	}
	return n
}

// String is "199 already held" or "2 already held, 1 in maildrop".
func (p inPlaceCounts) String() string {
	parts := make([]string, 0, len(p.reasons))
	for _, r := range p.reasons {
		parts = append(parts, fmt.Sprintf("%d %s", p.counts[r], r))
	}
	return strings.Join(parts, ", ")
}

// splitInPlace separates the messages an action would change from those
// already in place.
func splitInPlace(sg surgeon, action string, results []filter.Result) ([]filter.Result, inPlaceCounts) {
	var p inPlaceCounts
	ip, ok := sg.(inPlaceSurgeon)
	if !ok {
		return results, p
	}
	out := results[:0:0]
	for _, r := range results {
		why := ip.inPlace(action, r.Msg)
		if why == "" {
			out = append(out, r)
			continue
		}
		if p.counts == nil {
			p.counts = map[string]int{}
		}
		if p.counts[why] == 0 {
			p.reasons = append(p.reasons, why)
		}
		p.counts[why]++
	}
	return out, p
}

// journalRun is what execute needs of a journal run.
type journalRun interface {
	Record(id, queueName, action, result string, err error) error
	Starting(action string, ids, queues []string) error
	End(summary any) error
}

// nopRun is the journalRun of a dry run or --journal none.
type nopRun struct{}

func (nopRun) Record(string, string, string, string, error) error { return nil }
func (nopRun) Starting(string, []string, []string) error          { return nil }
func (nopRun) End(any) error                                      { return nil }

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

// batchSize is how many messages a batchSurgeon handles per call.
const batchSize = 1000

// batchSurgeon acts on many messages at once where one-by-one would cost a
// fsync per message (quarantine's manifest).
type batchSurgeon interface {
	actBatch(action string, msgs []*queue.Message) []error
}

// parallelSurgeon is a surgeon whose action on one message never touches
// another message's files, so several messages can be acted on at once
// (Postfix: each message is its own file and logs, as for postsuper). The
// steps for one message keep their order.
type parallelSurgeon interface {
	parallel(action string) bool
}

// actEach runs act over every selected message from workers goroutines
// (filter.DefaultWorkers when <= 0; one keeps the selection's order). Deleting or renaming a
// file is a directory update and an inode update in the kernel; with the
// queue's messages spread over hash directories, a few at a time keep both
// CPUs busy where one at a time waits. It reports false when ctx was
// cancelled before every message was taken (those not taken were not
// touched).
func actEach(ctx context.Context, results []filter.Result, workers int, bar *progressbar.ProgressBar, act func(*queue.Message)) bool {
	if workers <= 0 {
		workers = filter.DefaultWorkers()
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(results)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(results)) {
					return
				}
				act(results[i].Msg)
				if n := done.Add(1); bar != nil && n%64 == 0 {
					_ = bar.Set64(n)
				}
			}
		}()
	}
	wg.Wait()
	return next.Load() >= int64(len(results))
}

// errSkipped marks a message left alone on purpose (it changed since it
// was selected, or the MTA state forbids touching it).
var errSkipped = errors.New("left alone")

// surgeon applies actions to single messages of one MTA's queue.
type surgeon interface {
	source() queue.Source
	// supports says whether an action exists for this MTA.
	supports(action string) error
	// prepare checks the MTA's state and takes its lock for the action;
	// release gives the lock back.
	prepare(action string, dryRun bool) (release func(), err error)
	act(action string, m *queue.Message, mut queue.Mutator) error
}

// openSurgeon opens the queue and its MTA's surgeon, refusing an action
// that does not exist on that MTA.
func (e *env) openSurgeon(o globalOpts, action string, need readNeeds) (queue.Source, surgeon, error) {
	src, err := openSource(o, e.stderr, need)
	if err != nil {
		return nil, nil, err
	}
	sg, err := surgeonFor(src)
	if err != nil {
		return nil, nil, err
	}
	if err := sg.supports(action); err != nil {
		return nil, nil, fail(exitUsage, err, "")
	}
	return src, sg, nil
}

// surgeonFor returns the surgeon of the source's MTA.
func surgeonFor(src queue.Source) (surgeon, error) {
	switch src.MTA() {
	case queue.Postfix:
		return newPostfixSurgeon(src)
	case queue.Qmail:
		return newQmailSurgeon(src)
	}
	return nil, fmt.Errorf("no surgeon for %s", src.MTA())
}

// joinHints joins several hints into one hint line.
func joinHints(h ...string) string { return strings.Join(h, "; ") }

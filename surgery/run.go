package surgery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/queue"
)

// The verbs of queue surgery on selected messages.
const (
	Delete     = "delete"
	Hold       = "hold"
	Release    = "release"
	Requeue    = "requeue"
	Expire     = "expire"
	Quarantine = "quarantine"
)

// Verbs are the verbs that act on a selection one message at a time, in
// the order commands list them (apply accepts these).
var Verbs = []string{Delete, Hold, Release, Requeue, Expire}

// Verb is what Run does to each selected message.
type Verb struct {
	// Name is one of Delete, Hold, Release, Requeue, Expire, Quarantine.
	Name string
	// Dir is Quarantine's directory (created when the run starts, outside
	// the queue, on its file system).
	Dir string
	// Into, with Requeue, puts the messages into another, live queue of
	// the same MTA as new mail instead.
	Into *Into
}

// Journal records what a run did (internal/journal): the messages about
// to be acted on before anything is done to them (Starting), then one line
// per message. A journal that cannot be written stops the run.
type Journal interface {
	Starting(action string, ids, queues []string) error
	Record(id, queueName, action, result string, err error) error
	End(summary any) error
}

// RunOptions tune Run.
type RunOptions struct {
	// DryRun changes nothing: every change goes to a recorder instead,
	// and Report.Ops lists them.
	DryRun bool
	// Workers acting at once where a verb allows it (0: the default).
	Workers int
	// Detached: the qmail queue is detached or copied, so fragments
	// younger than 36 hours may be acted on (no qmail-queue can be
	// writing them).
	Detached bool
	// Journal, when set, opens the journal once the MTA's lock is held
	// (a journal that cannot be opened stops the run before any change);
	// it gets a line per message and the summary. A dry run never opens it.
	Journal func() (Journal, error)
	// Progress is called with the number of messages done.
	Progress queue.Progress
	// OnResult is called after each message, one call at a time.
	OnResult func(Outcome)
	// Skipped counts messages the caller already left alone (apply: they
	// changed since the plan); they count in the Report and the journal.
	Skipped int
	// InPlace counts messages the verb would not change (Job.Split);
	// the journal's summary records it.
	InPlace int
	// Unfinished, for qmail delete, names the messages an earlier delete
	// (per the journal) started on and never finished, with when it
	// started: their fragments are finished without --detached.
	Unfinished func(id string) (started time.Time, ok bool)
}

// Outcome is what happened to one message.
type Outcome struct {
	ID, Queue string
	// Result is "ok", "skipped" or "failed".
	Result string
	Err    error
	// NewID is the message's name afterwards when it changed (restore).
	NewID string
}

// Report is what a run did.
type Report struct {
	Verb                string
	OK, Skipped, Failed int
	// Failures are the skipped and failed messages, in ID order (or the
	// order they were acted on for one-at-a-time verbs).
	Failures []Outcome
	// Interrupted: the context ended before every message was taken;
	// those not taken were not touched.
	Interrupted bool
	// Ops are the changes a dry run would have made, in order.
	Ops []Op
	// JournalErr stopped the run before the next message: the journal
	// could not be written. Unjournaled are the messages done (as
	// "ID (result)") whose record failed.
	JournalErr  error
	Unjournaled []string
}

// Touched is how many messages were acted on (done, skipped or failed).
func (r Report) Touched() int { return r.OK + r.Skipped + r.Failed }

// Partial reports whether some message was not done.
func (r Report) Partial() bool { return r.Failed > 0 || r.Skipped > 0 || r.Interrupted }

// actor applies one verb to single messages of one queue.
type actor interface {
	// prepare checks the MTA's state, takes its lock and opens the
	// mutation seam (the recorder for a dry run); release undoes it.
	prepare(o RunOptions) (release func(), err error)
	act(m *queue.Message) error
	// parallel reports whether messages can be acted on concurrently.
	parallel() bool
	// ops lists what a dry run recorded.
	ops() []Op
}

// inPlacer is an actor that can tell, from what was read, that its verb
// would change nothing on a message (hold on a held message): the reason,
// e.g. "already held", or "".
type inPlacer interface {
	inPlace(m *queue.Message) string
}

// InPlace counts the messages a verb leaves as they are, per reason, in
// the order the reasons were first met.
type InPlace struct {
	Reasons []string
	Counts  map[string]int
}

// Total is how many messages are in place.
func (p InPlace) Total() int {
	n := 0
	for _, c := range p.Counts {
		n += c
	}
	return n
}

// String is "199 already held" or "2 already held, 1 in maildrop".
func (p InPlace) String() string {
	parts := make([]string, 0, len(p.Reasons))
	for _, r := range p.Reasons {
		parts = append(parts, fmt.Sprintf("%d %s", p.Counts[r], r))
	}
	return strings.Join(parts, ", ")
}

// Split separates the messages the job would change from those already in
// place (what postsuper itself passes over without a word: hold on a held
// message, release on one not held, ...), which are never acted on.
func (j *Job) Split(results []filter.Result) ([]filter.Result, InPlace) {
	var p InPlace
	ip, ok := j.act.(inPlacer)
	if !ok {
		return results, p
	}
	out := results[:0:0]
	for _, r := range results {
		why := ip.inPlace(r.Msg)
		if why == "" {
			out = append(out, r)
			continue
		}
		if p.Counts == nil {
			p.Counts = map[string]int{}
		}
		if p.Counts[why] == 0 {
			p.Reasons = append(p.Reasons, why)
		}
		p.Counts[why]++
	}
	return out, p
}

// batchActor acts on many messages at once where one by one would cost a
// fsync per message (quarantine's manifest).
type batchActor interface {
	actBatch(msgs []*queue.Message) []error
}

// batchSize is how many messages a batchActor handles per call.
const batchSize = 1000

// Job is a verb bound to a queue, checked before anything is selected.
type Job struct {
	src  queue.Source
	verb Verb
	act  actor
}

// NewJob checks that verb exists on src's MTA (ErrUsage when not) and
// binds it. Nothing is changed until Run.
func NewJob(src queue.Source, verb Verb) (*Job, error) {
	a, err := newMTAActor(src, verb.Name)
	if err != nil {
		return nil, err
	}
	j := &Job{src: src, verb: verb, act: a}
	switch {
	case verb.Name == Quarantine:
		if j.act, err = newQuarantineActor(a, verb.Dir); err != nil {
			return nil, err
		}
	case verb.Into != nil:
		if verb.Name != Requeue {
			return nil, mark(ErrUsage, fmt.Errorf("--into goes with requeue, not %s", verb.Name))
		}
		if j.act, err = newIntoActor(a, verb.Into); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// Keep is how much of each message the job needs kept from the selection.
func (j *Job) Keep() Keep {
	if j.verb.Name == Quarantine || j.verb.Into != nil {
		return KeepEnvelope
	}
	return KeepSurgery
}

// Source is the queue the job acts on.
func (j *Job) Source() queue.Source { return j.src }

// Verb is the verb the job applies.
func (j *Job) Verb() Verb { return j.verb }

// Run is NewJob and Job.Run on a selection.
func Run(ctx context.Context, sel *Selection, verb Verb, o RunOptions) (Report, error) {
	j, err := NewJob(sel.Source, verb)
	if err != nil {
		return Report{Verb: verb.Name}, err
	}
	return j.Run(ctx, sel.Results, o)
}

// Run acts on every message of results: it takes the MTA's lock, then
// acts message by message (several at once where the verb allows), each
// outcome journaled. Per-message failures are in the Report; the error is
// for what stopped the run before it started (the MTA's lock).
func (j *Job) Run(ctx context.Context, results []filter.Result, o RunOptions) (Report, error) {
	rep := Report{Verb: j.verb.Name, Skipped: o.Skipped}
	if len(results) == 0 {
		return rep, nil
	}
	release, err := j.act.prepare(o)
	if err != nil {
		return rep, err
	}
	defer release()
	journal, err := openJournal(o)
	if err != nil {
		return rep, err
	}
	// A journal that cannot be written stops the action before the next
	// message: ctx is cancelled, and the message whose record failed is
	// named in the report.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex // guards rep and the journal's order
	record := func(m *queue.Message, err error) {
		mu.Lock()
		defer mu.Unlock()
		out := Outcome{ID: m.ID, Queue: m.Queue, Result: "ok", Err: err}
		switch {
		case err == nil:
			rep.OK++
		case errors.Is(err, ErrSkipped):
			rep.Skipped++
			out.Result = "skipped"
		default:
			rep.Failed++
			out.Result = "failed"
		}
		if rerr := journal.Record(m.ID, m.Queue, j.verb.Name, out.Result, err); rerr != nil {
			rep.Unjournaled = append(rep.Unjournaled, m.ID+" ("+out.Result+")")
			if rep.JournalErr == nil {
				rep.JournalErr = rerr
				stop()
			}
		}
		if err != nil {
			rep.Failures = append(rep.Failures, out)
		}
		if o.OnResult != nil {
			o.OnResult(out)
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
		if rep.JournalErr != nil {
			return false
		}
		if err := journal.Starting(j.verb.Name, ids, qs); err != nil {
			rep.JournalErr = err
			stop()
			return false
		}
		return true
	}
	batcher, batched := j.act.(batchActor)
	if batched && !o.DryRun {
		for i := 0; i < len(results); {
			if ctx.Err() != nil {
				rep.Interrupted = rep.JournalErr == nil
				break
			}
			if o.Progress != nil {
				o.Progress(int64(i), int64(len(results)))
			}
			n := min(len(results)-i, batchSize)
			msgs := make([]*queue.Message, n)
			for k := range msgs {
				msgs[k] = results[i+k].Msg
			}
			if !starting(msgs) {
				break
			}
			for k, err := range batcher.actBatch(msgs) {
				record(msgs[k], err)
			}
			i += n
		}
	} else {
		workers := 1 // one at a time, in the selection's order
		parallel := j.act.parallel() && !o.DryRun
		var order []int32
		if parallel {
			workers = o.Workers
			order = spreadByDir(results)
		}
		if !actEach(ctx, results, order, workers, o.Progress, func(m *queue.Message) {
			if starting([]*queue.Message{m}) {
				record(m, j.act.act(m))
			}
		}) && rep.JournalErr == nil {
			rep.Interrupted = true
		}
		if parallel {
			// Workers finish in any order; report in ID order.
			slices.SortFunc(rep.Failures, func(a, b Outcome) int {
				return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Err.Error(), b.Err.Error()))
			})
		}
	}
	if rep.JournalErr == nil {
		rep.JournalErr = journal.End(map[string]int{"ok": rep.OK, "failed": rep.Failed, "skipped": rep.Skipped, "in_place": o.InPlace})
	}
	if o.DryRun {
		rep.Ops = j.act.ops()
	}
	return rep, nil
}

// openJournal opens the run's journal, or the one that records nothing.
func openJournal(o RunOptions) (Journal, error) {
	if o.Journal == nil || o.DryRun {
		return nopJournal{}, nil
	}
	j, err := o.Journal()
	if err != nil || j == nil {
		return nopJournal{}, err
	}
	return j, nil
}

// nopJournal is the journal of a dry run or of no journal.
type nopJournal struct{}

func (nopJournal) Starting(string, []string, []string) error          { return nil }
func (nopJournal) Record(string, string, string, string, error) error { return nil }
func (nopJournal) End(any) error                                      { return nil }

// actEach runs act over every selected message from workers goroutines
// (filter.DefaultWorkers when <= 0; one keeps the selection's order), in
// the order of order's indices when it is not nil (spreadByDir), like
// restic's ParallelRemove. Deleting or renaming a file is a directory
// update and an inode update in the kernel; with the queue's messages
// spread over hash directories, a few at a time keep both CPUs busy where
// one at a time waits. It reports false when ctx was cancelled before
// every message was taken (those not taken were not touched).
func actEach(ctx context.Context, results []filter.Result, order []int32, workers int, progress queue.Progress, act func(*queue.Message)) bool {
	if workers <= 0 {
		workers = filter.DefaultWorkers()
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	total := int64(len(results))
	for range min(workers, len(results)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				if order != nil {
					i = int64(order[i])
				}
				act(results[i].Msg)
				if n := done.Add(1); progress != nil && n%64 == 0 {
					progress(n, total)
				}
			}
		}()
	}
	wg.Wait()
	return next.Load() >= total
}

// seam opens the one mutation seam of a directory: the root-confined
// mutator, or for a dry run the recorder that reads through it and
// changes nothing. Every change a verb makes goes through a seam.
type seam struct {
	fs  *safefs.FS
	dry *safefs.DryRun
	mut queue.Mutator
}

func openSeam(root string, dryRun bool) (*seam, error) {
	fsys, err := safefs.Open(root)
	if err != nil {
		return nil, err
	}
	s := &seam{fs: fsys, mut: fsys}
	if dryRun {
		s.dry = safefs.NewDryRun(fsys)
		s.mut = s.dry
	}
	return s, nil
}

func (s *seam) close() { s.fs.Close() }

// ops lists what the recorder recorded (none for a real seam), leaving
// out operations on files that are not there (opsOf); wherePrefix and
// textPrefix mark another queue's operations ("live ").
func (s *seam) ops(wherePrefix, textPrefix string) []Op {
	if s == nil || s.dry == nil {
		return nil
	}
	return opsOf(s.fs, s.dry.Ops(), wherePrefix, textPrefix)
}

// skipped marks err as a message left alone on purpose.
func skipped(err error, note string) error {
	if note != "" {
		return fmt.Errorf("%w: %v (%s)", ErrSkipped, err, note)
	}
	return fmt.Errorf("%w: %v", ErrSkipped, err)
}

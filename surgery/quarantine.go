package surgery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/quarantine"
	"github.com/qsurgeon/qsurgeon/queue"
)

// quarantineActor moves whole messages into a quarantine directory. It
// takes the MTA's lock through the inner actor.
type quarantineActor struct {
	inner mtaActor
	src   queue.Source
	dir   string // absolute
	dirFS *safefs.FS
	qFS   *safefs.FS
	dry   *quarantine.DryRun
	opt   quarantine.Options
}

func newQuarantineActor(inner mtaActor, dir string) (*quarantineActor, error) {
	src := inner.source()
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := quarantine.CheckOutside(src.Root(), abs); err != nil {
		return nil, mark(ErrUsage, err)
	}
	return &quarantineActor{inner: inner, src: src, dir: abs}, nil
}

func (q *quarantineActor) parallel() bool { return false }

func (q *quarantineActor) ops() []Op {
	if q.dry == nil {
		return nil
	}
	return stepOps(q.dry.Ops())
}

// prepare takes the MTA's lock, then creates the quarantine directory
// (0700; a dry run records that instead) and opens both trees.
func (q *quarantineActor) prepare(o RunOptions) (func(), error) {
	release, err := q.inner.prepare(o)
	if err != nil {
		return nil, err
	}
	q.opt.MasterRunning = q.inner.masterRunning()
	fail := func(err error) (func(), error) {
		if q.dirFS != nil {
			q.dirFS.Close()
		}
		release()
		return nil, err
	}
	_, statErr := os.Lstat(q.dir)
	switch {
	case statErr == nil:
		if q.dirFS, err = safefs.Open(q.dir); err != nil {
			return fail(err)
		}
	case !errors.Is(statErr, os.ErrNotExist):
		return fail(statErr)
	case !o.DryRun:
		// DIR is made only now, with the MTA's lock held: a refused
		// command leaves no trace.
		if err := makeDir(q.src.Root(), q.dir); err != nil {
			return fail(err)
		}
		if q.dirFS, err = safefs.Open(q.dir); err != nil {
			return fail(err)
		}
	}
	if q.qFS, err = safefs.Open(q.src.Root()); err != nil {
		return fail(err)
	}
	if o.DryRun {
		q.dry = &quarantine.DryRun{Queue: q.qFS}
		if q.dirFS != nil {
			q.dry.Dir = q.dirFS
		} else {
			q.dryMkdir()
		}
	}
	return func() {
		q.qFS.Close()
		if q.dirFS != nil {
			q.dirFS.Close()
		}
		release()
	}, nil
}

// makeDir creates dir 0700 (and missing parents), checks it again once
// made (outside the queue, same file system), and removes what it made
// when that check fails.
func makeDir(root, dir string) error {
	var made []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		made = append(made, d)
	}
	undo := func() {
		for _, d := range made {
			os.Remove(d)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		undo()
		return err
	}
	if err := quarantine.CheckOutside(root, dir); err != nil {
		undo()
		return mark(ErrUsage, err)
	}
	return nil
}

// dryMkdir records the creation of the quarantine directory itself.
func (q *quarantineActor) dryMkdir() {
	_ = q.dry.Mutator(quarantine.InDir).Mkdir(".", 0o700, -1, -1)
}

// dirReader is the quarantine directory to plan against: a dry run into
// a directory not created yet plans against an empty one.
func (q *quarantineActor) dirReader() quarantine.DirReader {
	if q.dirFS == nil {
		return absentDir(q.dir)
	}
	return q.dirFS
}

// act quarantines one message; a dry run executes the plan through the
// recorder.
func (q *quarantineActor) act(m *queue.Message) error {
	p, err := quarantine.PlanQuarantine(q.src, m, q.dirReader(), q.qFS, q.opt)
	if err != nil {
		return skipIfChanged(err)
	}
	if q.dry != nil {
		_, err = p.Execute(q.dry)
		return err
	}
	_, err = p.Execute(&quarantine.Disk{Queue: q.qFS, Dir: q.dirFS})
	return skipIfChanged(err)
}

// actBatch plans every message, then moves them with two manifest writes
// in all (quarantine.ExecuteBatch) instead of two fsyncs per message.
func (q *quarantineActor) actBatch(msgs []*queue.Message) []error {
	errs := make([]error, len(msgs))
	var plans []*quarantine.Plan
	var idx []int
	for i, m := range msgs {
		p, err := quarantine.PlanQuarantine(q.src, m, q.dirFS, q.qFS, q.opt)
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
		return skipped(err, "")
	}
	return err
}

// absentDir is a quarantine directory that does not exist yet.
type absentDir string

func (d absentDir) Root() string { return string(d) }
func (d absentDir) Lstat(p string) (os.FileInfo, error) {
	return nil, &os.PathError{Op: "lstat", Path: p, Err: os.ErrNotExist}
}

// RestoreOptions tune a restore.
type RestoreOptions struct {
	// IDs restores only these queue IDs (all when empty).
	IDs []string
	// Queue restores into this queue instead of the one each message
	// came from.
	Queue string
	// Into: Queue is a live queue the messages go into as new mail.
	Into bool
	// Rate is the least time between two messages (0: no limit).
	Rate time.Duration
}

// Restorer puts quarantined messages back: restore as a verb like the
// others (the manifest is its selection).
type Restorer struct {
	Dir     string
	Entries []quarantine.Entry // those to restore
	// Warning is a damaged manifest line that was passed over.
	Warning error
	opt     RestoreOptions
}

// ErrNotQuarantine: DIR has no manifest qsurgeon could read.
var ErrNotQuarantine = errors.New("not a quarantine directory")

// NewRestore reads dir's manifest and selects the entries to restore.
func NewRestore(dir string, o RestoreOptions) (*Restorer, error) {
	entries, err := quarantine.ReadManifest(filepath.Join(dir, quarantine.ManifestName))
	r := &Restorer{Dir: dir, opt: o}
	if err != nil && len(entries) == 0 {
		return nil, mark(ErrNotQuarantine, err)
	} else if err != nil {
		r.Warning = err
	}
	want := map[string]bool{}
	for _, id := range o.IDs {
		want[id] = true
	}
	for _, en := range entries {
		if en.State == quarantine.StateRestored || (len(want) > 0 && !want[en.ID]) {
			continue
		}
		r.Entries = append(r.Entries, en)
	}
	return r, nil
}

// Run restores every selected entry: Postfix into the place it came from,
// qmail named after the mess inode, with the MTA's lock of each target
// queue held; a dry run executes each plan through the recorder.
func (r *Restorer) Run(o RunOptions) (Report, error) {
	rep := Report{Verb: "restore"}
	if len(r.Entries) == 0 {
		return rep, nil
	}
	dirFS, err := safefs.Open(r.Dir)
	if err != nil {
		return rep, err
	}
	defer dirFS.Close()
	targets := map[string]*restoreTarget{}
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	last := time.Time{}
	var journal Journal
	for i, en := range r.Entries {
		root := en.QueueDir
		if r.opt.Queue != "" {
			root = r.opt.Queue
		}
		t := targets[root]
		if t == nil {
			if t, err = openRestoreTarget(root, en.MTA, o.DryRun); err != nil {
				return rep, err
			}
			targets[root] = t
		}
		if journal == nil {
			// Once the first target's lock is held.
			if journal, err = openJournal(o); err != nil {
				return rep, err
			}
		}
		if r.opt.Rate > 0 && !last.IsZero() {
			time.Sleep(time.Until(last.Add(r.opt.Rate)))
		}
		last = time.Now()
		out := Outcome{ID: en.ID, Queue: en.QueueName, Result: "ok"}
		p, err := quarantine.PlanRestore(en, dirFS, t.fs, quarantine.RestoreOptions{Into: r.opt.Into, Layout: t.layout})
		if err == nil {
			if o.DryRun {
				d := &quarantine.DryRun{Queue: t.fs, Dir: dirFS}
				_, err = p.Execute(d)
				rep.Ops = append(rep.Ops, Op{Kind: "restore", Where: en.ID, Text: fmt.Sprintf("restore %s:", en.ID)})
				rep.Ops = append(rep.Ops, stepOps(d.Ops())...)
			} else {
				if jerr := journal.Starting("restore", []string{en.ID}, []string{en.QueueName}); jerr != nil {
					rep.JournalErr = jerr
					return rep, nil
				}
				_, err = p.Execute(&quarantine.Disk{Queue: t.fs, Dir: dirFS})
			}
		}
		if err != nil {
			out.Result, out.Err = "failed", err
			rep.Failed++
			rep.Failures = append(rep.Failures, out)
		} else {
			rep.OK++
			if p.NewID != en.ID {
				out.NewID = p.NewID
			}
		}
		jerr := journal.Record(en.ID, en.QueueName, "restore", out.Result, out.Err)
		if o.OnResult != nil {
			o.OnResult(out)
		}
		if jerr != nil {
			// Stop: the rest is not touched.
			rep.JournalErr, rep.Unjournaled = jerr, []string{en.ID}
			return rep, nil
		}
		if o.Progress != nil {
			o.Progress(int64(i+1), int64(len(r.Entries)))
		}
	}
	if journal != nil {
		rep.JournalErr = journal.End(map[string]int{"restored": rep.OK, "failed": rep.Failed})
	}
	return rep, nil
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
			return nil, mark(ErrNoQueue, fmt.Errorf("%s is not a qmail queue", root))
		}
		l, err := qmailq.DetectLayout(root)
		if err != nil {
			return nil, err
		}
		t.layout = l
		if !dryRun {
			unlock, err := qmailq.LockSend(root)
			if err != nil {
				return nil, err
			}
			t.unlock = unlock
		}
	case queue.Postfix:
		if !postfixq.IsPostfixQueue(root) {
			return nil, mark(ErrNoQueue, fmt.Errorf("%s is not a Postfix queue", root))
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

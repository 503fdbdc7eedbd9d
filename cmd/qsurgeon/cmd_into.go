package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/internal/injected"
	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// intoFlags are requeue's flags for re-injecting mail from a detached queue
// into the live queue of the same MTA (seed 000: the flooded queue was
// swapped out for an empty one; only the good mail goes back).
type intoFlags struct {
	into           string
	viaQmailQueue  string
	rate           string
	rateInterval   time.Duration
	lastInjection  time.Time
	virtualDomains string
}

// intoSurgeon re-injects each message into the live queue the way that MTA
// accepts new mail: Postfix: a complete queue file into maildrop/ as
// postsuper -r does (pickup gives it a new ID); qmail: through pid/ into
// mess/ and intd/ → todo/ as qmail-queue does, or by running qmail-queue.
// The detached queue keeps its copy unless the file could be moved
// (Postfix, same filesystem): nothing is lost if the live server refuses.
type intoSurgeon struct {
	inner surgeon // the detached queue's surgeon (its lock)
	f     *intoFlags
	live  queue.Source
	fs    *safefs.FS
	srcFS *safefs.FS
	dry   *safefs.DryRun
	vd    *qmailq.VirtualDomains
	moves []plannedOp
	// done records the messages copied into the live queue already, so a
	// re-run after a partial failure skips them; recErr, once set, stops
	// every later injection (injected but unrecorded means duplicated by
	// the next run).
	done   *injected.Log
	recErr error
}

func newIntoSurgeon(inner surgeon, f *intoFlags) (*intoSurgeon, error) {
	src := inner.source()
	o := globalOpts{Queue: f.into, MTA: string(src.MTA())}
	live, err := openSource(o, io.Discard, readNeeds{})
	if err != nil {
		return nil, err
	}
	if live.MTA() != src.MTA() {
		return nil, usageErr("--into %s is a %s queue; the messages come from a %s queue", f.into, live.MTA(), src.MTA())
	}
	a, _ := filepath.Abs(live.Root())
	b, _ := filepath.Abs(src.Root())
	if a == b {
		return nil, usageErr("--into names the queue the messages are in; give the live queue directory")
	}
	return &intoSurgeon{inner: inner, f: f, live: live}, nil
}

func (s *intoSurgeon) source() queue.Source { return s.inner.source() }

func (s *intoSurgeon) supports(string) error { return nil }

// dryRunOps is what a dry run would do in the live queue: the operations
// recorded on it (qmail: pid/, mess/, intd/, todo/; Postfix: maildrop/)
// and the moves and qmail-queue runs, which no recorder sees.
func (s *intoSurgeon) dryRunOps() []plannedOp {
	var out []plannedOp
	if s.dry != nil {
		out = opsOf(s.dry.Base, s.dry.Ops(), "live ", "live "+s.live.Root()+": ")
	}
	return append(out, s.moves...)
}

func (s *intoSurgeon) prepare(action string, dryRun bool) (func(), error) {
	release, err := s.inner.prepare(action, dryRun)
	if err != nil {
		return nil, err
	}
	if s.fs, err = safefs.Open(s.live.Root()); err != nil {
		release()
		return nil, err
	}
	if s.srcFS, err = safefs.Open(s.source().Root()); err != nil {
		s.fs.Close()
		release()
		return nil, err
	}
	if dryRun {
		s.dry = safefs.NewDryRun(s.fs)
	}
	if s.done, err = injected.Open(s.source().Root()); err != nil {
		s.fs.Close()
		s.srcFS.Close()
		release()
		return nil, err
	}
	if s.live.MTA() == queue.Qmail {
		path := s.f.virtualDomains
		if path == "" {
			s.vd, err = qmailq.DefaultVirtualDomains(s.live.Root())
		} else {
			s.vd, err = qmailq.LoadVirtualDomains(path)
		}
		if err != nil {
			s.fs.Close()
			s.srcFS.Close()
			release()
			return nil, err
		}
	}
	return func() {
		s.fs.Close()
		s.srcFS.Close()
		release()
	}, nil
}

// act ignores the detached queue's mutator: the changes happen in the live
// queue, through s.fs (or the recorder of a dry run).
func (s *intoSurgeon) act(action string, m *queue.Message, _ queue.Mutator) error {
	if e, ok := s.done.Done(m.ID, m.Inode); ok {
		return fmt.Errorf("%w: already injected into %s as %s at %s (%s in the detached queue)", errSkipped, e.Into, e.NewID, e.Time.UTC().Format(time.RFC3339), injected.Name)
	}
	if s.recErr != nil {
		return fmt.Errorf("not injected: %w", s.recErr)
	}
	// A dry run injects nothing, so it does not wait for --rate either.
	if s.f.rateInterval > 0 && !s.f.lastInjection.IsZero() && s.dry == nil {
		time.Sleep(time.Until(s.f.lastInjection.Add(s.f.rateInterval)))
	}
	s.f.lastInjection = time.Now()
	var mut queue.Mutator = s.fs
	if s.dry != nil {
		mut = s.dry
	}
	switch src := s.source().(type) {
	case *postfixq.Spool:
		live := s.live.(*postfixq.Spool)
		opt := postfixq.IntoOptions{Move: func(from, to string) error {
			if s.dry != nil {
				s.moves = append(s.moves, plannedOp{kind: "move", where: "live " + firstDir(to), text: fmt.Sprintf("move %s -> %s:%s", from, s.live.Root(), to)})
				return nil
			}
			return safefs.MoveBetween(s.srcFS, from, s.fs, to)
		}}
		if ps, ok := s.inner.(*postfixSurgeon); ok {
			opt.SourceMasterRunning = ps.opt.MasterRunning
		}
		into, err := src.IntoMaildrop(live, mut, m, opt)
		if err == nil && !into.Moved && s.dry == nil {
			err = s.record(m, into.ID)
		}
		if errors.Is(err, postfixq.ErrChanged) || errors.Is(err, postfixq.ErrActiveLive) {
			return fmt.Errorf("%w: %v", errSkipped, err)
		}
		return err
	case *qmailq.Queue:
		opt := qmailq.InjectOptions{VirtualDomains: s.vd}
		if s.f.viaQmailQueue != "" {
			if s.dry != nil {
				s.moves = append(s.moves, plannedOp{kind: "run", where: "qmail-queue", text: fmt.Sprintf("run %s for message %s", s.f.viaQmailQueue, m.ID)})
				return nil
			}
			if err := src.InjectViaQmailQueue(context.Background(), s.f.viaQmailQueue, m, opt); err != nil {
				return err
			}
			return s.record(m, "")
		}
		_, err := src.Inject(s.live.(*qmailq.Queue), mut, m, opt)
		if err == nil && s.dry == nil {
			err = s.record(m, "")
		}
		if errors.Is(err, qmailq.ErrNoRecipients) {
			return fmt.Errorf("%w: %v", errSkipped, err)
		}
		return err
	}
	return fmt.Errorf("requeue --into: unsupported queue")
}

// record notes a message copied into the live queue; when that fails, the
// message is reported failed and no further message is injected.
func (s *intoSurgeon) record(m *queue.Message, newID string) error {
	err := s.done.Add(injected.Entry{ID: m.ID, Inode: m.Inode, Into: s.live.Root(), NewID: newID, Time: clock.Now()})
	if err != nil {
		s.recErr = err
		return fmt.Errorf("injected into %s, but recording it failed (a re-run would inject it again): %w", s.live.Root(), err)
	}
	return nil
}

package surgery

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/internal/injected"
	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// Into re-injects messages from a detached queue into the live queue of
// the same MTA (seed 000: the flooded queue was swapped out for an empty
// one; only the good mail goes back).
type Into struct {
	// Queue is the live queue directory.
	Queue string
	// ViaQmailQueue runs this qmail-queue binary per message instead.
	ViaQmailQueue string
	// Rate is the least time between two messages (0: no limit).
	Rate time.Duration
	// VirtualDomains is the control/virtualdomains whose prefixes are
	// stripped from local recipients ("": the live queue's own).
	VirtualDomains string
}

// intoActor re-injects each message into the live queue the way that MTA
// accepts new mail: Postfix: a complete queue file into maildrop/ as
// postsuper -r does (pickup gives it a new ID); qmail: through pid/ into
// mess/ and intd/ → todo/ as qmail-queue does, or by running qmail-queue.
// The detached queue keeps its copy unless the file could be moved
// (Postfix, same filesystem): nothing is lost if the live server refuses.
type intoActor struct {
	inner  mtaActor // the detached queue's actor (its lock)
	src    queue.Source
	f      *Into
	live   queue.Source
	seam   *seam // the live queue
	srcFS  *safefs.FS
	vd     *qmailq.VirtualDomains
	dryRun bool
	moves  []Op
	last   time.Time
	// done records the messages copied into the live queue already, so a
	// re-run after a partial failure skips them; recErr, once set, stops
	// every later injection (injected but unrecorded means duplicated by
	// the next run).
	done   *injected.Log
	recErr error
}

func newIntoActor(inner mtaActor, f *Into) (*intoActor, error) {
	src := inner.source()
	live, err := Open(OpenOptions{Dir: f.Queue, MTA: string(src.MTA())})
	if err != nil {
		return nil, err
	}
	if live.MTA() != src.MTA() {
		return nil, mark(ErrUsage, fmt.Errorf("--into %s is a %s queue; the messages come from a %s queue", f.Queue, live.MTA(), src.MTA()))
	}
	a, _ := filepath.Abs(live.Root())
	b, _ := filepath.Abs(src.Root())
	if a == b {
		return nil, mark(ErrUsage, errors.New("--into names the queue the messages are in; give the live queue directory"))
	}
	return &intoActor{inner: inner, src: src, f: f, live: live}, nil
}

func (s *intoActor) parallel() bool { return false }

// ops is what a dry run would do in the live queue: the operations
// recorded on it (qmail: pid/, mess/, intd/, todo/; Postfix: maildrop/)
// and the moves and qmail-queue runs, which no recorder sees.
func (s *intoActor) ops() []Op {
	return append(s.seam.ops("live ", "live "+s.live.Root()+": "), s.moves...)
}

func (s *intoActor) prepare(o RunOptions) (func(), error) {
	release, err := s.inner.prepare(o)
	if err != nil {
		return nil, err
	}
	s.dryRun = o.DryRun
	if s.seam, err = openSeam(s.live.Root(), o.DryRun); err != nil {
		release()
		return nil, err
	}
	if s.srcFS, err = safefs.Open(s.src.Root()); err != nil {
		s.seam.close()
		release()
		return nil, err
	}
	if s.done, err = injected.Open(s.src.Root()); err != nil {
		s.seam.close()
		s.srcFS.Close()
		release()
		return nil, err
	}
	if s.live.MTA() == queue.Qmail {
		if s.f.VirtualDomains == "" {
			s.vd, err = qmailq.DefaultVirtualDomains(s.live.Root())
		} else {
			s.vd, err = qmailq.LoadVirtualDomains(s.f.VirtualDomains)
		}
		if err != nil {
			s.seam.close()
			s.srcFS.Close()
			release()
			return nil, err
		}
	}
	return func() {
		s.seam.close()
		s.srcFS.Close()
		release()
	}, nil
}

// act puts one message into the live queue, through the live queue's
// seam (the recorder of a dry run).
func (s *intoActor) act(m *queue.Message) error {
	if e, ok := s.done.Done(m.ID, m.Inode); ok {
		return fmt.Errorf("%w: already injected into %s as %s at %s (%s in the detached queue)", ErrSkipped, e.Into, e.NewID, e.Time.UTC().Format(time.RFC3339), injected.Name)
	}
	if s.recErr != nil {
		return fmt.Errorf("not injected: %w", s.recErr)
	}
	// A dry run injects nothing, so it does not wait for the rate either.
	if s.f.Rate > 0 && !s.last.IsZero() && !s.dryRun {
		time.Sleep(time.Until(s.last.Add(s.f.Rate)))
	}
	s.last = time.Now()
	switch src := s.src.(type) {
	case *postfixq.Spool:
		opt := postfixq.IntoOptions{Move: func(from, to string) error {
			if s.dryRun {
				s.moves = append(s.moves, Op{Kind: "move", Where: "live " + firstDir(to), Text: fmt.Sprintf("move %s -> %s:%s", from, s.live.Root(), to)})
				return nil
			}
			return safefs.MoveBetween(s.srcFS, from, s.seam.fs, to)
		}}
		opt.SourceMasterRunning = s.inner.masterRunning()
		into, err := src.IntoMaildrop(s.live.(*postfixq.Spool), s.seam.mut, m, opt)
		if err == nil && !into.Moved && !s.dryRun {
			err = s.record(m, into.ID)
		}
		if errors.Is(err, postfixq.ErrChanged) || errors.Is(err, postfixq.ErrActiveLive) {
			return skipped(err, "")
		}
		return err
	case *qmailq.Queue:
		opt := qmailq.InjectOptions{VirtualDomains: s.vd}
		if s.f.ViaQmailQueue != "" {
			if s.dryRun {
				s.moves = append(s.moves, Op{Kind: "run", Where: "qmail-queue", Text: fmt.Sprintf("run %s for message %s", s.f.ViaQmailQueue, m.ID)})
				return nil
			}
			if err := src.InjectViaQmailQueue(context.Background(), s.f.ViaQmailQueue, m, opt); err != nil {
				return err
			}
			return s.record(m, "")
		}
		_, err := src.Inject(s.live.(*qmailq.Queue), s.seam.mut, m, opt)
		if err == nil && !s.dryRun {
			err = s.record(m, "")
		}
		if errors.Is(err, qmailq.ErrNoRecipients) {
			return skipped(err, "")
		}
		return err
	}
	return fmt.Errorf("requeue --into: unsupported queue")
}

// record notes a message copied into the live queue; when that fails, the
// message is reported failed and no further message is injected.
func (s *intoActor) record(m *queue.Message, newID string) error {
	err := s.done.Add(injected.Entry{ID: m.ID, Inode: m.Inode, Into: s.live.Root(), NewID: newID, Time: clock.Now()})
	if err != nil {
		s.recErr = err
		return fmt.Errorf("injected into %s, but recording it failed (a re-run would inject it again): %w", s.live.Root(), err)
	}
	return nil
}

package surgery

import (
	"errors"
	"fmt"

	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// mtaActor is the actor of one MTA's queue, which quarantine and --into
// build on (its lock, and what it learnt of the MTA's state).
type mtaActor interface {
	actor
	source() queue.Source
	// masterRunning: a Postfix master runs on the queue (after prepare).
	masterRunning() bool
}

// newMTAActor returns the actor of src's MTA for verb, or an ErrUsage when
// the MTA has no such verb.
func newMTAActor(src queue.Source, verb string) (mtaActor, error) {
	switch s := src.(type) {
	case *postfixq.Spool:
		switch verb {
		case Delete, Hold, Release, Requeue, Expire, Quarantine:
			return &postfixActor{spool: s, verb: verb}, nil
		}
		return nil, mark(ErrUsage, fmt.Errorf("%s is not an action on a Postfix queue", verb))
	case *qmailq.Queue:
		switch verb {
		case Hold, Release:
			return nil, mark(ErrUsage, errors.New("qmail has no hold queue: use 'qsurgeon quarantine DIR' to hold and 'qsurgeon restore DIR' to release"))
		case Delete, Requeue, Expire, Quarantine:
			return &qmailActor{q: s, verb: verb}, nil
		}
		return nil, mark(ErrUsage, fmt.Errorf("%s is not an action on a qmail queue", verb))
	}
	return nil, fmt.Errorf("no surgeon for %s", src.MTA())
}

// postfixActor applies a verb to a Postfix queue the way postsuper does.
type postfixActor struct {
	spool *postfixq.Spool
	verb  string
	opt   postfixq.ActOptions
	seam  *seam
}

// prepare finds out whether master runs on this queue directory (the flock
// test of 'postfix status'): messages in active/ are then left alone.
func (p *postfixActor) prepare(o RunOptions) (func(), error) {
	running, err := postfixq.MasterRunning(p.spool.Root())
	if err != nil {
		return nil, err
	}
	p.opt.MasterRunning = running
	if p.seam, err = openSeam(p.spool.Root(), o.DryRun); err != nil {
		return nil, err
	}
	return p.seam.close, nil
}

// parallel: every Postfix action touches only the message's own file and
// logs (postsuper.c acts on one queue ID at a time, with no shared state),
// so messages can be acted on concurrently.
func (p *postfixActor) parallel() bool { return p.verb != Quarantine }

func (p *postfixActor) ops() []Op { return p.seam.ops("", "") }

// inPlace: what postsuper itself passes over without a word (postsuper.c:
// hold_one skips hold/ and maildrop/, release_one acts on hold/ only,
// requeue_one leaves maildrop/ alone) and an expire bit already set.
func (p *postfixActor) inPlace(m *queue.Message) string {
	switch p.verb {
	case Hold:
		switch m.Queue {
		case queue.Hold:
			return "already held"
		case queue.Maildrop:
			return "in maildrop (postsuper -h never holds it; pickup has not sanitized it yet)"
		}
	case Release:
		if m.Queue != queue.Hold {
			return "not held"
		}
	case Requeue:
		if m.Queue == queue.Maildrop {
			return "already in maildrop"
		}
	case Expire:
		switch {
		case m.Queue == queue.Maildrop:
			return "in maildrop (postsuper -e never expires it)"
		case m.ForcedExpire:
			return "already expired"
		}
	}
	return ""
}

func (p *postfixActor) source() queue.Source { return p.spool }
func (p *postfixActor) masterRunning() bool  { return p.opt.MasterRunning }

func (p *postfixActor) act(m *queue.Message) error {
	mut := p.seam.mut
	var err error
	switch p.verb {
	case Delete:
		err = p.spool.Delete(mut, m, p.opt)
	case Hold:
		err = p.spool.Hold(mut, m, p.opt)
	case Release:
		err = p.spool.Release(mut, m, p.opt)
	case Requeue:
		err = p.spool.Requeue(mut, m, p.opt)
	case Expire:
		err = p.spool.Expire(mut, m, p.opt)
	default:
		return fmt.Errorf("%s is not an action on a Postfix queue", p.verb)
	}
	switch {
	case errors.Is(err, postfixq.ErrChanged), errors.Is(err, postfixq.ErrWrongQueue):
		return skipped(err, "")
	case errors.Is(err, postfixq.ErrActiveLive):
		return skipped(err, "stop Postfix, or use postsuper for active messages")
	}
	return err
}

// qmailActor applies a verb to a qmail queue with qmail-send stopped.
type qmailActor struct {
	q    *qmailq.Queue
	verb string
	opt  qmailq.ActOptions
	seam *seam
}

// prepare refuses while qmail-send runs (qmailq.ErrSendRunning) and holds
// lock/sendmutex so it cannot start while qsurgeon works (qmail-send.c:
// main() takes the same lock with lock_exnb()).
func (s *qmailActor) prepare(o RunOptions) (func(), error) {
	unlock, err := qmailq.LockSend(s.q.Root())
	if err != nil {
		return nil, err
	}
	s.opt.AllowYoungOrphan = o.Detached
	if s.verb == Delete && !o.DryRun {
		// What a killed delete left half removed is ours to finish.
		s.opt.Unfinished = o.Unfinished
	}
	if s.seam, err = openSeam(s.q.Root(), o.DryRun); err != nil {
		unlock()
		return nil, err
	}
	return func() { s.seam.close(); unlock() }, nil
}

// parallel: qmail's parts of one message live in several directories
// under one lock; one at a time keeps qmail's crash-safe order simple.
func (s *qmailActor) parallel() bool { return false }

func (s *qmailActor) ops() []Op { return s.seam.ops("", "") }

func (s *qmailActor) source() queue.Source { return s.q }
func (s *qmailActor) masterRunning() bool  { return false }

func (s *qmailActor) act(m *queue.Message) error {
	mut := s.seam.mut
	var err error
	switch s.verb {
	case Delete:
		err = s.q.Delete(mut, m, s.opt)
	case Requeue:
		err = s.q.Requeue(mut, m, s.opt)
	case Expire:
		// Back-dating the birth makes the next attempt the last; setting
		// the next-retry times to now makes that attempt happen as soon
		// as qmail-send starts (qmail-send.c: pqadd schedules by mtime).
		err = s.q.Expire(mut, m, s.opt)
		if err == nil && m.Queue == queue.QmailQueue {
			err = s.q.Requeue(mut, m, s.opt)
		}
	default:
		return fmt.Errorf("%s is not an action on a qmail queue", s.verb)
	}
	switch {
	case errors.Is(err, qmailq.ErrChanged), errors.Is(err, qmailq.ErrWrongQueue), errors.Is(err, qmailq.ErrNotRegular):
		return skipped(err, "")
	case errors.Is(err, qmailq.ErrInProgress):
		return skipped(err, "younger than 36 hours: qmail-queue may still be writing it")
	}
	return err
}

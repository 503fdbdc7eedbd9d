package main

import (
	"errors"
	"fmt"

	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// postfixSurgeon applies actions to a Postfix queue the way postsuper does.
type postfixSurgeon struct {
	spool *postfixq.Spool
	opt   postfixq.ActOptions
}

func newPostfixSurgeon(src queue.Source) (surgeon, error) {
	s, ok := src.(*postfixq.Spool)
	if !ok {
		return nil, errors.New("not a Postfix spool")
	}
	return &postfixSurgeon{spool: s}, nil
}

func (p *postfixSurgeon) source() queue.Source { return p.spool }

func (p *postfixSurgeon) supports(action string) error {
	switch action {
	case "delete", "hold", "release", "requeue", "expire", "quarantine":
		return nil
	}
	return fmt.Errorf("%s is not an action on a Postfix queue", action)
}

// prepare finds out whether master runs on this queue directory (the flock
// test of 'postfix status'): messages in active/ are then left alone.
func (p *postfixSurgeon) prepare(action string, dryRun bool) (func(), error) {
	running, err := postfixq.MasterRunning(p.spool.Root())
	if err != nil {
		return nil, err
	}
	p.opt.MasterRunning = running
	return func() {}, nil
}

// parallel: every Postfix action touches only the message's own file and
// logs (postsuper.c acts on one queue ID at a time, with no shared state),
// so messages can be acted on concurrently.
func (p *postfixSurgeon) parallel(action string) bool {
	switch action {
	case "delete", "hold", "release", "requeue", "expire":
		return true
	}
	return false
}

// inPlace: what postsuper itself passes over without a word (postsuper.c:
// hold_one skips hold/ and maildrop/, release_one acts on hold/ only,
// requeue_one leaves maildrop/ alone) and an expire bit already set.
func (p *postfixSurgeon) inPlace(action string, m *queue.Message) string {
	switch action {
	case "hold":
		switch m.Queue {
		case queue.Hold:
			return "already held"
		case queue.Maildrop:
			return "in maildrop (postsuper -h never holds it; pickup has not sanitized it yet)"
		}
	case "release":
		if m.Queue != queue.Hold {
			return "not held"
		}
	case "requeue":
		if m.Queue == queue.Maildrop {
			return "already in maildrop"
		}
	case "expire":
		switch {
		case m.Queue == queue.Maildrop:
			return "in maildrop (postsuper -e never expires it)"
		case m.ForcedExpire:
			return "already expired"
		}
	}
	return ""
}

func (p *postfixSurgeon) act(action string, m *queue.Message, mut queue.Mutator) error {
	var err error
	switch action {
	case "delete":
		err = p.spool.Delete(mut, m, p.opt)
	case "hold":
		err = p.spool.Hold(mut, m, p.opt)
	case "release":
		err = p.spool.Release(mut, m, p.opt)
	case "requeue":
		err = p.spool.Requeue(mut, m, p.opt)
	case "expire":
		err = p.spool.Expire(mut, m, p.opt)
	default:
		return fmt.Errorf("%s is not an action on a Postfix queue", action)
	}
	switch {
	case errors.Is(err, postfixq.ErrChanged), errors.Is(err, postfixq.ErrWrongQueue):
		return fmt.Errorf("%w: %v", errSkipped, err)
	case errors.Is(err, postfixq.ErrActiveLive):
		return fmt.Errorf("%w: %v (stop Postfix, or use postsuper for active messages)", errSkipped, err)
	}
	return err
}

package main

import (
	"errors"
	"fmt"

	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// qmailSurgeon applies actions to a qmail queue with qmail-send stopped.
type qmailSurgeon struct {
	q   *qmailq.Queue
	opt qmailq.ActOptions
}

func newQmailSurgeon(src queue.Source) (surgeon, error) {
	q, ok := src.(*qmailq.Queue)
	if !ok {
		return nil, errors.New("not a qmail queue")
	}
	return &qmailSurgeon{q: q}, nil
}

func (s *qmailSurgeon) source() queue.Source { return s.q }

func (s *qmailSurgeon) supports(action string) error {
	switch action {
	case "hold", "release":
		return errors.New("qmail has no hold queue: use 'qsurgeon quarantine DIR' to hold and 'qsurgeon restore DIR' to release")
	case "delete", "requeue", "expire", "quarantine":
		return nil
	}
	return fmt.Errorf("%s is not an action on a qmail queue", action)
}

// prepare refuses while qmail-send runs and holds lock/sendmutex so it
// cannot start while qsurgeon works (qmail-send.c: main() takes the same
// lock with lock_exnb()).
func (s *qmailSurgeon) prepare(action string, dryRun bool) (func(), error) {
	unlock, err := qmailq.LockSend(s.q.Root())
	if err != nil {
		return nil, fail(exitLocked, err, joinHints("stop qmail-send first: svc -d /service/qmail-send (daemontools) or systemctl stop qmail",
			"qmail-smtpd may keep running"))
	}
	return unlock, nil
}

func (s *qmailSurgeon) act(action string, m *queue.Message, mut queue.Mutator) error {
	var err error
	switch action {
	case "delete":
		err = s.q.Delete(mut, m, s.opt)
	case "requeue":
		err = s.q.Requeue(mut, m, s.opt)
	case "expire":
		// Back-dating the birth makes the next attempt the last; setting
		// the next-retry times to now makes that attempt happen as soon
		// as qmail-send starts (qmail-send.c: pqadd schedules by mtime).
		err = s.q.Expire(mut, m, s.opt)
		if err == nil && m.Queue == queue.QmailQueue {
			err = s.q.Requeue(mut, m, s.opt)
		}
	default:
		return s.supports(action)
	}
	switch {
	case errors.Is(err, qmailq.ErrChanged), errors.Is(err, qmailq.ErrWrongQueue), errors.Is(err, qmailq.ErrNotRegular):
		return fmt.Errorf("%w: %v", errSkipped, err)
	case errors.Is(err, qmailq.ErrInProgress):
		return fmt.Errorf("%w: %v (younger than 36 hours: qmail-queue may still be writing it)", errSkipped, err)
	}
	return err
}

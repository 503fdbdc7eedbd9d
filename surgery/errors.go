package surgery

import "errors"

// Errors a caller maps to its own answers (cmd/qsurgeon: exit codes and
// hints). They mark an error without changing its text: test with
// errors.Is.
var (
	// ErrNoQueueDir: the queue directory does not exist or is no directory.
	ErrNoQueueDir = errors.New("no queue directory")
	// ErrUnknownLayout: the directory is neither a Postfix nor a qmail queue.
	ErrUnknownLayout = errors.New("neither a Postfix nor a qmail queue")
	// ErrNotPostfix, ErrNotQmail: the MTA was forced, but the directory
	// does not have its layout.
	ErrNotPostfix = errors.New("not a Postfix queue")
	ErrNotQmail   = errors.New("not a qmail queue")
	// ErrConfig: the Postfix configuration directory could not be read.
	ErrConfig = errors.New("postfix configuration")
	// ErrNoQueue: the queue could not be opened as the MTA's queue.
	ErrNoQueue = errors.New("not a queue")
	// ErrUsage: a request that cannot be carried out as given (an unknown
	// MTA, a verb the MTA does not have, a bad filter value).
	ErrUsage = errors.New("usage")
	// ErrSkipped marks a message left alone on purpose: it changed since
	// it was selected, or the MTA's state forbids touching it.
	ErrSkipped = errors.New("left alone")
	// ErrPlanExists: a plan file is only ever written as a new file.
	ErrPlanExists = errors.New("plan file exists")
	// ErrPlanFile: a plan file that --plan-out did not write.
	ErrPlanFile = errors.New("not a plan file")
	// ErrNoHoldQueue: qmail has no hold queue; holding an account's mail
	// there needs a quarantine directory (AccountHold).
	ErrNoHoldQueue = errors.New("qmail has no hold queue")
)

// marked is an error that also matches kind under errors.Is, with the text
// of err alone.
type marked struct {
	kind, err error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.kind, m.err} }

// mark makes err match kind too, keeping its text.
func mark(kind, err error) error {
	if err == nil {
		return nil
	}
	return &marked{kind: kind, err: err}
}

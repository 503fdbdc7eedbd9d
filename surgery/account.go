package surgery

import (
	"context"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/monitor"
	"github.com/qsurgeon/qsurgeon/queue"
)

// AccountHoldOptions are the options of AccountHold.
type AccountHoldOptions struct {
	// QuarantineDir is where a qmail queue, which has no hold queue,
	// holds the account's mail (the quarantine verb).
	QuarantineDir string
	Workers       int
}

// AccountHold selects the queued mail of one account (monitor.AccountOf:
// its SASL user, or its envelope sender when it has no SASL user) that
// can still be put on hold, and the Job that holds it: Postfix's hold
// verb over incoming, active and deferred (what postsuper -h takes), or on
// qmail the quarantine verb into o.QuarantineDir (ErrNoHoldQueue without
// one). Only messages charged to exactly this account are selected;
// nothing is acted on until the caller runs the job (Job.Run), with its
// preview, journal and dry run as for any hold.
func AccountHold(ctx context.Context, src queue.Source, acct monitor.Account, o AccountHoldOptions) (*Job, *Selection, error) {
	verb := Verb{Name: Hold}
	spec := filter.Spec{Now: clock.Now()}
	if src.MTA() == queue.Qmail {
		if o.QuarantineDir == "" {
			return nil, nil, ErrNoHoldQueue
		}
		verb = Verb{Name: Quarantine, Dir: o.QuarantineDir}
	} else {
		// postsuper -h takes mail from incoming, active and deferred.
		spec.Queues = []string{queue.Incoming, queue.Active, queue.Deferred}
	}
	job, err := NewJob(src, verb)
	if err != nil {
		return nil, nil, err
	}
	sel, err := Select(ctx, src, spec, SelectOptions{Workers: o.Workers, Keep: job.Keep(),
		Where: func(m *queue.Message) bool {
			kind, n, ok := monitor.AccountOf(m)
			return ok && kind == acct.Kind && n == acct.Name
		}})
	if err != nil {
		return nil, nil, err
	}
	return job, sel, nil
}

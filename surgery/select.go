package surgery

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/mimeword"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sync/errgroup"
)

// Keep says how much of a selected message is held on to until it is
// printed or acted on: the selection of a million-message queue can be
// 100,000 messages, so memory follows what is kept of each.
type Keep int

const (
	KeepAll      Keep = iota // output that shows everything (table, JSON, show)
	KeepIDs                  // bare IDs: the ID and what sorts it
	KeepSurgery              // actions: identity, state and the preview's fields
	KeepEnvelope             // actions that carry the recipients along (quarantine, --into)
)

// trim drops what k does not need of a selected message.
func (k Keep) trim(m *queue.Message) {
	switch k {
	case KeepIDs:
		*m = queue.Message{MTA: m.MTA, Queue: m.Queue, ID: m.ID, Path: m.Path}
	case KeepSurgery:
		// Neither the action, the plan nor the preview shows these; a
		// 100k-message selection holds each of them 100k times.
		m.Recipients = nil
		m.ClientAddr, m.ClientName, m.HELO, m.SASLMethod = "", "", "", ""
		fallthrough
	case KeepEnvelope:
		m.Attrs = nil
		if m.Content != nil {
			m.Content.Headers, m.Content.Body = nil, nil
		}
	}
}

// SelectOptions tune Select.
type SelectOptions struct {
	// Workers is the number of parallel readers (0: filter.DefaultWorkers).
	Workers int
	// Keep is how much of each selected message to keep.
	Keep Keep
	// Explain keeps, per message, which criteria matched (Result.Why).
	Explain bool
	// Progress is called with the number of messages examined.
	Progress func(done, total int64)
	// Where, when set, keeps only the matching messages for which it
	// also holds (a Go predicate beside the Spec, e.g. monitor's account
	// of a message); it sees the whole message, before Keep trims it.
	Where func(*queue.Message) bool
	// Selected, when set, is called with each message as it is selected
	// (before Keep trims it), from the collecting goroutine: Job.Warmer's
	// warm. It must not block the scan.
	Selected func(*queue.Message)
	// GiveBack, from giveBackAt selected messages on, collects the scan's
	// garbage and gives its pages back to the system before the compact
	// records become messages (debug.FreeOSMemory: one collection of the
	// whole process): for a command whose peak memory counts. A program
	// with other work in flight leaves it off.
	GiveBack bool
}

// Selection is what Select found.
type Selection struct {
	Source  queue.Source
	Results []filter.Result // sorted (filter.SortResults)
	Stats   filter.Stats
	// Errs are the messages that could not be read (each a
	// *filter.ReadError); they were neither selected nor touched.
	Errs []error
	// Strays are the entries of a qmail queue that belong to no message,
	// as "path: why": never selected or touched, but worth knowing.
	Strays []string
}

// giveBackAt is the selection size from which Select gives the scan's
// garbage back before it turns its compact records into messages.
const giveBackAt = 10000

// Select runs spec over src with the parallel engine. Known Postfix queue
// IDs are looked up where Postfix keeps them instead of walking the whole
// queue. A spec Compile refuses is an ErrUsage; a cancelled ctx returns
// its error.
func Select(ctx context.Context, src queue.Source, spec filter.Spec, o SelectOptions) (*Selection, error) {
	m, err := Compile(spec)
	if err != nil {
		return nil, mark(ErrUsage, err)
	}
	sel := &Selection{Source: src}
	opt := filter.Options{
		Workers:  o.Workers,
		Stats:    &sel.Stats,
		Progress: o.Progress,
		OnError: func(err *filter.ReadError) error {
			sel.Errs = append(sel.Errs, err)
			return nil
		},
	}
	scanned := src
	if sp, ok := src.(*postfixq.Spool); ok && len(spec.IDs) > 0 {
		// Known Postfix IDs: look each one up where Postfix keeps it, as
		// postsuper does, instead of reading the whole queue. (qmail
		// keeps the full walk: its inventory finds parts in the wrong
		// subdirectory, which a delete must remove too.)
		scanned = idLookup{Spool: sp, ids: spec.IDs}
	}
	// What the scan keeps of each selected message (see compactSet).
	compact := newCompactSet(o.Keep)
	err = filter.Scan(ctx, scanned, m, opt, func(r filter.Result) error {
		if o.Where != nil && !o.Where(r.Msg) {
			return nil
		}
		if o.Selected != nil {
			o.Selected(r.Msg)
		}
		o.Keep.trim(r.Msg)
		if !o.Explain {
			r.Why = nil
		}
		if compact != nil {
			compact.add(r)
			return nil
		}
		sel.Results = append(sel.Results, r)
		return nil
	})
	if compact != nil {
		if o.GiveBack && compact.n >= giveBackAt {
			// The scan's garbage is collected and its pages given back
			// first, so that the messages about to be made take pages
			// of their own instead of adding to the scan's (at 1M Postfix
			// messages, 100k selected: 41 MB of messages on top of the
			// scan's ~55 MB heap). One collection, once per Select.
			debug.FreeOSMemory()
		}
		sel.Results = compact.results()
	}
	filter.SortResults(sel.Results)
	if err != nil {
		return nil, err
	}
	sel.Strays = Strays(src)
	return sel, nil
}

// Strays names, after a walk, the entries of a qmail queue that belong to
// no message, as "path: why" (none for Postfix, whose reader reports what
// it leaves alone as it walks).
func Strays(src queue.Source) []string {
	q, ok := src.(*qmailq.Queue)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range q.Strays() {
		out = append(out, fmt.Sprintf("%s: %s", s.Path, s.Why))
	}
	return out
}

// UntrustedAuth counts, per uid, the qmail messages whose SMTP-AUTH
// Received header follows an "invoked by uid N" that is not trusted
// (OpenOptions.TrustSMTPD); none for Postfix.
func UntrustedAuth(src queue.Source) map[int64]int64 {
	q, ok := src.(*qmailq.Queue)
	if !ok {
		return nil
	}
	return q.UntrustedAuth()
}

// Compile turns a Spec into a Matcher whose --header values decode RFC
// 2047 words in every charset (internal/mimeword).
func Compile(spec filter.Spec) (*filter.Matcher, error) {
	m, err := filter.Compile(spec)
	if err != nil {
		return nil, err
	}
	m.SetCharsetReader(mimeword.CharsetReader)
	return m, nil
}

// idLookup is a Postfix Source whose walk yields only the places where the
// given queue IDs can be: each message queue, in the hash directory that
// follows from the ID (global/mail_queue.c:mail_queue_path, as postsuper
// looks). A place that holds nothing reads as "vanished" and is skipped.
// IDs that are not valid queue file names are never turned into paths.
type idLookup struct {
	*postfixq.Spool
	ids []string
}

// Walk yields a Ref for the first message queue that holds each ID.
func (s idLookup) Walk(ctx context.Context, fn func(queue.Ref) error) error {
	seen := map[string]bool{}
	for _, id := range s.ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if !postfixq.ValidName(id) {
			continue
		}
		// The first queue that has it, in postsuper's order of message
		// queues; a stat each, no open until Read.
		for _, q := range []string{queue.Hold, queue.Incoming, queue.Active, queue.Deferred, queue.Maildrop, queue.Corrupt} {
			p := s.MessagePath(q, id)
			if _, err := s.Lstat(p); err != nil {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(queue.Ref{Queue: q, ID: id, Path: p}); err != nil {
				return err
			}
			break
		}
	}
	return nil
}

// ReadContents reads the headers of every selected message that has none
// yet, in parallel (workers <= 0: filter.DefaultWorkers), for output that
// shows subjects. It returns the errors of the messages it could not read.
func ReadContents(ctx context.Context, src queue.Source, results []filter.Result, workers int) []error {
	if workers <= 0 {
		workers = filter.DefaultWorkers()
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	errs := make([]error, len(results))
	for i := range results {
		m := results[i].Msg
		if m.Content != nil || m.Err != nil || m.Path == "" {
			continue
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c, err := src.ReadContent(m, queue.ContentOptions{})
			if err != nil {
				errs[i] = fmt.Errorf("%s: reading headers: %w", m.Path, err)
				return nil
			}
			m.Content = c
			return nil
		})
	}
	_ = g.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

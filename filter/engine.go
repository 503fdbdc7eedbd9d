package filter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Result is one selected message and, for --explain, why it was selected.
type Result struct {
	Msg *queue.Message
	Why []string
}

// Stats counts what a scan did.
type Stats struct {
	Walked      int64 // refs the Source listed
	Examined    int64 // messages read (vanished ones included)
	Matched     int64 // messages selected
	Vanished    int64 // gone between Walk and Read (or ReadContent): skipped
	Corrupt     int64 // read with Message.Err set (examined, matched or not; of a queue.StagedSource, only the messages read whole)
	ContentRead int64 // ReadContent calls
	Errors      int64 // per-message read errors
}

// ReadError is a per-message failure: the message could not be read (or
// its content could not be), so it was neither selected nor rejected.
type ReadError struct {
	Ref queue.Ref
	Op  string // "read" or "read content"
	Err error
}

func (e *ReadError) Error() string {
	name := e.Ref.Path
	if name == "" {
		name = e.Ref.Queue + "/" + e.Ref.ID
	}
	return fmt.Sprintf("filter: %s: %s: %v", name, e.Op, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

// maxKeptErrors bounds the errors a PartialError keeps (the count is exact).
const maxKeptErrors = 1000

// PartialError is what Scan and Select return when every message was
// examined but some could not be read. The results delivered or returned
// alongside it are valid; use errors.As to tell it from a fatal error.
type PartialError struct {
	Errs  []*ReadError // the first maxKeptErrors errors
	Total int64        // how many there were
}

func (e *PartialError) Error() string {
	if len(e.Errs) == 0 {
		return fmt.Sprintf("filter: %d messages could not be read", e.Total)
	}
	if e.Total == 1 {
		return e.Errs[0].Error()
	}
	return fmt.Sprintf("%v (and %d more messages could not be read)", e.Errs[0], e.Total-1)
}

// Unwrap gives errors.Is and errors.As access to the kept errors.
func (e *PartialError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, r := range e.Errs {
		out[i] = r
	}
	return out
}

// errPanic marks a ReadError made from a panic in the Source.
var errPanic = errors.New("panic in queue reader")

// ErrStop, returned by a Scan callback, ends the scan early without error.
var ErrStop = errors.New("filter: stop scan")

// Options tune a scan. The zero Options are fine.
type Options struct {
	// Workers reading messages concurrently; <= 0 means DefaultWorkers().
	Workers int
	// Progress, when set, is called from one goroutine with the number of
	// messages examined so far and total -1, at most about ten times a
	// second and once at the end.
	Progress queue.Progress
	// OnError, when set, receives every per-message read error (from one
	// goroutine, serialised with the result callback) instead of Scan
	// collecting them into a *PartialError. Returning an error aborts the
	// scan with that error.
	OnError func(*ReadError) error
	// Stats, when set, receives the scan's counters when Scan returns.
	Stats *Stats
}

// DefaultWorkers is the worker count for I/O-bound reading: twice
// GOMAXPROCS, at least 2, at most 16.
func DefaultWorkers() int {
	return min(max(2*runtime.GOMAXPROCS(0), 2), 16)
}

// scanBatch is how many refs (and results) travel per channel send.
const scanBatch = 64

// item is one examined message travelling from a worker to the collector.
type item struct {
	res  *Result    // selected message, or nil
	rerr *ReadError // per-message failure, or nil
	// vanished, corrupt and content report what happened for Stats.
	vanished, corrupt, content bool
}

// Scan runs m over every message of src, in parallel as restic's
// ParallelList does: one producer goroutine runs src.Walk and feeds a
// bounded channel; opt.Workers workers Read each message, apply the
// envelope criteria and, only for envelope matches of a spec that needs
// content, ReadContent (with the body only when NeedsBody). fn gets every
// selected message, from one goroutine at a time, in completion order.
//
// Messages that vanish between Walk and Read are skipped silently. Other
// per-message errors go to opt.OnError or, without one, are returned at
// the end as a *PartialError once everything else was examined. A corrupt
// message (Message.Err set) is matched on the fields that were read. A
// content read that fails but returns partial content is matched on that
// content and sets Message.Err. The content of a selected message is kept
// in Msg.Content, without its body.
//
// Cancelling ctx stops the walk and the workers promptly and Scan returns
// ctx's error; an error from fn (other than ErrStop) or from src.Walk ends
// the scan with that error.
func Scan(ctx context.Context, src queue.Source, m *Matcher, opt Options, fn func(Result) error) error {
	if m == nil {
		return errors.New("filter: Scan without a Matcher")
	}
	var st Stats
	err := scan(ctx, src, m, opt, fn, &st)
	if opt.Stats != nil {
		*opt.Stats = st
	}
	return err
}

func scan(ctx context.Context, src queue.Source, m *Matcher, opt Options, fn func(Result) error, st *Stats) error {
	workers := opt.Workers
	if workers <= 0 {
		workers = DefaultWorkers()
	}
	g, gctx := errgroup.WithContext(ctx)
	// Refs and results travel in batches: one channel hand-off per message
	// cost as many scheduler wake-ups as messages (futex/nanosleep showed
	// up beside the file system calls in the profile of a 1M scan).
	refs := make(chan []queue.Ref, 2*workers)
	out := make(chan []item, 2*workers)
	var walked atomic.Int64

	g.Go(func() error {
		defer close(refs)
		batch := make([]queue.Ref, 0, scanBatch)
		send := func() error {
			if len(batch) == 0 {
				return nil
			}
			select {
			case refs <- batch:
				walked.Add(int64(len(batch)))
				batch = make([]queue.Ref, 0, scanBatch)
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		err := src.Walk(gctx, func(r queue.Ref) error {
			batch = append(batch, r)
			if len(batch) < scanBatch {
				return gctx.Err()
			}
			return send()
		})
		if err == nil {
			err = send()
		}
		if err != nil && gctx.Err() != nil {
			// The walk ended because the scan was cancelled; report the
			// cause, not the walk's echo of it.
			return gctx.Err()
		}
		return err
	})

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			for batch := range refs {
				items := make([]item, 0, len(batch))
				for _, r := range batch {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					items = append(items, examine(src, m, r))
				}
				select {
				case out <- items:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		wg.Wait()
		close(out)
		return nil
	})

	var partial PartialError
	// collect accounts for one examined message, from the collector
	// goroutine only.
	collect := func(it item) error {
		st.Examined++
		switch {
		case it.vanished:
			st.Vanished++
		case it.rerr != nil:
			st.Errors++
			if opt.OnError != nil {
				if err := opt.OnError(it.rerr); err != nil {
					return err
				}
			} else {
				partial.Total++
				if len(partial.Errs) < maxKeptErrors {
					partial.Errs = append(partial.Errs, it.rerr)
				}
			}
		}
		if it.corrupt {
			st.Corrupt++
		}
		if it.content {
			st.ContentRead++
		}
		if it.res != nil {
			st.Matched++
			return fn(*it.res)
		}
		return nil
	}
	g.Go(func() error {
		var last time.Time
		var lastDone int64
		report := func(force bool) {
			if opt.Progress == nil {
				return
			}
			if !force && st.Examined-lastDone < 1024 && time.Since(last) < 100*time.Millisecond {
				return
			}
			last = time.Now()
			lastDone = st.Examined
			opt.Progress(st.Examined, -1)
		}
		for items := range out {
			for _, it := range items {
				if err := collect(it); err != nil {
					return err
				}
			}
			report(false)
		}
		report(true)
		return nil
	})

	err := g.Wait()
	st.Walked = walked.Load()
	switch {
	case errors.Is(err, ErrStop):
		return nil
	case err != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	case partial.Total > 0:
		return &partial
	}
	return nil
}

// examine reads and matches one message. A panic in the Source (a reader
// bug on some input) becomes that message's ReadError, so one bad file
// cannot end a scan of a million.
func examine(src queue.Source, m *Matcher, r queue.Ref) (it item) {
	op := "read"
	defer func() {
		if p := recover(); p != nil {
			it = item{rerr: &ReadError{Ref: r, Op: op, Err: fmt.Errorf("%w: %v", errPanic, p)}}
		}
	}()
	var msg *queue.Message
	var err error
	if ss, ok := src.(queue.StagedSource); ok && m.staged != 0 {
		// Only what the criteria test first; the rest only if it passes.
		pm, perr := ss.ReadFields(r, m.staged)
		switch {
		case perr != nil:
			if errors.Is(perr, fs.ErrNotExist) || errors.Is(perr, queue.ErrNotReady) {
				return item{vanished: true}
			}
			return item{rerr: &ReadError{Ref: r, Op: "read", Err: perr}}
		case pm != nil:
			if ok, _ := m.envelope(pm, nil); !ok {
				return item{}
			}
			msg, err = ss.ReadRest(r, m.staged)
		default:
			msg, err = src.Read(r)
		}
	} else {
		msg, err = src.Read(r)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, queue.ErrNotReady) {
			return item{vanished: true}
		}
		return item{rerr: &ReadError{Ref: r, Op: "read", Err: err}}
	}
	if msg == nil {
		return item{rerr: &ReadError{Ref: r, Op: "read", Err: errors.New("source returned no message")}}
	}
	it = item{corrupt: msg.Err != nil}
	env, failed := m.envelope(msg, nil)
	var c *queue.Content
	matched := env
	if env && m.NeedsContent() {
		it.content = true
		op = "read content"
		c, err = src.ReadContent(msg, queue.ContentOptions{Body: m.NeedsBody()})
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				it.vanished = true
				return it
			}
			if c == nil {
				it.rerr = &ReadError{Ref: r, Op: "read content", Err: err}
				return it
			}
			if msg.Err == nil {
				msg.Err = err
				it.corrupt = true
			}
		}
		matched, failed = m.content(c, nil)
	}
	ok, why := m.decide(msg, c, matched, failed)
	if !ok {
		return it
	}
	if c != nil {
		c.Body = nil // the selection must not hold every body in memory
		msg.Content = c
	}
	it.res = &Result{Msg: msg, Why: why}
	return it
}

// Select runs Scan and returns the selected messages sorted by Compare.
// Memory is bounded by the selection, not by the queue. A *PartialError
// comes with valid results.
func Select(ctx context.Context, src queue.Source, m *Matcher, opt Options) ([]Result, error) {
	var out []Result
	err := Scan(ctx, src, m, opt, func(r Result) error {
		out = append(out, r)
		return nil
	})
	var pe *PartialError
	if err != nil && !errors.As(err, &pe) {
		return nil, err
	}
	SortResults(out)
	return out, err
}

// queueRank orders queue names the way an admin reads a queue: Postfix's
// queues in the order mail moves through them, then qmail's.
func queueRank(q string) int {
	switch q {
	case queue.Maildrop:
		return 0
	case queue.Incoming:
		return 1
	case queue.Active:
		return 2
	case queue.Deferred:
		return 3
	case queue.Hold:
		return 4
	case queue.Corrupt:
		return 5
	case queue.Saved:
		return 6
	case queue.QmailTodo:
		return 7
	case queue.QmailQueue:
		return 8
	}
	return 9
}

// Compare orders messages by queue (maildrop, incoming, active, deferred,
// hold, corrupt, saved, todo, queue, then unknown names alphabetically),
// then by ID (numerically when both IDs are decimal numbers, as qmail's
// are), then by path.
func Compare(a, b *queue.Message) int {
	if c := cmp.Compare(queueRank(a.Queue), queueRank(b.Queue)); c != 0 {
		return c
	}
	if c := strings.Compare(a.Queue, b.Queue); c != 0 {
		return c
	}
	if c := CompareIDs(a.ID, b.ID); c != 0 {
		return c
	}
	return strings.Compare(a.Path, b.Path)
}

// CompareIDs compares queue IDs: numerically when both are decimal numbers
// (of any length), otherwise as strings.
func CompareIDs(a, b string) int {
	if isDigits(a) && isDigits(b) {
		a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
		if c := cmp.Compare(len(a), len(b)); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// SortResults sorts results by Compare of their messages.
func SortResults(rs []Result) {
	slices.SortStableFunc(rs, func(a, b Result) int { return Compare(a.Msg, b.Msg) })
}

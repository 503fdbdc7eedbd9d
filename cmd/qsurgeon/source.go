package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/mimeword"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

const (
	defaultPostfixQueue = "/var/spool/postfix"
	defaultQmailQueue   = "/var/qmail/queue"
)

// readNeeds says what a command needs read of every message beyond what a
// selection by envelope needs. Leaving out what nobody will look at saves
// two opens per Postfix message (the defer and bounce logs) and a map.
type readNeeds struct {
	logs  bool // delay/bounce reasons and the Bouncing flag
	attrs bool // every Postfix named attribute (show)
}

// queueDir resolves --queue: the flag, else Postfix's own idea of its
// queue directory, else the compiled-in defaults.
func queueDir(o globalOpts) string {
	if o.Queue != "" {
		return o.Queue
	}
	if o.MTA == string(queue.Qmail) {
		return defaultQmailQueue
	}
	if path, err := exec.LookPath("postconf"); err == nil {
		args := []string{"-h", "queue_directory"}
		if o.ConfigDir != "" {
			args = append([]string{"-c", o.ConfigDir}, args...)
		}
		if out, err := exec.Command(path, args...).Output(); err == nil {
			if d := strings.TrimSpace(string(out)); d != "" {
				return d
			}
		}
	}
	if o.MTA == "auto" || o.MTA == "" {
		if _, err := os.Lstat(defaultPostfixQueue); err != nil {
			if _, err := os.Lstat(defaultQmailQueue); err == nil {
				return defaultQmailQueue
			}
		}
	}
	return defaultPostfixQueue
}

// openSource opens the queue named by the global options. Entries the
// reader leaves alone (symbolic links, bad names, files still being
// written) are reported on w as they are met, never acted on.
func openSource(o globalOpts, w io.Writer, need readNeeds) (queue.Source, error) {
	dir := queueDir(o)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fail(exitNoQueue, fmt.Errorf("queue %s: %w", dir, err), "give the queue directory with --queue DIR")
	}
	if !st.IsDir() {
		return nil, fail(exitNoQueue, fmt.Errorf("queue %s: not a directory", dir), "give the queue directory with --queue DIR")
	}
	mta := o.MTA
	switch mta {
	case "", "auto":
		if qmailq.IsQmailQueue(dir) {
			mta = string(queue.Qmail)
		} else if postfixq.IsPostfixQueue(dir) {
			mta = string(queue.Postfix)
		} else {
			return nil, fail(exitNoQueue, fmt.Errorf("%s is neither a Postfix nor a qmail queue directory", dir),
				"point --queue at the queue_directory (Postfix: it has deferred/, incoming/...; qmail: mess/, info/, todo/...) or force --mta")
		}
	case string(queue.Postfix), string(queue.Qmail):
		if err := checkLayout(dir, mta); err != nil {
			return nil, err
		}
	default:
		return nil, usageErr("--mta %q: want auto, postfix or qmail", mta)
	}
	if mta == string(queue.Qmail) {
		q, err := qmailq.Open(dir)
		if err != nil {
			return nil, fail(exitNoQueue, err, "")
		}
		q.TrustSMTPD(smtpdUIDs(o)...)
		return q, nil
	}
	var mu sync.Mutex
	popts := postfixq.Options{OnNote: func(n postfixq.Note) {
		mu.Lock()
		defer mu.Unlock()
		if busyNote(n) {
			// Files Postfix is writing right now: normal on a live
			// queue, not worth a line each.
			return
		}
		fmt.Fprintf(w, "qsurgeon: warning: %s: %s: left alone%s\n", printable(n.Path), n.Kind, printable(detail(n.Detail)))
	}}
	popts.SkipLogs, popts.SkipAttrs = !need.logs, !need.attrs
	if o.ConfigDir != "" {
		cfg, err := postfixq.LoadConfig(o.ConfigDir)
		if err != nil {
			return nil, fail(exitError, err, "--config-dir names the Postfix config directory (the one with main.cf)")
		}
		popts.Config = &cfg
	}
	s, err := postfixq.Open(dir, popts)
	if err != nil {
		return nil, fail(exitNoQueue, err, "")
	}
	return s, nil
}

// checkLayout refuses a directory that does not have the layout of the MTA
// --mta forces (exit 4), saying what it looks like instead: reading a qmail
// queue as Postfix finds "0 messages", which an admin in a hurry takes for
// an empty queue.
func checkLayout(dir, mta string) error {
	isPostfix, isQmail := postfixq.IsPostfixQueue(dir), qmailq.IsQmailQueue(dir)
	looks := "neither a Postfix nor a qmail queue directory"
	switch {
	case isQmail:
		looks = "a qmail queue (it has mess/, info/, local/, remote/, todo/, lock/)"
	case isPostfix:
		looks = "a Postfix queue (it has deferred/, incoming/, active/, ...)"
	}
	switch {
	case mta == string(queue.Postfix) && !isPostfix:
		return fail(exitNoQueue, fmt.Errorf("--mta postfix, but %s is not a Postfix queue: it looks like %s", dir, looks),
			"drop --mta (auto-detection), or point --queue at Postfix's queue_directory (it has deferred/ and incoming/, active/, hold/ or maildrop/)")
	case mta == string(queue.Qmail) && !isQmail:
		return fail(exitNoQueue, fmt.Errorf("--mta qmail, but %s is not a qmail queue: it looks like %s", dir, looks),
			"drop --mta (auto-detection), or point --queue at qmail's queue (it has mess/, info/, local/, remote/, todo/ and lock/)")
	}
	return nil
}

// selection is the result of running the filter over a source.
type selection struct {
	src     queue.Source
	results []filter.Result
	stats   filter.Stats
	errs    []error
}

// keep says how much of a selected message a command holds on to until
// it prints or acts: the selection of a million-message queue can be
// 100,000 messages, so memory follows what is kept of each.
type keep int

const (
	keepAll      keep = iota // output that shows everything (table, JSON, show)
	keepIDs                  // --format ids: the ID and what sorts it
	keepSurgery              // actions: identity, state and the preview's fields
	keepEnvelope             // actions that carry the recipients along (quarantine, --into)
)

// trim drops what k does not need of a selected message.
func (k keep) trim(m *queue.Message) {
	switch k {
	case keepIDs:
		*m = queue.Message{MTA: m.MTA, Queue: m.Queue, ID: m.ID, Path: m.Path}
	case keepSurgery:
		// Neither the action, the plan nor the preview shows these; a
		// 100k-message selection holds each of them 100k times.
		m.Recipients = nil
		m.ClientAddr, m.ClientName, m.HELO, m.SASLMethod = "", "", "", ""
		fallthrough
	case keepEnvelope:
		m.Attrs = nil
		if m.Content != nil {
			m.Content.Headers, m.Content.Body = nil, nil
		}
	}
}

// selectMessages compiles the filter flags and runs the parallel engine
// over src, with a progress bar on a terminal. Unreadable messages are
// warned about and collected in the selection's errs; qmail strays are
// reported.
func (e *env) selectMessages(c *cli.Context, o globalOpts, ff *filterFlags, src queue.Source, k keep) (*selection, error) {
	spec, err := ff.spec(e.stdin, clock.Now())
	if err != nil {
		return nil, err
	}
	if err := ff.withLogs(e, &spec); err != nil {
		return nil, err
	}
	m, err := compile(spec)
	if err != nil {
		return nil, fail(exitUsage, err, "")
	}
	sel := &selection{src: src}
	opt := filter.Options{
		Workers: o.Workers,
		Stats:   &sel.stats,
		OnError: func(err *filter.ReadError) error {
			sel.errs = append(sel.errs, err)
			return nil
		},
	}
	bar := e.progress(o, "scanning "+src.Root())
	if bar != nil {
		opt.Progress = func(done, total int64) { _ = bar.Set64(done) }
	}
	scanned := src
	if sp, ok := src.(*postfixq.Spool); ok && len(spec.IDs) > 0 {
		// Known Postfix IDs: look each one up where Postfix keeps it, as
		// postsuper does, instead of reading the whole queue. (qmail
		// keeps the full walk: its inventory finds parts in the wrong
		// subdirectory, which a delete must remove too.)
		scanned = idLookup{Spool: sp, ids: spec.IDs}
	}
	err = filter.Scan(c.Context, scanned, m, opt, func(r filter.Result) error {
		k.trim(r.Msg)
		if !ff.explain {
			r.Why = nil
		}
		sel.results = append(sel.results, r)
		return nil
	})
	filter.SortResults(sel.results)
	if bar != nil {
		_ = bar.Finish()
		_ = bar.Clear()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, fail(exitError, errors.New("interrupted"), "")
		}
		return nil, err
	}
	for _, err := range sel.errs {
		e.warn(err)
	}
	ff.logNotes(e)
	e.reportStrays(src)
	if len(spec.SASLUsers) > 0 && len(sel.results) == 0 {
		e.hintUntrustedAuth(src)
	}
	return sel, nil
}

// smtpdUIDs is --smtpd-uid, or by default the uid of the vpopmail account
// when this machine has one (vpopmail set-ups run qmail-smtpd as vpopmail
// so that vchkpw can read the accounts; qmail-queue then writes "invoked
// by uid N" instead of "invoked from network").
func smtpdUIDs(o globalOpts) []int64 {
	var out []int64
	for _, u := range o.SMTPDUIDs.Value() {
		out = append(out, int64(u))
	}
	if len(out) > 0 {
		return out
	}
	if u, err := user.Lookup("vpopmail"); err == nil {
		if n, err := strconv.ParseInt(u.Uid, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// hintUntrustedAuth says, when a selection by SASL user found nothing,
// that SMTP-AUTH headers exist after an "invoked by uid N" that is not
// trusted, and which flag would trust them.
func (e *env) hintUntrustedAuth(src queue.Source) {
	q, ok := src.(*qmailq.Queue)
	if !ok {
		return
	}
	counts := q.UntrustedAuth()
	uids := make([]int64, 0, len(counts))
	for u := range counts {
		uids = append(uids, u)
	}
	sort.Slice(uids, func(i, j int) bool {
		return counts[uids[i]] > counts[uids[j]] || counts[uids[i]] == counts[uids[j]] && uids[i] < uids[j]
	})
	for _, u := range uids {
		fmt.Fprintf(e.stderr, "qsurgeon: hint: %d message(s) carry an SMTP-AUTH Received header after qmail-queue's 'invoked by uid %d', which is not trusted (a local user could have written it); if qmail-smtpd runs as uid %d (vpopmail set-ups), add --smtpd-uid %d\n", counts[u], u, u, u)
	}
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

// warn prints a per-message warning on stderr; the command goes on.
func (e *env) warn(err error) {
	fmt.Fprintf(e.stderr, "qsurgeon: warning: %s\n", printable(err.Error()))
}

// reportStrays names the entries of a qmail queue that belong to no
// message: they are never selected or touched, but an admin must know.
func (e *env) reportStrays(src queue.Source) {
	q, ok := src.(*qmailq.Queue)
	if !ok {
		return
	}
	for _, s := range q.Strays() {
		fmt.Fprintf(e.stderr, "qsurgeon: warning: %s: %s: left alone\n", printable(s.Path), printable(s.Why))
	}
}

// postfixTemp matches the temporary names Postfix itself writes new queue
// files under: "<usec>.<pid>" (global/mail_queue.c:mail_queue_enter).
var postfixTemp = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// busyNote reports entries of a live Postfix queue that are being written:
// a file whose owner bits are not yet rwx, or one of Postfix's own
// temporary names. Anything else left alone is worth a warning.
func busyNote(n postfixq.Note) bool {
	return n.Kind == postfixq.NoteInProgress || (n.Kind == postfixq.NoteTemporary && postfixTemp.MatchString(path.Base(n.Path)))
}

// detail formats an optional note detail as " (detail)".
func detail(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// compile turns a Spec into a Matcher whose --header values decode
// RFC 2047 words in every charset (internal/mimeword).
func compile(spec filter.Spec) (*filter.Matcher, error) {
	m, err := filter.Compile(spec)
	if err != nil {
		return nil, err
	}
	m.SetCharsetReader(mimeword.CharsetReader)
	return m, nil
}

// progress returns a progress bar on stderr, or nil when stderr is not a
// terminal, the output is JSON, or --no-progress was given.
func (e *env) progress(o globalOpts, what string) *progressbar.ProgressBar {
	if o.NoProgress || o.Format == "json" || !isTerminal(e.stderr) {
		return nil
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(e.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
	)
}

// notExist reports a missing file as the message having left the queue.
func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

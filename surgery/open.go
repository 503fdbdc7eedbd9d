package surgery

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"sync"

	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// The compiled-in queue directories of both MTAs.
const (
	DefaultPostfixQueue = "/var/spool/postfix"
	DefaultQmailQueue   = "/var/qmail/queue"
)

// OpenOptions say which queue to open and what to read of every message
// beyond what a selection by envelope needs.
type OpenOptions struct {
	// Dir is the queue directory; "" finds it (QueueDir).
	Dir string
	// MTA is "postfix", "qmail", or "" / "auto" to decide from the layout.
	MTA string
	// ConfigDir is a Postfix configuration directory (main.cf) whose
	// hash_queue_names/depth apply; "" discovers the hashing from the tree.
	ConfigDir string
	// Logs reads delay/bounce reasons and the Bouncing flag (Postfix: two
	// opens more per message); Attrs every Postfix named attribute.
	Logs, Attrs bool
	// TrustSMTPD are the uids qmail-smtpd runs as (vpopmail set-ups): an
	// SMTP-AUTH Received header after qmail-queue's "invoked by uid N"
	// for one of them is trusted (qmailq.Queue.TrustSMTPD).
	TrustSMTPD []int64
	// Warn receives, as it is met, every entry the reader leaves alone
	// (symbolic links, bad names, stray files), except the files a live
	// Postfix is writing right now. May be nil.
	Warn func(msg string)
}

// QueueDir resolves the queue directory: dir when given, else Postfix's
// own idea of it (postconf -h queue_directory), else the compiled-in
// default of the MTA (qmail's when only /var/qmail/queue exists).
func QueueDir(dir, mta, configDir string) string {
	if dir != "" {
		return dir
	}
	if mta == string(queue.Qmail) {
		return DefaultQmailQueue
	}
	if p, err := exec.LookPath("postconf"); err == nil {
		args := []string{"-h", "queue_directory"}
		if configDir != "" {
			args = append([]string{"-c", configDir}, args...)
		}
		if out, err := exec.Command(p, args...).Output(); err == nil {
			if d := strings.TrimSpace(string(out)); d != "" {
				return d
			}
		}
	}
	if mta == "auto" || mta == "" {
		if _, err := os.Lstat(DefaultPostfixQueue); err != nil {
			if _, err := os.Lstat(DefaultQmailQueue); err == nil {
				return DefaultQmailQueue
			}
		}
	}
	return DefaultPostfixQueue
}

// DetectMTA says whose queue dir is: the forced MTA when given, else
// qmail when it has qmail's layout, else Postfix when it has Postfix's.
// This is the one place the decision is made.
func DetectMTA(dir, mta string) (queue.MTA, error) {
	switch mta {
	case "", "auto":
		if qmailq.IsQmailQueue(dir) {
			return queue.Qmail, nil
		}
		if postfixq.IsPostfixQueue(dir) {
			return queue.Postfix, nil
		}
		return "", mark(ErrUnknownLayout, fmt.Errorf("%s is neither a Postfix nor a qmail queue directory", dir))
	case string(queue.Postfix), string(queue.Qmail):
		if err := CheckLayout(dir, queue.MTA(mta)); err != nil {
			return "", err
		}
		return queue.MTA(mta), nil
	}
	return "", mark(ErrUsage, fmt.Errorf("--mta %q: want auto, postfix or qmail", mta))
}

// CheckLayout refuses a directory that does not have the layout of the MTA
// the caller forces (ErrNotPostfix, ErrNotQmail), saying what it looks like
// instead: reading a qmail queue as Postfix finds "0 messages", which an
// admin in a hurry takes for an empty queue.
func CheckLayout(dir string, mta queue.MTA) error {
	isPostfix, isQmail := postfixq.IsPostfixQueue(dir), qmailq.IsQmailQueue(dir)
	looks := "neither a Postfix nor a qmail queue directory"
	switch {
	case isQmail:
		looks = "a qmail queue (it has mess/, info/, local/, remote/, todo/, lock/)"
	case isPostfix:
		looks = "a Postfix queue (it has deferred/, incoming/, active/, ...)"
	}
	var err error
	switch {
	case mta == queue.Postfix && !isPostfix:
		err = mark(ErrNotPostfix, fmt.Errorf("--mta postfix, but %s is not a Postfix queue: it looks like %s", dir, looks))
	case mta == queue.Qmail && !isQmail:
		err = mark(ErrNotQmail, fmt.Errorf("--mta qmail, but %s is not a qmail queue: it looks like %s", dir, looks))
	}
	return err
}

// Open opens the queue o names for reading.
func Open(o OpenOptions) (queue.Source, error) {
	dir := QueueDir(o.Dir, o.MTA, o.ConfigDir)
	st, err := os.Stat(dir)
	if err != nil {
		return nil, mark(ErrNoQueueDir, fmt.Errorf("queue %s: %w", dir, err))
	}
	if !st.IsDir() {
		return nil, mark(ErrNoQueueDir, fmt.Errorf("queue %s: not a directory", dir))
	}
	mta, err := DetectMTA(dir, o.MTA)
	if err != nil {
		return nil, err
	}
	if mta == queue.Qmail {
		q, err := qmailq.Open(dir)
		if err != nil {
			return nil, mark(ErrNoQueue, err)
		}
		q.TrustSMTPD(o.TrustSMTPD...)
		return q, nil
	}
	var mu sync.Mutex
	popts := postfixq.Options{OnNote: func(n postfixq.Note) {
		if o.Warn == nil || busyNote(n) {
			// Files Postfix is writing right now: normal on a live
			// queue, not worth a line each.
			return
		}
		mu.Lock()
		defer mu.Unlock()
		o.Warn(fmt.Sprintf("%s: %s: left alone%s", n.Path, n.Kind, detail(n.Detail)))
	}}
	popts.SkipLogs, popts.SkipAttrs = !o.Logs, !o.Attrs
	if o.ConfigDir != "" {
		cfg, err := postfixq.LoadConfig(o.ConfigDir)
		if err != nil {
			return nil, mark(ErrConfig, err)
		}
		popts.Config = &cfg
	}
	s, err := postfixq.Open(dir, popts)
	if err != nil {
		return nil, mark(ErrNoQueue, err)
	}
	return s, nil
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

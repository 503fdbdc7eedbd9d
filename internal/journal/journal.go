// Package journal keeps an append-only record of what qsurgeon changed: one
// JSON object per line, a "begin" record per run (who, where, which command
// line and filter), one "message" record per message acted on, and an "end"
// record with a summary. Every line is written with a single write(2) on an
// O_APPEND descriptor, so concurrent runs never interleave inside a line and
// a crash loses at most the line being written; End fsyncs.
package journal

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
)

// DefaultPath is where the CLI writes unless told otherwise (--journal).
const DefaultPath = "/var/lib/qsurgeon/journal.jsonl"

// Record types.
const (
	TypeBegin   = "begin"
	TypeMessage = "message"
	TypeEnd     = "end"
)

// Entry is one journal line. Fields not used by a record type are omitted.
type Entry struct {
	Type string    `json:"type"`
	Run  string    `json:"run"`
	Time time.Time `json:"time"`

	// begin
	UID     *int     `json:"uid,omitempty"`
	User    string   `json:"user,omitempty"`
	Host    string   `json:"host,omitempty"`
	PID     int      `json:"pid,omitempty"`
	Command []string `json:"command,omitempty"`
	Filter  any      `json:"filter,omitempty"`

	// message
	ID     string `json:"queue_id,omitempty"`
	Queue  string `json:"queue_name,omitempty"`
	Action string `json:"action,omitempty"`
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`

	// end
	Summary any `json:"summary,omitempty"`
}

// Journal is an open journal file. It is safe for concurrent use.
type Journal struct {
	path string
	mu   sync.Mutex
	f    *os.File
	size int64 // the file's size after the last complete line
	err  error // the first failed write; every later write fails with it
}

// ErrFailed: an earlier write to the journal failed (a full disk, an I/O
// error), so the journal would be short from there on. A caller acting
// message by message stops before the next message when Record fails.
var ErrFailed = errors.New("the journal could not be written; it stays failed")

// Open opens (creating) the journal at path for appending: parent
// directories are created 0700, the file 0600. A symbolic link as the last
// component is refused. If the file ends in a partial line (a crash during a
// write), a newline is added first so the next record starts on its own line.
func Open(path string) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|noFollow, 0600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("journal: %s is not a regular file", path)
	}
	size := fi.Size()
	if n := size; n > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], n-1); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: %s: %w", path, err)
		}
		if last[0] != '\n' {
			if _, err := f.Write([]byte("\n")); err != nil {
				f.Close()
				return nil, fmt.Errorf("journal: %s: %w", path, err)
			}
			size++
		}
	}
	return &Journal{path: path, f: f, size: size}, nil
}

// Path returns the journal's file name.
func (j *Journal) Path() string { return j.path }

// Close closes the file (after an fsync).
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	return err
}

func (j *Journal) write(e *Entry, sync bool) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return j.writeRaw(append(b, '\n'), sync)
}

// writeRaw appends complete lines in one write, or nothing.
func (j *Journal) writeRaw(b []byte, sync bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("journal: %s: %w", j.path, os.ErrClosed)
	}
	if j.err != nil {
		return j.err
	}
	// One write per line: with O_APPEND the kernel places it atomically
	// at the end of the file.
	if _, err := j.f.Write(b); err != nil {
		// A short write (ENOSPC part-way) leaves a cut line: take it
		// back, so the journal holds only complete records and the
		// next Open has nothing to repair.
		_ = j.f.Truncate(j.size)
		j.err = fmt.Errorf("journal: %s: %w: %w", j.path, ErrFailed, err)
		return j.err
	}
	if sync {
		if err := j.f.Sync(); err != nil {
			j.err = fmt.Errorf("journal: %s: %w: %w", j.path, ErrFailed, err)
			return j.err
		}
	}
	j.size += int64(len(b))
	return nil
}

// Run is one command's section of the journal.
type Run struct {
	j  *Journal
	id string
}

// ID returns the run's identifier, shared by all its records.
func (r *Run) ID() string { return r.id }

// Begin writes the header record of a run: time, user (uid and name), host,
// pid, the command line and the filter (any JSON-marshalable value), and
// fsyncs it, so the journal says who started a change before the change.
func (j *Journal) Begin(cmdline []string, filter any) (*Run, error) {
	var rb [8]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	r := &Run{j: j, id: clock.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(rb[:])}
	uid := os.Getuid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	e := &Entry{
		Type: TypeBegin, Run: r.id, Time: clock.Now(),
		UID: &uid, User: name, Host: host, PID: os.Getpid(),
		Command: append([]string{}, cmdline...), Filter: filter,
	}
	if err := j.write(e, true); err != nil {
		return nil, err
	}
	return r, nil
}

// Record writes what happened to one message: action ("delete", "hold",
// ...), result ("done", "skipped", "failed", "planned", ...) and the error if
// any.
func (r *Run) Record(id, queueName, action, result string, err error) error {
	e := &Entry{Type: TypeMessage, Run: r.id, Time: clock.Now(), ID: id, Queue: queueName, Action: action, Result: result}
	if err != nil {
		e.Error = err.Error()
	}
	return r.j.write(e, false)
}

// ResultStarted is the result of a record written before a message is
// acted on (Starting). A run whose journal has a started record without a
// later outcome for the same message was stopped while acting on it.
const ResultStarted = "started"

// Starting writes, in one write, a "started" record for each message about
// to be acted on (ids[i] in queues[i]), before anything is done to them:
// when it fails, nothing of the batch has been touched and the caller
// stops. Record later writes each outcome.
func (r *Run) Starting(action string, ids, queues []string) error {
	if len(ids) == 0 {
		return nil
	}
	now := clock.Now()
	var b []byte
	for i, id := range ids {
		line, err := json.Marshal(&Entry{Type: TypeMessage, Run: r.id, Time: now, ID: id, Queue: queues[i], Action: action, Result: ResultStarted})
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		b = append(append(b, line...), '\n')
	}
	return r.j.writeRaw(b, false)
}

// End writes the closing record with a summary (any JSON-marshalable
// value) and fsyncs the journal.
func (r *Run) End(summary any) error {
	return r.j.write(&Entry{Type: TypeEnd, Run: r.id, Time: clock.Now(), Summary: summary}, true)
}

// maxLine bounds one journal line when reading back.
const maxLine = 16 << 20

// Read parses a journal. A final line without a newline (a crash during a
// write) is ignored; a malformed complete line is an error naming its line
// number, returned with the entries read so far.
func Read(r io.Reader) ([]Entry, error) {
	br := bufio.NewReader(r)
	var out []Entry
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("journal: line %d: %w", n, err)
		}
		if len(line) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return out, fmt.Errorf("journal: line %d: %w", n, err)
		}
		out = append(out, e)
	}
}

var errLongLine = errors.New("line too long")

// readLine returns the next complete line without its newline, io.EOF at
// the end or before a partial last line.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return nil, errLongLine
		}
		switch err {
		case nil:
			return buf[:len(buf)-1], nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			return nil, io.EOF
		default:
			return nil, err
		}
	}
}

// Unfinished scans the journal at path (a missing one has nothing) for
// messages a run started acting on with action and never recorded an
// outcome for: the run was killed while acting on them. It
// returns the time of each such started record by message ID. It streams:
// memory grows only with what is unfinished. Malformed lines are skipped.
func Unfinished(path, action string) (map[string]time.Time, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("journal: %s: not a regular file", path)
	}
	type key struct{ run, id string }
	open := map[key]time.Time{}
	br := bufio.NewReader(f)
	for {
		line, err := readLine(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, errLongLine) {
				continue
			}
			return nil, fmt.Errorf("journal: %s: %w", path, err)
		}
		var e Entry
		if json.Unmarshal(line, &e) != nil || e.Type != TypeMessage || e.Action != action {
			continue
		}
		k := key{e.Run, e.ID}
		if e.Result == ResultStarted {
			open[k] = e.Time
		} else {
			delete(open, k)
		}
	}
	out := map[string]time.Time{}
	for k, t := range open {
		if old, ok := out[k.id]; !ok || t.Before(old) {
			out[k.id] = t
		}
	}
	return out, nil
}

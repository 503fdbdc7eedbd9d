package quarantine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
)

// ManifestName is the manifest's file name inside the quarantine directory.
const ManifestName = "manifest.jsonl"

// maxManifestLine caps one manifest line (a message with thousands of
// recipients still fits; a corrupt file cannot make us allocate more).
const maxManifestLine = 64 << 20

// State is where an entry's message is.
type State string

// States, in the order an entry goes through them. The manifest is append
// only: each state change is a new line for the same Key, and the last line
// wins. An entry left in StateQuarantining or StateRestoring was interrupted:
// each of its parts is either in the queue or in the quarantine directory,
// and Restore finishes the job from wherever it stopped.
const (
	StateQuarantining State = "quarantining"
	StateQuarantined  State = "quarantined"
	StateRestoring    State = "restoring"
	StateRestored     State = "restored"
)

// String names the entry as a plan's record step prints it: key, state,
// MTA and queue ID.
func (e *Entry) String() string {
	return fmt.Sprintf("%s %s (%s %s)", e.Key, e.State, e.MTA, e.ID)
}

// Part is one file of a message moved into quarantine.
type Part struct {
	// Name says what the file is: "message", "defer", "bounce", "trace"
	// (Postfix), or "mess", "intd", "todo", "info", "local", "remote",
	// "bounce" (qmail).
	Name string `json:"part"`
	// QueuePath is where the file was in the queue, relative to the queue
	// root ("deferred/7/7A6D1BE4D7", "mess/5/12345").
	QueuePath string `json:"queue_path"`
	// DirPath is where it is in the quarantine directory, relative to it.
	DirPath string `json:"dir_path"`
	// Mode holds the permission, set-id and sticky bits (Unix numbering).
	Mode  uint32    `json:"mode"`
	UID   int       `json:"uid"`
	GID   int       `json:"gid"`
	Inode uint64    `json:"inode"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
}

// Recipient is one envelope recipient in the summary.
type Recipient struct {
	Address string `json:"address"`
	Done    bool   `json:"done,omitempty"`
}

// Envelope is the summary of a message kept in the manifest, so an operator
// can see what is quarantined without opening the files.
type Envelope struct {
	Sender     string      `json:"sender"`
	Recipients []Recipient `json:"recipients"`
	SASLUser   string      `json:"sasl_user,omitempty"`
	ClientAddr string      `json:"client_addr,omitempty"`
	Size       int64       `json:"size"`
	Arrival    time.Time   `json:"arrival,omitzero"`
}

// Entry is one quarantined message: one line of the manifest.
type Entry struct {
	// Key names the message's subdirectory of the quarantine directory and
	// identifies the entry across its manifest lines.
	Key string    `json:"key"`
	MTA queue.MTA `json:"mta"`
	// QueueDir is the queue root the message came from.
	QueueDir  string `json:"queue_dir"`
	QueueName string `json:"queue_name"`
	ID        string `json:"id"`
	// Parts are listed in the order they were moved out.
	Parts    []Part    `json:"parts"`
	Envelope Envelope  `json:"envelope"`
	Time     time.Time `json:"time"`
	State    State     `json:"state"`
	// RestoredTo is the queue root a restore put the message into and
	// NewID its name there (the same ID unless a qmail name had to follow
	// its inode); Into says it went in as new mail (Postfix maildrop).
	RestoredTo string `json:"restored_to,omitempty"`
	NewID      string `json:"new_id,omitempty"`
	Into       bool   `json:"into,omitempty"`
	// Note says what a restore left behind (for example the Postfix logs
	// of a message restored into a live maildrop).
	Note string `json:"note,omitempty"`
}

// ManifestError is a manifest line that could not be read.
type ManifestError struct {
	Path string
	Line int
	Err  error
}

func (e *ManifestError) Error() string {
	return fmt.Sprintf("quarantine: %s: line %d: %v", e.Path, e.Line, e.Err)
}

func (e *ManifestError) Unwrap() error { return e.Err }

// ReadManifest reads a manifest and returns the latest state of each entry,
// in the order the entries first appeared. Unreadable lines are skipped and
// reported together (each a *ManifestError) in the error, next to the
// entries that could be read.
func ReadManifest(path string) ([]Entry, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|nofollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseManifest(f, path)
}

func parseManifest(r io.Reader, path string) ([]Entry, error) {
	var (
		order []string
		last  = map[string]Entry{}
		errs  []error
	)
	br := bufio.NewReaderSize(r, 64<<10)
	for line := 1; ; line++ {
		b, err := readLine(br)
		if len(bytes.TrimSpace(b)) > 0 {
			var e Entry
			if jerr := json.Unmarshal(b, &e); jerr != nil {
				errs = append(errs, &ManifestError{Path: path, Line: line, Err: jerr})
			} else if e.Key == "" {
				errs = append(errs, &ManifestError{Path: path, Line: line, Err: errors.New("entry without key")})
			} else {
				if _, ok := last[e.Key]; !ok {
					order = append(order, e.Key)
				}
				last[e.Key] = e
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, &ManifestError{Path: path, Line: line, Err: err})
			if !errors.Is(err, errLineTooLong) {
				break
			}
		}
	}
	out := make([]Entry, 0, len(order))
	for _, k := range order {
		out = append(out, last[k])
	}
	return out, errors.Join(errs...)
}

var errLineTooLong = fmt.Errorf("line longer than %d bytes", maxManifestLine)

// readLine returns one line without its newline, never more than
// maxManifestLine bytes (the rest of a longer line is skipped).
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxManifestLine {
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return nil, err
			}
			return nil, errLineTooLong
		}
		buf = append(buf, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSuffix(buf, []byte("\n")), err
	}
}

// appendManifest appends one line per entry to the manifest at path, in
// one write, and fsyncs it.
func appendManifest(path string, es ...Entry) error {
	if len(es) == 0 {
		return nil
	}
	var b []byte
	for _, e := range es {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|nofollow|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("quarantine: %s: not a regular file", path)
	}
	size := fi.Size()
	if size > 0 {
		// A line cut by a crash: end it, so this append does not join it.
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err != nil {
			f.Close()
			return err
		}
		if last[0] != '\n' {
			// A line cut by a crash or a full disk (an append before
			// this one was all or nothing) was never a record: drop it,
			// so that it neither joins this append nor makes every
			// later read warn. A cut line too long to find its start is
			// ended instead.
			start := max(0, size-maxManifestLine-1)
			tail := make([]byte, size-start)
			if _, err := f.ReadAt(tail, start); err != nil {
				f.Close()
				return err
			}
			if i := bytes.LastIndexByte(tail, '\n'); i >= 0 || start == 0 {
				size = start + int64(i) + 1
				if err := f.Truncate(size); err != nil {
					f.Close()
					return err
				}
			} else {
				b = append([]byte{'\n'}, b...)
			}
		}
	}
	if _, err := f.Write(b); err != nil {
		// A short write (a full disk) would leave a cut line that every
		// later read warns about: take it back, all or nothing.
		_ = f.Truncate(size)
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Truncate(size)
		f.Close()
		return err
	}
	return f.Close()
}

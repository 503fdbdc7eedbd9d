package surgery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
)

// RawWriter is a source that can reproduce a message exactly as RFC 5322
// text (postfixq.Spool, qmailq.Queue).
type RawWriter interface {
	WriteRaw(w io.Writer, m *queue.Message) error
}

// Exportable reports whether src can export its messages; the error names
// the MTA that cannot.
func Exportable(src queue.Source) error {
	if _, ok := src.(RawWriter); !ok {
		return fmt.Errorf("export is not supported for %s queues", src.MTA())
	}
	return nil
}

// ExportOptions are the options of ExportDir and ExportMbox.
type ExportOptions struct {
	// Envelope, when set, is what is written as each message's envelope
	// in JSON (DIR/<id>.json, or one line of FILE.jsonl); nil writes no
	// envelope. Headers (Message.Content) are read before it is called.
	Envelope func(m *queue.Message) any
	Workers  int // for reading the headers; 0: filter.DefaultWorkers
}

// ExportReport is what an export did: the messages written, and one
// *queue.ActionError (Action "export") per message that could not be read
// and was skipped, in selection order.
type ExportReport struct {
	Exported int
	Failures []error
}

// Failed is the number of messages not exported.
func (r ExportReport) Failed() int { return len(r.Failures) }

func exportFailure(m *queue.Message, err error) error {
	return &queue.ActionError{Format: "surgery", Action: "export", ID: m.ID, Err: err}
}

// start is what both exports do first: the source's raw writer, and the
// headers the envelope shows.
func (o ExportOptions) start(ctx context.Context, sel *Selection) (RawWriter, error) {
	rw, ok := sel.Source.(RawWriter)
	if !ok {
		return nil, Exportable(sel.Source)
	}
	if o.Envelope != nil {
		ReadContents(ctx, sel.Source, sel.Results, o.Workers)
	}
	return rw, nil
}

// ExportDir writes DIR/<id>.eml (the message as RFC 5322 text) and, with
// o.Envelope, DIR/<id>.json for every selected message. The queue is not
// changed. Every file is new: one that exists already is an error, and a
// file is written completely or not at all. A message that cannot be read
// is a failure in the report and the export goes on; a write error (a full
// disk) stops it and is returned.
func ExportDir(ctx context.Context, sel *Selection, dir string, o ExportOptions) (rep ExportReport, err error) {
	rw, err := o.start(ctx, sel)
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return rep, err
	}
	for _, r := range sel.Results {
		m := r.Msg
		base := filepath.Join(dir, safeName(m.ID))
		// Streamed to the file (a message may be large); a read error
		// skips the message, a write error (a full disk) stops.
		if werr, err := writeNewFrom(base+".eml", func(w io.Writer) error { return rw.WriteRaw(w, m) }); werr != nil {
			return rep, werr
		} else if err != nil {
			rep.Failures = append(rep.Failures, exportFailure(m, err))
			continue
		}
		rep.Exported++
		if o.Envelope == nil {
			continue
		}
		env, _ := json.MarshalIndent(o.Envelope(m), "", "  ")
		if err := writeNew(base+".json", append(env, '\n')); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// ExportMbox appends the selected messages to the mbox file path (mboxrd
// quoting; created if missing) and, with o.Envelope, their envelopes to
// path+".jsonl", one JSON line each. On any write error both files go back
// to their size before the export: an mbox is never left with a cut
// message. A message that cannot be read is a failure in the report.
func ExportMbox(ctx context.Context, sel *Selection, path string, o ExportOptions) (ExportReport, error) {
	var rep ExportReport
	rw, err := o.start(ctx, sel)
	if err != nil {
		return rep, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	var jf *os.File
	var enc *json.Encoder
	if o.Envelope != nil {
		if jf, err = os.OpenFile(path+".jsonl", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return rep, err
		}
		defer jf.Close()
		enc = json.NewEncoder(jf)
		enc.SetEscapeHTML(false)
	}
	var mboxSize, jsonSize int64
	if fi, err := f.Stat(); err == nil {
		mboxSize = fi.Size()
	}
	if jf != nil {
		if fi, err := jf.Stat(); err == nil {
			jsonSize = fi.Size()
		}
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Truncate(mboxSize)
			if jf != nil {
				_ = jf.Truncate(jsonSize)
			}
		}
	}()
	w := bufio.NewWriter(f)
	for _, r := range sel.Results {
		m := r.Msg
		var buf bytes.Buffer
		if err := rw.WriteRaw(&buf, m); err != nil {
			rep.Failures = append(rep.Failures, exportFailure(m, err))
			continue
		}
		sender := m.Sender
		if m.NullSender || sender == "" {
			sender = "MAILER-DAEMON"
		}
		fmt.Fprintf(w, "From %s %s\n", sender, m.Arrival.UTC().Format(time.ANSIC))
		writeMboxrd(w, buf.Bytes())
		if enc != nil {
			if err := enc.Encode(o.Envelope(m)); err != nil {
				return rep, err
			}
		}
		rep.Exported++
	}
	if err := w.Flush(); err != nil {
		return rep, err
	}
	if err := f.Sync(); err != nil {
		return rep, err
	}
	if jf != nil {
		if err := jf.Sync(); err != nil {
			return rep, err
		}
	}
	ok = true
	return rep, nil
}

// writeMboxrd writes a message body with mboxrd quoting: every line that
// matches ^>*From  gets one more '>'.
func writeMboxrd(w *bufio.Writer, msg []byte) {
	lines := bytes.SplitAfter(msg, []byte("\n"))
	for _, l := range lines {
		if bytes.HasPrefix(bytes.TrimLeft(l, ">"), []byte("From ")) {
			w.WriteByte('>')
		}
		w.Write(l)
	}
	if len(msg) > 0 && msg[len(msg)-1] != '\n' {
		w.WriteByte('\n')
	}
	w.WriteByte('\n')
}

// writeNew writes a new file completely or not at all: the data goes to a
// temporary name in the same directory, is synced, and only then gets its
// name with link(2), which never replaces an existing file. A full disk
// leaves no 0-byte or cut file behind.
func writeNew(path string, data []byte) error {
	werr, err := writeNewFrom(path, func(w io.Writer) error { _, err := w.Write(data); return err })
	if werr != nil {
		return werr
	}
	return err
}

// writeNewFrom is writeNew with the content written by fill. It returns
// the error of writing the file (werr: a full disk) apart from fill's own
// (err: e.g. the message could not be read); either leaves no file.
func writeNewFrom(path string, fill func(io.Writer) error) (werr, err error) {
	f, werr := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if werr != nil {
		return werr, nil
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	ew := &errWriter{w: bufio.NewWriterSize(f, 64<<10)}
	err = fill(ew)
	if ew.err == nil {
		ew.err = ew.w.Flush()
	}
	if ew.err == nil {
		ew.err = f.Sync()
	}
	if cerr := f.Close(); ew.err == nil {
		ew.err = cerr
	}
	if ew.err != nil || err != nil {
		return ew.err, err
	}
	return os.Link(tmp, path), nil
}

// errWriter remembers the first error of its writer.
type errWriter struct {
	w   *bufio.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// safeName keeps a queue ID usable as a file name.
func safeName(id string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == '.' {
			return '_'
		}
		return r
	}, id)
}

// MissingIDs lists the IDs asked for (as with --id; "-" is skipped) that
// the selection lacks.
func MissingIDs(asked []string, results []filter.Result) []string {
	found := map[string]bool{}
	for _, r := range results {
		found[r.Msg.ID] = true
	}
	var out []string
	for _, id := range asked {
		if id != "-" && !found[id] {
			out = append(out, id)
		}
	}
	return out
}

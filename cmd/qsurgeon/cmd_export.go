package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

func exportCommand(e *env) *cli.Command {
	var ff filterFlags
	var mbox string
	return &cli.Command{
		Name:      "export",
		Usage:     "copy the selected messages out as .eml files (or one mbox), each with its envelope as JSON (read-only)",
		ArgsUsage: "DIR",
		Description: `Writes DIR/<queue-id>.eml (the exact message as RFC 5322 text) and DIR/<queue-id>.json (its
envelope: sender, recipients, SASL user, client, reasons — the members of 'list --format json')
for every selected message. With --mbox FILE, appends the messages to one mbox file instead
(mboxrd quoting) and writes FILE.jsonl with the envelopes. The queue is not changed.

EXAMPLES:
   # keep evidence of the spam run before deleting it
   qsurgeon export /root/evidence --sasl-user hello@example.com
   qsurgeon export --mbox /root/bounces.mbox --null-sender`,
		Flags: append(ff.flags(),
			&cli.StringFlag{Name: "mbox", Destination: &mbox, Usage: "write one mbox FILE (and FILE.jsonl) instead of a directory of .eml files"},
		),
		Action: func(c *cli.Context) error {
			dir := c.Args().First()
			if (dir == "") == (mbox == "") || c.NArg() > 1 {
				return usageErr("export needs a directory, or --mbox FILE (not both)")
			}
			o := e.opts(c)
			src, err := openSource(o, e.stderr, readNeeds{logs: true})
			if err != nil {
				return err
			}
			rw, ok := src.(rawWriter)
			if !ok {
				return fmt.Errorf("export is not supported for %s queues", src.MTA())
			}
			sel, err := e.selectMessages(c, o, &ff, src, surgery.KeepAll)
			if err != nil {
				return err
			}
			if missing := missingIDs(ff.ids(), sel.Results); len(missing) > 0 {
				fmt.Fprintf(e.stderr, "qsurgeon: not exported (not in the queue, or filtered out): %s\n", strings.Join(missing, " "))
				if len(sel.Results) == 0 {
					return silentExit(exitError)
				}
			}
			readContents(c.Context, src, sel.Results, o.Workers, func(error) {})
			failed := 0
			if mbox != "" {
				failed, err = exportMbox(e.stderr, mbox, rw, sel.Results)
			} else {
				failed, err = exportDir(e.stderr, dir, rw, sel.Results)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "exported %d message(s), %d failed\n", len(sel.Results)-failed, failed)
			if failed > 0 || len(sel.Errs) > 0 || len(missingIDs(ff.ids(), sel.Results)) > 0 {
				return silentExit(exitPartial)
			}
			return nil
		},
	}
}

func exportDir(warn io.Writer, dir string, rw rawWriter, results []filter.Result) (int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	failed := 0
	for _, r := range results {
		m := r.Msg
		base := filepath.Join(dir, safeName(m.ID))
		// Streamed to the file (a message may be large); a read error
		// skips the message, a write error (a full disk) stops.
		if werr, err := writeNewFrom(base+".eml", func(w io.Writer) error { return rw.WriteRaw(w, m) }); werr != nil {
			return failed, werr
		} else if err != nil {
			fmt.Fprintf(warn, "qsurgeon: %s: %s\n", m.ID, printable(err.Error()))
			failed++
			continue
		}
		env, _ := json.MarshalIndent(toJSON(m, nil), "", "  ")
		if err := writeNew(base+".json", append(env, '\n')); err != nil {
			return failed, err
		}
	}
	return failed, nil
}

func exportMbox(warn io.Writer, path string, rw rawWriter, results []filter.Result) (int, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	jf, err := os.OpenFile(path+".jsonl", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer jf.Close()
	// On any failure (a full disk) both files go back to their size
	// before this export: an mbox is never left with a cut message.
	var mboxSize, jsonSize int64
	if fi, err := f.Stat(); err == nil {
		mboxSize = fi.Size()
	}
	if fi, err := jf.Stat(); err == nil {
		jsonSize = fi.Size()
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Truncate(mboxSize)
			_ = jf.Truncate(jsonSize)
		}
	}()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(jf)
	enc.SetEscapeHTML(false)
	failed := 0
	for _, r := range results {
		m := r.Msg
		var buf bytes.Buffer
		if err := rw.WriteRaw(&buf, m); err != nil {
			fmt.Fprintf(warn, "qsurgeon: %s: %s\n", m.ID, printable(err.Error()))
			failed++
			continue
		}
		sender := m.Sender
		if m.NullSender || sender == "" {
			sender = "MAILER-DAEMON"
		}
		fmt.Fprintf(w, "From %s %s\n", sender, m.Arrival.UTC().Format(time.ANSIC))
		writeMboxrd(w, buf.Bytes())
		if err := enc.Encode(toJSON(m, nil)); err != nil {
			return failed, err
		}
	}
	if err := w.Flush(); err != nil {
		return failed, err
	}
	if err := f.Sync(); err != nil {
		return failed, err
	}
	if err := jf.Sync(); err != nil {
		return failed, err
	}
	ok = true
	return failed, nil
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

// missingIDs lists the IDs asked for with --id that the selection lacks.
func missingIDs(asked []string, results []filter.Result) []string {
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

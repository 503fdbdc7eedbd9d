package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/urfave/cli/v2"
)

func init() { commandFactories = append(commandFactories, applyCommand) }

// planEntry is one line of a plan file: enough to find the message again
// and to prove it is still the same message.
type planEntry struct {
	MTA         string `json:"mta"`
	QueueDir    string `json:"queue_dir"`
	QueueName   string `json:"queue_name"`
	QueueID     string `json:"queue_id"`
	Path        string `json:"path"`
	Inode       uint64 `json:"inode"`
	FileSize    int64  `json:"file_size"`
	ArrivalTime int64  `json:"arrival_time"`
	Sender      string `json:"sender"`
	NullSender  bool   `json:"null_sender"`
}

// writePlan writes one planEntry per selected message to a new file
// (never over an existing one) and syncs it.
func writePlan(path string, src queue.Source, results []filter.Result) error {
	root, _ := filepath.Abs(src.Root())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail(exitError, fmt.Errorf("plan: %w", err), "the plan file must not exist yet")
	}
	ok := false
	defer func() {
		if !ok { // a full disk: no cut plan left to apply later
			f.Close()
			os.Remove(path)
		}
	}()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, r := range results {
		m := r.Msg
		if err := enc.Encode(planEntry{MTA: string(m.MTA), QueueDir: root, QueueName: m.Queue, QueueID: m.ID, Path: m.Path,
			Inode: m.Inode, FileSize: m.FileSize, ArrivalTime: m.Arrival.Unix(), Sender: m.Sender, NullSender: m.NullSender}); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	ok = true
	return f.Close()
}

// readPlan reads a plan file written by writePlan.
func readPlan(path string) ([]planEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fail(exitError, fmt.Errorf("plan: %w", err), "")
	}
	defer f.Close()
	var out []planEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var p planEntry
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return nil, fail(exitUsage, fmt.Errorf("plan %s line %d: %w", path, line, err), "")
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = errors.New("line longer than 4 MB")
		}
		return nil, fail(exitUsage, fmt.Errorf("plan %s line %d: %w", path, line+1, err), "a plan file is written by --plan-out; this one is not")
	}
	return out, nil
}

func applyCommand(e *env) *cli.Command {
	var sf safetyFlags
	return &cli.Command{
		Name:      "apply",
		Usage:     "act on a plan written earlier with --plan-out, re-checking every message first",
		ArgsUsage: "PLAN-FILE ACTION",
		Description: `Reads a plan written by 'ACTION --plan-out FILE' and applies ACTION (delete, hold, release,
requeue, expire) to each message in it — but only after re-reading the message and checking
that it is still the same one: same inode, sender and arrival time. Anything that changed or
left the queue is skipped and reported. This closes the race postsuper documents and cannot
close: a short Postfix queue ID reused by a new message between listing and acting.

EXAMPLES:
   qsurgeon delete --sasl-user hello@example.com --plan-out /root/hello.plan
   less /root/hello.plan
   qsurgeon apply /root/hello.plan delete --yes`,
		Flags: sf.flags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageErr("apply needs PLAN-FILE and ACTION")
			}
			planPath, name := c.Args().Get(0), c.Args().Get(1)
			known := false
			var names []string
			for _, a := range actions {
				known = known || a.name == name
				names = append(names, a.name)
			}
			if !known {
				hint := ""
				if n := nearest(name, names); n != "" {
					hint = fmt.Sprintf("did you mean '%s'?", n)
				}
				return fail(exitUsage, fmt.Errorf("apply: unknown action %q (delete, hold, release, requeue, expire)", name), hint)
			}
			entries, err := readPlan(planPath)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				fmt.Fprintln(e.stderr, "the plan is empty; nothing to do.")
				return nil
			}
			o := e.opts(c)
			if !c.IsSet(flagQueue) && e.app.Queue == "" {
				o.Queue = entries[0].QueueDir
			}
			if o.MTA == "auto" || o.MTA == "" {
				o.MTA = entries[0].MTA
			}
			src, sg, err := e.openSurgeon(o, name, readNeeds{})
			if err != nil {
				return err
			}
			var results []filter.Result
			changed := 0
			for _, p := range entries {
				m, err := src.Read(queue.Ref{Queue: p.QueueName, ID: p.QueueID, Path: p.Path})
				why := ""
				switch {
				case errors.Is(err, os.ErrNotExist):
					why = "no longer in the queue"
				case err != nil:
					why = err.Error()
				case m.Inode != p.Inode:
					why = fmt.Sprintf("inode %d is not the planned %d: the ID now names another message", m.Inode, p.Inode)
				case m.Sender != p.Sender || m.NullSender != p.NullSender:
					why = fmt.Sprintf("sender %q is not the planned %q", m.Sender, p.Sender)
				case m.Arrival.Unix() != p.ArrivalTime:
					why = "arrival time changed: another message"
				}
				if why != "" {
					changed++
					fmt.Fprintf(e.stderr, "qsurgeon: %s: skipped: %s\n", printable(p.QueueID), printable(why))
					continue
				}
				results = append(results, filter.Result{Msg: m})
			}
			sf.all = true
			return e.execute(c, o, name, sg, results, &sf, false, changed)
		},
	}
}

package surgery

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
)

// PlanEntry is one line of a plan file: enough to find the message again
// and to prove it is still the same message.
type PlanEntry struct {
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

// WritePlan writes one PlanEntry per selected message to a new file
// (never over an existing one: ErrPlanExists) and syncs it.
func WritePlan(path string, src queue.Source, results []filter.Result) error {
	root, _ := filepath.Abs(src.Root())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return mark(ErrPlanExists, fmt.Errorf("plan: %w", err))
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
		if err := enc.Encode(PlanEntry{MTA: string(m.MTA), QueueDir: root, QueueName: m.Queue, QueueID: m.ID, Path: m.Path,
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

// ReadPlan reads a plan file written by WritePlan; a line that is not a
// PlanEntry is an ErrUsage naming the line.
func ReadPlan(path string) ([]PlanEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	defer f.Close()
	var out []PlanEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var p PlanEntry
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return nil, mark(ErrUsage, fmt.Errorf("plan %s line %d: %w", path, line, err))
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = errors.New("line longer than 4 MB")
		}
		return nil, mark(ErrPlanFile, fmt.Errorf("plan %s line %d: %w", path, line+1, err))
	}
	return out, nil
}

// Recheck reads every planned message again and keeps those that are
// still the same message: same inode, sender and arrival time. The others
// (gone, or the ID now names another message: the race postsuper
// documents and cannot close) come back as skipped outcomes.
func Recheck(src queue.Source, entries []PlanEntry) (results []filter.Result, changed []Outcome) {
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
			changed = append(changed, Outcome{ID: p.QueueID, Queue: p.QueueName, Result: "skipped", Err: errors.New(why)})
			continue
		}
		results = append(results, filter.Result{Msg: m})
	}
	return results, changed
}

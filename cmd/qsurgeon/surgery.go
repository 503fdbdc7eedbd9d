package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/journal"
	"github.com/urfave/cli/v2"
)

// defaultJournal is where every run that changes a queue is recorded.
const defaultJournal = "/var/lib/qsurgeon/journal.jsonl"

// safetyFlags are the flags every destructive command shares.
type safetyFlags struct {
	all     bool
	yes     bool
	dryRun  bool
	listOps bool
	max     int
	planOut string
	journal string
	sample  int
	// detached: the queue is detached or copied, so no qmail-queue can
	// be writing a young orphan.
	detached bool
}

// flags returns the safety flags, the same on every destructive command.
func (s *safetyFlags) flags() []cli.Flag {
	cat := "Safety:"
	return []cli.Flag{
		&cli.BoolFlag{Name: "all", Category: cat, Destination: &s.all, Usage: "allow an empty filter (act on EVERY message of the queue)"},
		&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Category: cat, Destination: &s.yes, Usage: "do not ask for confirmation (needed when there is no terminal)"},
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Category: cat, Destination: &s.dryRun, Usage: "change nothing; print the file operations it would do per kind and directory, and a sample"},
		&cli.BoolFlag{Name: "list-ops", Category: cat, Destination: &s.listOps, Usage: "with --dry-run: list every file operation instead of a summary"},
		&cli.IntFlag{Name: "max", Category: cat, Destination: &s.max, Usage: "refuse when the selection has more than this many messages (0: no limit)"},
		&cli.StringFlag{Name: "plan-out", Category: cat, Destination: &s.planOut, Usage: "write the selection to FILE and stop; act on it later with 'qsurgeon apply FILE ACTION'"},
		&cli.StringFlag{Name: "journal", Category: cat, Value: defaultJournal, Destination: &s.journal, Usage: "append a JSON-lines record of every change to this file ('' or 'none': no journal)"},
		&cli.IntFlag{Name: "sample", Category: cat, Value: 10, Destination: &s.sample, Usage: "how many messages the preview shows"},
		&cli.BoolFlag{Name: "detached", Category: cat, Destination: &s.detached, Usage: "qmail: the queue is detached or copied, so fragments younger than 36 hours (no info, no todo) may be acted on"},
	}
}

// preview prints what an action is about to do: the count per queue, the
// total size and a sample.
func preview(w io.Writer, action string, results []filter.Result, sample int) {
	perQueue := map[string]int{}
	var bytes int64
	for _, r := range results {
		perQueue[r.Msg.Queue]++
		bytes += r.Msg.Size
	}
	names := make([]string, 0, len(perQueue))
	for k := range perQueue {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return queueRank(names[i]) < queueRank(names[j]) })
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %d", k, perQueue[k]))
	}
	fmt.Fprintf(w, "%s: %d message(s), %s (%s)\n", action, len(results), humanBytes(bytes), strings.Join(parts, ", "))
	now := clock.Now()
	for i, r := range results {
		if i == sample {
			fmt.Fprintf(w, "  ... and %d more\n", len(results)-sample)
			break
		}
		m := r.Msg
		subj := ""
		if m.Content != nil {
			subj = m.Content.Subject
		}
		fmt.Fprintf(w, "  %-16s %-9s %5s  %-32s %-24s %s\n", m.ID+idMark(m), m.Queue, age(now, m.Arrival),
			clip(printable(displaySender(m)), 32), clip(dash(printable(m.SASLUser)), 24), clip(printable(subj), 50))
	}
}

// confirm asks [y/N] on the terminal. Without a terminal it fails with the
// usage code instead of waiting.
func (e *env) confirm(question string) error {
	if !isTerminal(e.stdin) {
		return fail(exitUsage, errors.New("confirmation needed, but standard input is not a terminal"),
			"check the preview with --dry-run, then run again with --yes")
	}
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	fmt.Fprintln(e.stderr, "nothing changed.")
	return silentExit(exitOK)
}

// openJournal starts a journal run, or returns nil for --journal none.
func openJournal(path string, args []string, filterDesc any) (*journal.Run, func(), error) {
	if path == "" || path == "none" {
		return nil, func() {}, nil
	}
	j, err := journal.Open(path)
	if err != nil {
		// journal.Open's errors say "journal: ..." themselves.
		return nil, nil, fail(exitError, fmt.Errorf("%w; nothing was changed", err), "give a writable file with --journal FILE, or --journal none")
	}
	run, err := j.Begin(args, filterDesc)
	if err != nil {
		j.Close()
		return nil, nil, fail(exitError, fmt.Errorf("%w; nothing was changed", err), "")
	}
	return run, func() { j.Close() }, nil
}

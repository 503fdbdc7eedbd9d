package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/qsurgeon/qsurgeon/internal/clock"

	"github.com/qsurgeon/qsurgeon/estimate"
	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// ageBuckets are qshape's default buckets, in minutes.
var ageBuckets = []int{5, 10, 20, 40, 80, 160, 320, 640, 1280}

// counter counts messages and bytes per key.
type counter map[string]*countSize

type countSize struct {
	Count int64 `json:"count"`
	Bytes int64 `json:"bytes"`
}

func (c counter) add(k string, size int64) {
	cs := c[k]
	if cs == nil {
		cs = &countSize{}
		c[k] = cs
	}
	cs.Count++
	cs.Bytes += size
}

type topEntry struct {
	Key     string `json:"key"`
	Count   int64  `json:"count"`
	Bytes   int64  `json:"bytes"`
	Clients int    `json:"distinct_clients,omitempty"`
}

func (c counter) top(n int) []topEntry {
	out := make([]topEntry, 0, len(c))
	for k, v := range c {
		out = append(out, topEntry{Key: k, Count: v.Count, Bytes: v.Bytes})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// summary is the first screen of an incident.
type summary struct {
	MTA            string                `json:"mta"`
	Root           string                `json:"queue_directory"`
	Messages       int64                 `json:"messages"`
	Bytes          int64                 `json:"bytes"`
	Recipients     int64                 `json:"pending_recipients"`
	NullSender     int64                 `json:"null_sender"`
	Bouncing       int64                 `json:"bouncing"`
	Corrupt        int64                 `json:"corrupt"`
	WithProblems   int64                 `json:"with_problems"`
	IDNotInode     int64                 `json:"id_not_inode"`
	Queues         map[string]*countSize `json:"queues"`
	Channels       map[string]int64      `json:"channels,omitempty"`
	TodoBacklog    int64                 `json:"todo_backlog"`
	AgeBuckets     []ageBucket           `json:"age_buckets"`
	Senders        []topEntry            `json:"top_senders"`
	SASLUsers      []topEntry            `json:"top_sasl_users"`
	Clients        []topEntry            `json:"top_client_addresses"`
	RcptDomains    []topEntry            `json:"top_recipient_domains"`
	Reasons        []topEntry            `json:"top_delay_reasons"`
	DistinctSender int                   `json:"distinct_senders"`
	DistinctSASL   int                   `json:"distinct_sasl_users"`
	DistinctClient int                   `json:"distinct_client_addresses"`
	DistinctDomain int                   `json:"distinct_recipient_domains"`
	DistinctReason int                   `json:"distinct_delay_reasons"`
	Networks       []topEntry            `json:"top_client_networks"`
	DistinctNet    int                   `json:"distinct_client_networks"`
	// Sample is the --sample estimate, made before the exact figures.
	Sample *estimate.Estimate `json:"sample,omitempty"`
	// LogAccounts is the --log view: the logs' top accounts (logfilter.go).
	LogAccounts []maillog.Account `json:"log_accounts,omitempty"`
}

type ageBucket struct {
	Label      string `json:"age"`
	MaxMinutes int    `json:"max_minutes,omitempty"`
	Count      int64  `json:"count"`
}

func summaryCommand(e *env) *cli.Command {
	var ff filterFlags
	var topN, sampleN int
	var sampleOnly bool
	var seed uint64
	return &cli.Command{
		Name:      "summary",
		Aliases:   []string{"stat"},
		Usage:     "counts per queue, age buckets, top senders, SASL users, clients, domains, reasons (read-only)",
		ArgsUsage: " ",
		Description: `The first screen of an incident: how many messages and bytes per queue, how old (qshape's
buckets), and who: the top envelope senders, SASL users (with how many distinct client
addresses each logged in from — a stolen account shows dozens), client addresses, recipient
domains and delay reasons, the null-sender (bounce) count and, on qmail, the per-channel
counts and the todo backlog. Takes the same filter flags as list.

--sample N answers "who is it" first, in seconds on a queue of a million: it lists the
message names (directories only), reads a uniform random sample of N of them and prints
the estimated top SASL users, senders, client networks (/24, /64) and recipient domains,
each with its share of the queue and a 95% confidence interval (Wilson, with the
finite-population correction), then goes on to the exact summary unless --sample-only.
4000 gives every share within ±1.6 points (2401 is ±2). On a terminal the exact summary
shows its counts and top accounts so far while it runs (not with --no-progress).

EXAMPLES:
   qsurgeon summary
   qsurgeon summary --sample 4000
   qsurgeon summary --sample 4000 --sample-only --format json
   qsurgeon --format json summary --queue-name deferred --top 50`,
		Flags: append(ff.flags(),
			&cli.IntFlag{Name: "top", Value: 10, Destination: &topN, Usage: "how many entries in each top list (0: all)"},
			&cli.IntFlag{Name: "sample", Destination: &sampleN, Usage: "first estimate the top lists from a random sample of `N` messages (0: 4000), then the exact summary"},
			&cli.BoolFlag{Name: "sample-only", Destination: &sampleOnly, Usage: "print only the estimate (--sample, 4000 when not given), not the exact summary"},
			&cli.Uint64Flag{Name: "seed", Destination: &seed, Usage: "seed of the --sample draw, to repeat one (default: random, printed with the estimate)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErr("summary takes no arguments")
			}
			o := e.opts(c)
			if o.Format != "table" && o.Format != "json" {
				return usageErr("summary prints --format table or json")
			}
			sampling := c.IsSet("sample") || sampleOnly
			if sampleN < 0 {
				return usageErr("--sample takes a number of messages (0: the default 4000)")
			}
			if c.IsSet("seed") && !sampling {
				return usageErr("--seed is the seed of a --sample draw")
			}
			sampleOpts := estimate.Options{Size: sampleN, Seed: seed, SeedSet: c.IsSet("seed"), Top: topN, Workers: o.Workers}
			var src queue.Source
			var err error
			// The live view exists before the queue is opened: a warning
			// the reader prints while the frame is up clears it first.
			var live *liveView
			if !sampleOnly {
				live = e.liveSummary(o)
			}
			if !sampleOnly {
				if src, err = openSource(o, live.guard(e.stderr), readNeeds{logs: true}); err != nil {
					return err
				}
			}
			spec, err := ff.spec(e.stdin, clock.Now())
			if err != nil {
				return err
			}
			if err := ff.withLogs(e, &spec); err != nil {
				return err
			}
			lv, err := ff.logView(e)
			if err != nil {
				return err
			}
			m, err := surgery.Compile(spec)
			if err != nil {
				return fail(exitUsage, err, "")
			}
			var s *summary
			if sampling {
				ssrc, est, nerr, err := e.sampleSummary(c, o, &ff, m, sampleOpts, sampleOnly)
				if err != nil {
					return err
				}
				if sampleOnly {
					s = &summary{MTA: string(ssrc.MTA()), Root: ssrc.Root(), Sample: est}
					if o.Format == "json" {
						err = writeSampleJSON(e.stdout, s)
					} else {
						printSample(e.stdout, s)
					}
					if err == nil && nerr > 0 {
						err = silentExit(exitPartial)
					}
					return err
				}
				s = &summary{MTA: string(src.MTA()), Root: src.Root(), Queues: map[string]*countSize{}, Sample: est}
				if o.Format != "json" {
					printSample(e.stdout, s)
					fmt.Fprintln(e.stdout)
				}
			} else {
				s = &summary{MTA: string(src.MTA()), Root: src.Root(), Queues: map[string]*countSize{}}
			}
			acc := newSummaryAcc(s, clock.Now())
			var nerr int
			opt := filter.Options{Workers: o.Workers, OnError: func(err *filter.ReadError) error {
				nerr++
				fmt.Fprintf(live.guard(e.stderr), "qsurgeon: warning: %s\n", printable(err.Error()))
				return nil
			}}
			live.setRoot(src.Root())
			var bar *progressbar.ProgressBar
			if live == nil {
				bar = e.progress(o, "scanning "+src.Root())
			}
			switch {
			case live != nil:
				opt.Progress = func(done, total int64) { live.update(acc, done) }
			case bar != nil:
				opt.Progress = func(done, total int64) { _ = bar.Set64(done) }
			}
			err = filter.Scan(c.Context, src, m, opt, func(r filter.Result) error {
				lv.note(r.Msg)
				acc.add(r.Msg)
				return nil
			})
			if bar != nil {
				_ = bar.Finish()
				_ = bar.Clear()
			}
			live.clear()
			if err != nil {
				return err
			}
			e.reportStrays(src)
			acc.finish(topN)
			s.LogAccounts = lv.accounts(topN)
			if o.Format == "json" {
				enc := json.NewEncoder(safeJSON{e.stdout})
				enc.SetEscapeHTML(false)
				if err := enc.Encode(s); err != nil {
					return err
				}
			} else {
				printSummary(e.stdout, s)
			}
			if nerr > 0 {
				return silentExit(exitPartial)
			}
			return nil
		},
	}
}

func printSummary(w io.Writer, s *summary) {
	fmt.Fprintf(w, "%s queue %s: %d messages, %s, %d pending recipients\n", s.MTA, s.Root, s.Messages, humanBytes(s.Bytes), s.Recipients)
	fmt.Fprintf(w, "null sender (bounces): %d   bouncing: %d   corrupt: %d   with problems: %d\n", s.NullSender, s.Bouncing, s.Corrupt, s.WithProblems)
	if s.IDNotInode > 0 {
		fmt.Fprintf(w, "names that are not inodes: %d (a queue copied from another filesystem: 'qsurgeon repair' renames them before qmail runs on it)\n", s.IDNotInode)
	}
	if s.MTA == string(queue.Qmail) {
		fmt.Fprintf(w, "todo backlog (not yet preprocessed): %d   recipients per channel: local %d, remote %d\n",
			s.TodoBacklog, s.Channels[queue.ChannelLocal], s.Channels[queue.ChannelRemote])
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	names := make([]string, 0, len(s.Queues))
	for k := range s.Queues {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return queueRank(names[i]) < queueRank(names[j]) })
	fmt.Fprint(tw, "QUEUE\tMESSAGES\tSIZE\t\n")
	for _, k := range names {
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", k, s.Queues[k].Count, humanBytes(s.Queues[k].Bytes))
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprint(tw, "AGE\t")
	for _, b := range s.AgeBuckets {
		fmt.Fprintf(tw, "%s\t", b.Label)
	}
	fmt.Fprint(tw, "\nMESSAGES\t")
	for _, b := range s.AgeBuckets {
		fmt.Fprintf(tw, "%d\t", b.Count)
	}
	fmt.Fprintln(tw)
	tw.Flush()
	section := func(title string, es []topEntry, distinct int, clients bool) {
		if len(es) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s (%d distinct)\n", title, distinct)
		t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, e := range es {
			extra := ""
			if clients && e.Clients > 0 {
				extra = fmt.Sprintf("from %d client address(es)", e.Clients)
			}
			fmt.Fprintf(t, "  %7d\t%s\t%s\n", e.Count, clip(printable(e.Key), 90), extra)
		}
		t.Flush()
	}
	section("Top SASL users", s.SASLUsers, s.DistinctSASL, true)
	section("Top senders", s.Senders, s.DistinctSender, false)
	section("Top client addresses", s.Clients, s.DistinctClient, false)
	section("Top client networks", s.Networks, s.DistinctNet, false)
	section("Top recipient domains (pending recipients)", s.RcptDomains, s.DistinctDomain, false)
	section("Top delay/bounce reasons (messages)", s.Reasons, s.DistinctReason, false)
	printLogAccounts(w, s.LogAccounts)
}

func queueRank(q string) int {
	for i, n := range []string{queue.Maildrop, queue.Incoming, queue.Active, queue.Deferred, queue.Hold, queue.Corrupt, queue.Saved, queue.QmailTodo, queue.QmailQueue} {
		if n == q {
			return i
		}
	}
	return 100
}

func humanBytes(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	case n < 1024*1024*1024:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1024*1024))
	default:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1024*1024*1024))
	}
}

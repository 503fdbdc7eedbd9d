package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/qsurgeon/qsurgeon/monitor"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

// nagiosExitHelp documents the plugin exit codes, which are not
// qsurgeon's own table.
const nagiosExitHelp = `EXIT CODES WITH --nagios (the monitoring-plugins convention, NOT qsurgeon's own table):
   0  OK        no threshold exceeded
   1  WARNING   a --warn threshold exceeded
   2  CRITICAL  a --crit threshold exceeded
   3  UNKNOWN   the queue could not be read, or a bad threshold
Without --nagios, monitor exits with qsurgeon's own codes (0 success, 3 some messages unreadable, 4 no queue...).`

// monitorFlags are the flags monitor and watch share.
type monitorFlags struct {
	warn, crit cli.StringSlice
	top        int
	host       string
	textfile   string
	logs       cli.StringSlice
	window     time.Duration

	warnT, critT []monitor.Threshold
}

func (f *monitorFlags) flags() []cli.Flag {
	cat := "Thresholds and output:"
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "warn", Category: cat, Destination: &f.warn, Usage: "METRIC=VALUE: WARNING when METRIC is above VALUE (repeatable). METRIC: a queue name (deferred, active, hold...; qmail: queue, todo), messages, bytes (2G), age (of the oldest message: 6h, 2d), share (top account's % of the queue), fanout (top account's distinct client addresses), account (top account's messages), unreadable"},
		&cli.StringSliceFlag{Name: "crit", Category: cat, Destination: &f.crit, Usage: "METRIC=VALUE: CRITICAL when METRIC is above VALUE (repeatable; same metrics as --warn)"},
		&cli.IntFlag{Name: "top", Category: cat, Value: 5, Destination: &f.top, Usage: "how many top accounts to report (bounds the Prometheus label cardinality)"},
		&cli.StringFlag{Name: "host", Category: cat, Destination: &f.host, Usage: "host name to put in the snapshot (default: this machine's host name)"},
		&cli.StringFlag{Name: "textfile", Category: cat, Destination: &f.textfile, Usage: "write DIR/qsurgeon.prom for node_exporter's textfile collector (temporary file + rename)"},
		&cli.StringSliceFlag{Name: "log", Category: "Logs:", Destination: &f.logs, Usage: "mail log to read too (repeatable; plain, .gz or '-'): adds the metrics log_fanout (the log account with the most client addresses in the --window: its addresses), log_messages and log_failed (its messages and failed logins)"},
		&cli.DurationFlag{Name: "window", Category: "Logs:", Value: 15 * time.Minute, Destination: &f.window, Usage: "with --log: count the log lines of the last N minutes before now (the system clock, not the newest log line)"},
	}
}

// parse checks the thresholds and the host name.
func (f *monitorFlags) parse() error {
	f.warnT, f.critT = nil, nil
	for _, set := range []struct {
		vals []string
		out  *[]monitor.Threshold
	}{{f.warn.Value(), &f.warnT}, {f.crit.Value(), &f.critT}} {
		for _, v := range set.vals {
			t, err := monitor.ParseThreshold(v)
			if err != nil {
				return usageErr("%v", err)
			}
			*set.out = append(*set.out, t)
		}
	}
	if f.window <= 0 {
		return usageErr("--window %s: want a positive duration such as 15m", f.window)
	}
	if f.top < 0 {
		return usageErr("--top %d: want a count", f.top)
	}
	if f.host == "" {
		h, err := os.Hostname()
		if err != nil {
			return fail(exitError, err, "give the host name with --host")
		}
		f.host = h
	}
	return nil
}

// holdsAccount reports whether any threshold watches the top account.
func (f *monitorFlags) holdsAccount(crit bool) bool {
	ts := f.warnT
	if crit {
		ts = f.critT
	}
	return slices.ContainsFunc(ts, func(t monitor.Threshold) bool {
		return slices.Contains(monitor.AccountMetrics, t.Metric) || slices.Contains(monitor.LogMetrics, t.Metric)
	})
}

// monitorReport is monitor's JSON: the snapshot and the check.
type monitorReport struct {
	*monitor.Snapshot
	Status string         `json:"status"`
	Check  monitor.Result `json:"check"`
}

func monitorCommand(e *env) *cli.Command {
	var mf monitorFlags
	var nagios bool
	return &cli.Command{
		Name:      "monitor",
		Usage:     "one read-only pass for monitoring: Nagios/Icinga plugin, Prometheus text file, JSON",
		ArgsUsage: " ",
		Description: `Reads the whole queue once and reports, per queue, the messages, bytes and oldest age, and
the top accounts (the SASL user, else the envelope sender of local submissions; bounces belong
to none) with their share of the queue and how many client addresses their mail came from —
the account used from dozens of addresses without anyone knowing its name.

--nagios prints one plugin status line with perfdata and exits with the plugin codes below.
--textfile DIR writes DIR/qsurgeon.prom for node_exporter (postfix_showq_message_size_bytes and
postfix_showq_message_age_seconds as postfix_exporter names them, plus qsurgeon_* gauges,
per-account series for the --top accounts only). --format json prints the snapshot with the host
name and its time, so the snapshots of many hosts merge. A threshold alerts when the value is
above VALUE (a value equal to it is fine; check_mailq's -w N alerts at N itself).

` + nagiosExitHelp + `

EXAMPLES:
   # Icinga/Nagios command
   qsurgeon monitor --nagios --warn deferred=500 --crit deferred=5000 --warn fanout=5 --crit fanout=20 --crit age=3d
   # node_exporter textfile collector, from cron or a systemd timer
   qsurgeon monitor --textfile /var/lib/prometheus/node-exporter
   # the logs' view too: an account logging in from more than 20 addresses in 15 minutes
   qsurgeon monitor --nagios --log /var/log/mail.log --window 15m --warn log_fanout=10 --crit log_fanout=20
   qsurgeon --format json monitor`,
		Flags: append(mf.flags(),
			&cli.BoolFlag{Name: "nagios", Destination: &nagios, Usage: "print a monitoring-plugins status line with perfdata and exit 0/1/2/3 (OK/WARNING/CRITICAL/UNKNOWN)"},
		),
		OnUsageError: func(c *cli.Context, err error, isSub bool) error {
			if slices.Contains(commandLine(c), "--nagios") {
				fmt.Fprintf(e.stdout, "QSURGEON UNKNOWN - %s\n", monitor.Clean(err.Error()))
				return silentExit(int(monitor.Unknown))
			}
			return usageErr("%v", err)
		},
		Action: func(c *cli.Context) error {
			err := e.monitor(c, &mf, nagios)
			if err != nil && nagios {
				var se silentExit
				if errors.As(err, &se) {
					return err
				}
				fmt.Fprintf(e.stdout, "QSURGEON UNKNOWN - %s\n", monitor.Clean(err.Error()))
				return silentExit(int(monitor.Unknown))
			}
			return err
		},
	}
}

func (e *env) monitor(c *cli.Context, mf *monitorFlags, nagios bool) error {
	if c.NArg() > 0 {
		return usageErr("monitor takes no arguments")
	}
	o := e.opts(c)
	if !nagios && o.Format != "table" && o.Format != "json" {
		return usageErr("monitor prints --format table or json (or --nagios)")
	}
	if err := mf.parse(); err != nil {
		return err
	}
	snap, _, err := e.snapshot(c.Context, o, mf, nagios)
	if err != nil {
		return err
	}
	res, err := monitor.Check(snap, mf.warnT, mf.critT)
	if err != nil {
		return usageErr("%v", err)
	}
	if mf.textfile != "" {
		if _, err := monitor.WriteTextfile(mf.textfile, snap); err != nil {
			return fail(exitError, fmt.Errorf("--textfile: %w", err), "give node_exporter's --collector.textfile.directory")
		}
	}
	switch {
	case nagios:
		if err := monitor.WriteNagios(e.stdout, snap, res, mf.warnT, mf.critT); err != nil {
			return err
		}
		return silentExit(int(res.Status))
	case mf.textfile != "" && o.Format == "table":
		// A textfile run from a timer prints nothing (--format json
		// prints the snapshot too).
	case o.Format == "json":
		if err := writeJSON(e.stdout, monitorReport{Snapshot: snap, Status: res.Status.String(), Check: res}); err != nil {
			return err
		}
	default:
		printSnapshot(e.stdout, snap, res)
	}
	if snap.Unreadable > 0 {
		return silentExit(exitPartial)
	}
	return nil
}

// snapshot reads the whole queue once into a monitor.Snapshot. Unreadable
// messages are counted (and warned about unless quiet).
func (e *env) snapshot(ctx context.Context, o globalOpts, mf *monitorFlags, quiet bool) (*monitor.Snapshot, queue.Source, error) {
	src, err := openSource(o, e.stderr, readNeeds{})
	if err != nil {
		return nil, nil, err
	}
	now := clock.Now()
	m, err := surgery.Compile(filter.Spec{Now: now})
	if err != nil {
		return nil, nil, err
	}
	b := monitor.NewBuilder(mf.host, string(src.MTA()), src.Root(), now)
	opt := filter.Options{Workers: o.Workers, OnError: func(err *filter.ReadError) error {
		b.Unreadable()
		if !quiet {
			e.warn(err)
		}
		return nil
	}}
	err = filter.Scan(ctx, src, m, opt, func(r filter.Result) error {
		b.Add(r.Msg)
		return nil
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, nil, fail(exitError, errors.New("interrupted"), "")
		}
		return nil, nil, err
	}
	if !quiet {
		e.reportStrays(src)
	}
	snap := b.Snapshot(mf.top)
	if logs := mf.logs.Value(); len(logs) > 0 {
		if err := e.logView(snap, logs, mf, quiet); err != nil {
			return nil, nil, err
		}
	}
	return snap, src, nil
}

// logView reads the logs' lines of the last --window minutes before the
// snapshot's time into its log view. The window ends at now (clock.Now),
// not at the newest log line: when the logs stop (syslog down, the wrong
// file) an old burst must not keep alerting, nor keep putting an
// account's new mail on hold, and the status line says how many log
// lines were in the window. A log that cannot be read at all is an error
// (UNKNOWN with --nagios), never a quiet OK.
func (e *env) logView(snap *monitor.Snapshot, logs []string, mf *monitorFlags, quiet bool) error {
	a := maillog.NewAnalyzer()
	st := maillog.ReadAll(logs, maillog.Options{Since: snap.Time.Add(-mf.window), Stdin: e.stdin}, a)
	if !quiet {
		for _, p := range st.Problems {
			fmt.Fprintf(e.stderr, "qsurgeon: warning: log %s\n", printable(p))
		}
	}
	if st.Files == 0 {
		msg := "no log could be read"
		if len(st.Problems) > 0 {
			msg = "log " + st.Problems[0]
		}
		return fail(exitUsage, errors.New(msg), "")
	}
	snap.SetLog(mf.window, a.Accounts(nil), mf.top)
	return nil
}

// printSnapshot is monitor's table output.
func printSnapshot(w io.Writer, s *monitor.Snapshot, r monitor.Result) {
	fmt.Fprintf(w, "%s: %s queue %s at %s: %s\n", printable(s.Host), s.MTA, s.QueueDir, s.Time.UTC().Format("2006-01-02T15:04:05Z"), r.Status)
	for _, a := range r.Alerts {
		fmt.Fprintf(w, "  above %s threshold: %s\n", strings.ToLower(a.Level.String()), a)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "QUEUE\tMESSAGES\tSIZE\tOLDEST\t\n")
	for _, q := range monitor.QueueNames(s.MTA) {
		st := s.Queues[q]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t\n", q, st.Messages, humanBytes(st.Bytes), ageString(st.OldestAgeSeconds, st.Messages))
	}
	fmt.Fprintf(tw, "all\t%d\t%s\t%s\t\n", s.Messages, humanBytes(s.Bytes), ageString(s.OldestAgeSeconds, s.Messages))
	tw.Flush()
	if len(s.Accounts) > 0 {
		fmt.Fprintf(w, "\nTop accounts (%d distinct)\n", s.DistinctAccounts)
		t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range s.Accounts {
			fmt.Fprintf(t, "  %7d\t%5.1f%%\t%s\t%s\tfrom %d client address(es)\n", a.Messages, 100*a.Share, clip(printable(a.Name), 80), a.Kind, a.ClientAddresses)
		}
		t.Flush()
	}
	if s.Log != nil {
		fmt.Fprintf(w, "\nLogs since %s (%d accounts)\n", s.Log.Since.UTC().Format("2006-01-02T15:04:05Z"), s.Log.DistinctAccounts)
		t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range s.Log.Accounts {
			fmt.Fprintf(t, "  %s\tfrom %d client address(es)\t%d messages\t%d failed login(s)\n", clip(printable(a.Name), 80), a.ClientAddresses, a.Messages, a.LoginsFailed)
		}
		t.Flush()
	}
	if s.Unreadable > 0 {
		fmt.Fprintf(w, "\n%d message(s) could not be read\n", s.Unreadable)
	}
}

func ageString(sec float64, n int64) string {
	if n == 0 {
		return "-"
	}
	return ageShort(int64(sec))
}

// ageShort prints seconds as 45s, 12m, 5h or 3d.
func ageShort(s int64) string {
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 86400:
		return fmt.Sprintf("%dh", s/3600)
	}
	return fmt.Sprintf("%dd", s/86400)
}

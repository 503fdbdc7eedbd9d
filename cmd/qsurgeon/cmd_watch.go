package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/monitor"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

// watchFlags are watch's own flags.
type watchFlags struct {
	interval      time.Duration
	count         int
	state         string
	hook          string
	hookTimeout   time.Duration
	holdAccount   bool
	quarantineDir string
	dryRun        bool
	journal       string
}

func watchCommand(e *env) *cli.Command {
	var mf monitorFlags
	var wf watchFlags
	cat := "Watching:"
	return &cli.Command{
		Name:      "watch",
		Usage:     "monitor's check on an interval: run a hook when the state changes, optionally hold the offending account's mail",
		ArgsUsage: " ",
		Description: `Runs monitor's check (the same --warn/--crit thresholds) every --interval and prints one line
per check. When the state changes (OK, WARNING, CRITICAL; the first check compares with OK, or
with the state saved in --state FILE by the previous run, for a systemd timer), it runs --hook
through /bin/sh with the JSON report on its standard input and QSURGEON_STATUS,
QSURGEON_PREVIOUS_STATUS, QSURGEON_HOST, QSURGEON_QUEUE, QSURGEON_ACCOUNT, QSURGEON_ACCOUNT_KIND
and QSURGEON_ALERTS in its environment.

--hold-new-from-account: on every check where a --crit threshold on the top account (share,
fanout or account; with --log also log_fanout, log_messages or log_failed, whose account is the
SASL user the logs name) is exceeded, that account's messages not yet held are put on hold — Postfix:
the hold queue (as 'qsurgeon hold', from incoming, active and deferred); qmail, which has no hold
queue: moved into --quarantine-dir (as 'qsurgeon quarantine'; qmail-send must be stopped). Only
messages charged to exactly that account (its SASL user, or its envelope sender when it has no
SASL user) are selected; nothing is ever deleted. It goes through the same path as hold:
--dry-run, the journal, the MTA's lock rules. 'qsurgeon release --sasl-user NAME' undoes it.

EXAMPLES:
   qsurgeon watch --interval 1m --warn deferred=500 --crit fanout=20 --hook /usr/local/sbin/page-oncall
   # from a systemd timer (contrib/systemd): one check per run, state kept between runs
   qsurgeon watch --count 1 --state /var/lib/qsurgeon/watch.state --crit fanout=20 --hold-new-from-account`,
		Flags: append(mf.flags(),
			&cli.DurationFlag{Name: "interval", Category: cat, Value: time.Minute, Destination: &wf.interval, Usage: "time between checks"},
			&cli.IntFlag{Name: "count", Category: cat, Destination: &wf.count, Usage: "stop after N checks (0: run until interrupted; 1 for a systemd timer)"},
			&cli.StringFlag{Name: "state", Category: cat, Destination: &wf.state, Usage: "keep the last state in FILE, so one-check runs (--count 1) see changes"},
			&cli.StringFlag{Name: "hook", Category: cat, Destination: &wf.hook, Usage: "shell command to run when the state changes (the JSON report on its standard input)"},
			&cli.DurationFlag{Name: "hook-timeout", Category: cat, Value: time.Minute, Destination: &wf.hookTimeout, Usage: "kill the hook after this long"},
			&cli.BoolFlag{Name: "hold-new-from-account", Category: cat, Destination: &wf.holdAccount, Usage: "while a --crit threshold on the top account is exceeded, put its queued mail on hold (never deletes)"},
			&cli.StringFlag{Name: "quarantine-dir", Category: cat, Destination: &wf.quarantineDir, Usage: "qmail --hold-new-from-account: the quarantine directory to hold mail in"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Category: cat, Destination: &wf.dryRun, Usage: "--hold-new-from-account only prints what it would hold"},
			&cli.StringFlag{Name: "journal", Category: cat, Value: defaultJournal, Destination: &wf.journal, Usage: "the journal of holds ('' or 'none': no journal)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErr("watch takes no arguments")
			}
			if err := mf.parse(); err != nil {
				return err
			}
			if wf.interval <= 0 || wf.count < 0 {
				return usageErr("--interval must be positive and --count not negative")
			}
			if slices.Contains(mf.logs.Value(), "-") && wf.count != 1 {
				// Standard input is read once: later checks would see no log at all.
				return usageErr("watch --log -: standard input can be read by one check only (--count 1); give the log file")
			}
			if wf.holdAccount && !mf.holdsAccount(true) {
				return fail(exitUsage, errors.New("--hold-new-from-account needs a --crit threshold on the top account"),
					"add --crit fanout=N, --crit share=PERCENT, --crit account=N or (with --log) --crit log_fanout=N")
			}
			o := e.opts(c)
			prev := monitor.OK
			if wf.state != "" {
				prev = monitor.ReadState(wf.state)
			}
			for i := 0; wf.count == 0 || i < wf.count; i++ {
				if i > 0 {
					select {
					case <-c.Context.Done():
						return nil
					case <-time.After(wf.interval):
					}
				}
				st, err := e.watchOnce(c, o, &mf, &wf, prev)
				if err != nil {
					return err
				}
				prev = st
			}
			return nil
		},
	}
}

// watchOnce is one check: snapshot, thresholds, the line, the hook on a
// change, the hold. It returns the new state.
func (e *env) watchOnce(c *cli.Context, o globalOpts, mf *monitorFlags, wf *watchFlags, prev monitor.Status) (monitor.Status, error) {
	snap, src, err := e.snapshot(c.Context, o, mf, false)
	if err != nil {
		return prev, err
	}
	res, err := monitor.Check(snap, mf.warnT, mf.critT)
	if err != nil {
		return prev, usageErr("%v", err)
	}
	if mf.textfile != "" {
		if _, err := monitor.WriteTextfile(mf.textfile, snap); err != nil {
			e.warn(fmt.Errorf("--textfile: %w", err))
		}
	}
	was := ""
	if res.Status != prev {
		was = " (was " + prev.String() + ")"
	}
	fmt.Fprintf(e.stdout, "%s %s %s%s - %s\n", snap.Time.UTC().Format(time.RFC3339), printable(snap.Host), res.Status, was, monitor.Summary(snap, res))
	if res.Status != prev && wf.hook != "" {
		e.runHook(c.Context, wf, snap, res, prev)
	}
	if wf.state != "" {
		if err := monitor.WriteState(wf.state, res.Status); err != nil {
			e.warn(fmt.Errorf("--state: %w", err))
		}
	}
	for _, acct := range res.CriticalAccounts() {
		if !wf.holdAccount {
			break
		}
		if err := e.holdAccount(c, o, src, wf, acct); err != nil {
			var se silentExit
			if !errors.As(err, &se) {
				// The watch goes on; the next check tries again.
				fmt.Fprintf(e.stderr, "qsurgeon: error: holding %s's mail: %v\n", printable(acct.Name), err)
			}
		}
	}
	return res.Status, nil
}

// runHook runs the admin's hook with the report on stdin; a failing hook
// is reported and the watch goes on.
func (e *env) runHook(ctx context.Context, wf *watchFlags, snap *monitor.Snapshot, res monitor.Result, prev monitor.Status) {
	var in bytes.Buffer
	_ = writeJSON(&in, monitorReport{Snapshot: snap, Status: res.Status.String(), Check: res})
	ctx, cancel := context.WithTimeout(ctx, wf.hookTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", wf.hook)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &in, e.stderr, e.stderr
	alerts := make([]string, len(res.Alerts))
	for i, a := range res.Alerts {
		alerts[i] = a.String()
	}
	env := append(os.Environ(),
		"QSURGEON_STATUS="+res.Status.String(),
		"QSURGEON_PREVIOUS_STATUS="+prev.String(),
		"QSURGEON_HOST="+monitor.Clean(snap.Host),
		"QSURGEON_QUEUE="+snap.QueueDir,
		"QSURGEON_ALERTS="+strings.Join(alerts, ", "))
	if acct := res.Account; acct != nil || res.LogAccount != nil {
		if acct == nil {
			acct = res.LogAccount
		}
		env = append(env, "QSURGEON_ACCOUNT="+monitor.Clean(acct.Name), "QSURGEON_ACCOUNT_KIND="+acct.Kind)
	}
	cmd.Env = env
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(e.stderr, "qsurgeon: warning: hook %q: %v\n", wf.hook, err)
	}
}

// holdAccount puts the account's queued mail that is not on hold yet on
// hold (surgery.AccountHold) through the same path as 'qsurgeon hold'
// (preview, lock, journal, dry run), or into the quarantine directory on
// qmail.
func (e *env) holdAccount(c *cli.Context, o globalOpts, src queue.Source, wf *watchFlags, acct monitor.Account) error {
	job, sel, err := surgery.AccountHold(c.Context, src, acct, surgery.AccountHoldOptions{QuarantineDir: wf.quarantineDir, Workers: o.Workers})
	if err != nil {
		return err
	}
	if len(sel.Results) == 0 {
		return nil
	}
	sf := safetyFlags{yes: true, dryRun: wf.dryRun, journal: wf.journal, sample: 5}
	return e.execute(c, o, job.Verb().Name, job, sel.Results, &sf, len(sel.Errs) > 0, 0)
}

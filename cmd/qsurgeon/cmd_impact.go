package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

func impactCommand(e *env) *cli.Command {
	var lf logFlags
	var ff filterFlags
	var topN int
	return &cli.Command{
		Name:      "impact",
		Usage:     "what left the server, from the mail logs: recipients and messages per recipient domain, relay and status (read-only)",
		ArgsUsage: "[LOG...]",
		Description: `Reads the mail logs' delivery lines (Postfix smtp/local/virtual/pipe/error "to=... status=",
qmail-send "delivery N: success|deferral|failure") and prints, per recipient domain, relay and
status, how many distinct recipients and messages it concerned and how many delivery lines
there were. The filter flags select by what the logs say about each message (--sasl-user,
--sender, --null-sender, --client, --helo, ...), so "who got the spam of this account" is
one command. --since/--until bound the window.

EXAMPLES:
   # who received the stolen account's mail in the last day
   qsurgeon impact --log /var/log/mail.log --since 24h --sasl-user hello@example.com

   # bounces (MAILER-DAEMON) that went out during a forwarding loop
   qsurgeon impact --log /var/log/syslog --since '2011-10-16 17:50' --until '2011-10-16 18:05' --null-sender`,
		Flags: append(append(lf.windowFlags(), ff.flags()...),
			&cli.IntFlag{Name: "top", Value: 0, Destination: &topN, Usage: "show only the first N rows (0: all)"},
		),
		Action: func(c *cli.Context) error {
			o := e.opts(c)
			if o.Format != "table" && o.Format != "json" {
				return usageErr("impact prints --format table or json")
			}
			// --log is the filter flags' own; --logged-sasl-user is
			// --sasl-user here, where the logs are the only source.
			lf.logs = ff.logFiles
			spec, err := ff.spec(e.stdin, clock.Now())
			if err != nil {
				return err
			}
			spec.SASLUsers = append(spec.SASLUsers, ff.loggedSASLUsers.Value()...)
			var sel func(*maillog.Message, string) bool
			if !spec.Empty() || spec.Invert {
				m, err := surgery.Compile(spec)
				if err != nil {
					return fail(exitUsage, err, "")
				}
				if m.NeedsContent() || ff.needsLogs() {
					return usageErr("impact selects by what the logs say: sender, SASL user, client, HELO, size, ID; not by headers, body, reasons or queue state")
				}
				sel = func(lm *maillog.Message, rcpt string) bool {
					ok, _ := m.MatchEnvelope(logMessage(lm, rcpt))
					return ok
				}
			}
			a, err := lf.read(e, c, true, sel)
			if err != nil {
				return err
			}
			rows := a.Impact()
			if topN > 0 && len(rows) > topN {
				rows = rows[:topN]
			}
			if o.Format == "json" {
				for _, r := range rows {
					if err := writeJSON(e.stdout, r); err != nil {
						return err
					}
				}
				return nil
			}
			if len(rows) == 0 {
				fmt.Fprintln(e.stdout, "no delivery in the logs matches")
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RECIPIENT DOMAIN\tRELAY\tSTATUS\tRECIPIENTS\tMESSAGES\tDELIVERY LINES")
			var rc, dl int
			for _, r := range rows {
				rc += r.Recipients
				dl += r.Deliveries
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", printable(dash(r.Domain)), printable(clip(dash(r.Relay), 50)), printable(r.Status), r.Recipients, r.Messages, r.Deliveries)
			}
			fmt.Fprintf(tw, "total (%d rows)\t\t\t%d\t\t%d\n", len(rows), rc, dl)
			return tw.Flush()
		},
	}
}
